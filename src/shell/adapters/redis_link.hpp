#pragma once
// One Redis connection on an Asio event loop: commands are RESP-encoded into an output buffer
// and written with one write in flight, so commands issued while a write is out are pipelined
// into the next one; replies are parsed with hiredis's reader and matched to their commands in
// order (or, on a subscriber connection, all handed to the push handler). Handlers get each reply
// as a core::RespValue: this file is the one place that reads hiredis's reply objects.
//
// Why not hiredis's async context: in hiredis 0.14 redisAsyncConnect resolves the host name
// synchronously (a blocking DNS call on an event loop), and its subscribe bookkeeping drops a
// channel's callback when an UNSUBSCRIBE confirmation arrives after a new SUBSCRIBE of the same
// channel, silently losing that channel's messages. Interests here come and go with
// connections, so that race is ordinary. hiredis still does the protocol: redisFormatCommandArgv
// and redisReader.
//
// Not thread-safe: every call comes from the loop that runs `io`.

#include <array>
#include <cstddef>
#include <deque>
#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/redis_cluster.hpp"

struct redisReader;

namespace boundary::realtime::shell {

class RedisLink {
 public:
  // nullptr: the connection was lost before the reply came. An error reply is a value (kind
  // error), not a failure: the link stays open.
  using ReplyHandler = std::function<void(const core::RespValue*)>;

  // Output not yet written past this bound means Redis stopped reading: the link fails rather
  // than grow without bound.
  static constexpr std::size_t max_output_bytes = 64u << 20;

  RedisLink(boost::asio::io_context& io, bool push_mode);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  void set_push_handler(ReplyHandler handler) { on_push_ = std::move(handler); }
  // Called once each time an open link fails (not after close()).
  void set_down_handler(std::function<void()> handler) { on_down_ = std::move(handler); }

  void connect(const boost::asio::ip::tcp::resolver::results_type& endpoints,
               std::function<void(const boost::system::error_code&)> done);
  // On a closed link the handler gets nullptr on a later turn of the loop.
  void command(std::initializer_list<std::string_view> argv, ReplyHandler on_reply = {});
  // Closes the socket; pending replies get nullptr. Does not call the down handler.
  void close();
  bool is_open() const noexcept { return open_; }

 private:
  void do_write();
  void do_read();
  void fail();
  void reset();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::socket socket_;
  const bool push_mode_;
  redisReader* reader_ = nullptr;
  std::string out_;      // encoded, not yet handed to a write
  std::string writing_;  // the write in flight
  bool write_in_flight_ = false;
  bool open_ = false;
  unsigned generation_ = 0;  // handlers of an earlier connection are ignored
  std::deque<ReplyHandler> waiting_;
  std::array<char, 16 * 1024> in_{};
  ReplyHandler on_push_;
  std::function<void()> on_down_;
};

}  // namespace boundary::realtime::shell
