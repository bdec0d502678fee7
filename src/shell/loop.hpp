#pragma once
// One event loop: an io_context run by exactly one thread, the connections it owns and their
// indexes. Other threads reach a loop only by posting to it.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "boundary/realtime/connection_registry.hpp"
#include "core/deflate_codec.hpp"
#include "shell/poller.hpp"
#include "shell/tcp_socket.hpp"

namespace boundary::realtime::shell {

class WsSession;
class Node;

class Loop {
 public:
  Loop(Node& node, unsigned index);
  ~Loop();

  boost::asio::io_context& io() noexcept { return io_; }
  ConnectionRegistry& registry() noexcept { return registry_; }
  SessionPoller& poller() noexcept { return poller_; }
  Node& node() noexcept { return node_; }
  unsigned index() const noexcept { return index_; }

  // Scratch buffer for socket reads, shared by every connection of this loop: an idle
  // connection holds no read buffer of its own.
  std::vector<std::uint8_t>& read_buffer() noexcept { return read_buffer_; }

  // permessage-deflate: inflates one compressed message of `owner` into a scratch string of the
  // loop (valid until the next call), at most `max_bytes` of it. `context_takeover`: the client
  // keeps its window across messages, so `owner` gets its own stream (until drop_inflater);
  // otherwise the loop's shared stream serves, reset after each message. Inflate memory is
  // counted in the metrics.
  struct Inflated {
    core::Inflater::Result result;
    std::string_view text;
  };
  Inflated inflate(const void* owner, bool context_takeover, std::string_view payload, std::size_t max_bytes);
  void drop_inflater(const void* owner);

  // Sessions with queued output are flushed once per loop pass, so that everything queued for
  // a connection during one pass leaves in a single gather write.
  void schedule_flush(std::shared_ptr<WsSession> session);
  // HTTP answers ready in this pass: written at the start of the flush pass, before the
  // WebSocket connections, so that a pipelining client sends its next requests meanwhile.
  void schedule_answer(std::function<void()> write);

  // Closing sessions are kept here until their close completes or its grace period ends.
  void track_closing(std::shared_ptr<WsSession> session);

  static void ensure_port_free(const boost::asio::ip::tcp::endpoint& endpoint);
  void listen(const boost::asio::ip::tcp::endpoint& endpoint);  // SO_REUSEPORT: one acceptor per loop
  boost::asio::ip::tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }
  void start_thread();
  void stop_accepting();
  void join();

 private:
  void do_accept();
  void on_accept(const boost::system::error_code& ec, TcpSocket socket);  // and the next ones queued
  void accept_failed(const boost::system::error_code& ec);                // count, log, back off
  void start_session(TcpSocket socket);                                   // plain or TLS
  void do_sweep();
  void post_flush();  // one flush pass per loop turn, however many sessions and answers wait
  void flush_all();

  Node& node_;
  unsigned index_;
  // Declared before io_: sessions that io_'s queued handlers still hold leave the poller when
  // io_ is destroyed.
  SessionPoller poller_;
  boost::asio::io_context io_{1};
  ConnectionRegistry registry_;
  std::vector<std::uint8_t> read_buffer_;
  std::vector<std::shared_ptr<WsSession>> flush_pending_;
  // Only connections that negotiated permessage-deflate without client_no_context_takeover have
  // an entry: every other connection pays nothing for compression.
  std::unordered_map<const void*, std::unique_ptr<core::Inflater>> inflaters_;
  std::unique_ptr<core::Inflater> shared_inflater_;
  std::string inflated_;
  std::vector<std::function<void()>> answers_pending_;
  bool flush_posted_ = false;
  bool flush_deferred_ = false;  // the pass went behind the reactor once (HTTP answers pending)
  std::vector<std::shared_ptr<WsSession>> closing_;
  boost::asio::ip::tcp::acceptor acceptor_;
  boost::asio::steady_timer accept_retry_;
  boost::asio::steady_timer sweep_timer_;
  std::thread thread_;
  bool accepting_ = false;
};

}  // namespace boundary::realtime::shell
