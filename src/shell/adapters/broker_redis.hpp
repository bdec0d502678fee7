#pragma once
// Broker over Redis pub/sub (docs/cluster.md). Two connections per node, both on one event loop
// (loop 0): a subscriber (rt:all, rt:reply:<node>, and rt:u:/rt:r:/rt:t: channels while this
// node has local connections for them) and a command connection (PUBLISH, answers,
// heartbeats), pipelined. Fan-outs leave in call order on the one command connection, so Redis
// hands them to every subscriber in that order.
//
// Failure: when either connection drops, both are closed, pending waits end with
// reached = false, and reconnection is retried with exponential backoff (100 ms doubling to
// 2 s); once back, every current interest is subscribed again before the node reports the
// cluster reachable. Fan-outs are never queued while down and never retried.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "boundary/realtime/ports/broker.hpp"
#include "core/cluster_codec.hpp"
#include "shell/adapters/cluster_requests.hpp"
#include "shell/adapters/redis_link.hpp"

namespace boundary::realtime::shell {

struct Metrics;

class BrokerRedis final : public Broker {
 public:
  struct Options {
    core::RedisUrl url;
    std::string node_id;
    std::chrono::milliseconds reply_timeout{1000};
    std::function<std::size_t()> local_connections;  // for the heartbeat
    Metrics* metrics = nullptr;
  };

  BrokerRedis(boost::asio::io_context& io, Options options);
  ~BrokerRedis() override;

  void set_handler(Handler handler) override { handler_ = std::move(handler); }
  void start() override;
  bool distributed() const noexcept override { return true; }
  bool connected() const noexcept override { return up_.load(std::memory_order_acquire); }
  void publish(Fanout f, bool wait, Done done) override;
  void set_interest(Route route, std::string_view name, bool interested) override;
  void when_ready(std::function<void()> ready) override;

 private:
  enum class State { idle, connecting, subscribing, up };

  void do_connect();
  void on_links(const boost::system::error_code& ec);
  void on_down();
  void set_up(bool up);
  void subscribe_all();
  void on_push(const redisReply* reply);
  void on_message(std::string_view channel, std::string_view payload);
  void do_publish(Fanout f, bool wait, Done done);
  void do_heartbeat();
  void do_sweep();
  void ready_reached();

  boost::asio::io_context& io_;
  Options opt_;
  RedisLink cmd_;
  RedisLink sub_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer sweep_timer_;
  std::atomic<bool> up_{false};
  State state_ = State::idle;
  int links_pending_ = 0;
  bool links_failed_ = false;
  unsigned attempt_ = 0;  // connection attempts since the last success
  std::chrono::milliseconds backoff_{100};
  Handler handler_;
  std::set<std::string> interests_;  // channels this node wants besides rt:all and its reply channel
  ClusterRequests requests_;
  // Subscribe barrier: (UN)SUBSCRIBE confirmations arrive in the order the channels were sent.
  std::uint64_t sub_sent_ = 0;
  std::uint64_t sub_confirmed_ = 0;
  std::deque<std::pair<std::uint64_t, std::function<void()>>> ready_waiters_;
};

}  // namespace boundary::realtime::shell
