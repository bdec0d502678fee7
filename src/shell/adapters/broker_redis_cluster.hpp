#pragma once
// Broker over a Redis Cluster (docs/cluster.md, "Running on Redis Cluster"). Topic fan-outs use
// sharded pub/sub, so topic traffic spreads over the shards: SPUBLISH rt:t:<topic> goes to the
// master owning the channel's slot, and this node SSUBSCRIBEs to it there. Everything else —
// rt:all, rt:u:, rt:r:, the answers on rt:reply: — is plain PUBLISH / SUBSCRIBE on one master
// that every node agrees on (the owner of the slot of "rt:all", the "home" master): with every
// node subscribed on that one master, PUBLISH's reply counts every node, as on a single Redis.
// Heartbeat keys are written to the master owning their slot.
//
// Two connections per master (commands, subscriptions), all on one event loop. Ordering holds
// per connection: one node's fan-outs on one topic, and its non-topic fan-outs, each leave on
// one connection in call order. Between a topic fan-out and a non-topic one there is no order.
//
// Topology: the slot map comes from CLUSTER SLOTS, asked of the seeds in turn (then of the
// masters last seen). The node reads it again (from the home master) when SPUBLISH is answered
// MOVED or ASK (the message itself follows the redirect once, after ASKING for ASK), when a
// shard drops one of our subscriptions (Redis sends an unsolicited sunsubscribe when a slot
// moves away) and when a shard refuses one. If only slots moved between the same masters and
// the home master kept rt:all's slot, each topic whose owner changed is subscribed on its new
// owner (the old one has already dropped it); any other change (a failover, a master added or
// removed) makes the node reconnect to the new map as after a failure. A dropped or refused
// subscription with an unchanged map means the home master has not learnt of the move yet:
// the map is read again every 200 ms, and after 10 tries the node reconnects.
//
// Failure: as BrokerRedis. Any connection dropping closes them all, pending waits end with
// reached = false, and the node rediscovers and reconnects with backoff (100 ms doubling to 2 s).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "boundary/realtime/ports/broker.hpp"
#include "core/cluster_codec.hpp"
#include "core/redis_cluster.hpp"
#include "shell/adapters/cluster_requests.hpp"
#include "shell/adapters/redis_link.hpp"

namespace boundary::realtime::shell {

struct Metrics;

class BrokerRedisCluster final : public Broker {
 public:
  struct Options {
    std::vector<core::Endpoint> seeds;
    std::string node_id;
    std::chrono::milliseconds reply_timeout{1000};
    std::function<std::size_t()> local_connections;  // for the heartbeat
    Metrics* metrics = nullptr;
  };

  BrokerRedisCluster(boost::asio::io_context& io, Options options);
  ~BrokerRedisCluster() override;

  void set_handler(Handler handler) override { handler_ = std::move(handler); }
  void start() override;
  bool distributed() const noexcept override { return true; }
  bool connected() const noexcept override { return up_.load(std::memory_order_acquire); }
  void publish(Fanout f, bool wait, Done done) override;
  void set_interest(Route route, std::string_view name, bool interested) override;
  void when_ready(std::function<void()> ready) override;

 private:
  enum class State { idle, discovering, connecting, subscribing, up };

  // Links to one master. Kept for the broker's lifetime once created (a link's pending
  // handlers refer to it), and reused when the same master appears in a later map.
  struct Shard {
    Shard(boost::asio::io_context& io, core::Endpoint e) : endpoint(std::move(e)), cmd(io, false), sub(io, true) {}
    core::Endpoint endpoint;
    RedisLink cmd;
    RedisLink sub;
    // Subscribe barrier: confirmations arrive in the order the (un)subscriptions were sent.
    std::uint64_t sub_sent = 0;
    std::uint64_t sub_confirmed = 0;
    std::unordered_map<std::string, unsigned> unsubscribing;  // our SUNSUBSCRIBEs not yet confirmed
  };
  struct ReadyWaiter {
    std::vector<std::pair<Shard*, std::uint64_t>> targets;  // confirmations each shard must reach
    std::function<void()> fn;
  };

  void do_connect();
  void on_map(const redisReply* reply, const std::string& asked_host);
  void on_links(std::uint64_t epoch, const boost::system::error_code& ec);
  void on_down();
  void restart(std::string_view why);
  void set_up(bool up);
  void subscribe_all();
  void subscribe(bool topic, const std::string& channel, bool on);
  void on_push(Shard* shard, const redisReply* reply);
  void on_message(std::string_view channel, std::string_view payload);
  void do_publish(Fanout f, bool wait, Done done);
  void spublish(std::size_t shard, std::shared_ptr<const std::pair<std::string, std::string>> msg, std::uint64_t id,
                bool asking, bool follow);
  void request_refresh(bool force);
  void on_refresh(const redisReply* reply, const std::string& asked_host);
  void do_heartbeat();
  void do_sweep();
  void ready_reached();
  std::size_t shard_for(std::string_view channel) const;
  std::vector<std::pair<Shard*, std::uint64_t>> sub_targets() const;
  void remap(core::SlotMap map);
  Shard* shard_at(const core::Endpoint& e);

  boost::asio::io_context& io_;
  Options opt_;
  RedisLink probe_;  // asks a seed for the slot map
  std::vector<std::unique_ptr<Shard>> pool_;
  std::vector<Shard*> shards_;  // the current map's masters, in map order
  core::SlotMap map_;
  std::size_t home_ = 0;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer sweep_timer_;
  std::atomic<bool> up_{false};
  State state_ = State::idle;
  std::uint64_t epoch_ = 0;  // bumped on every teardown: handlers of an earlier attempt do nothing
  int links_pending_ = 0;
  bool links_failed_ = false;
  unsigned attempt_ = 0;  // connection attempts since the last success
  std::chrono::milliseconds backoff_{100};
  bool refreshing_ = false;
  bool force_refresh_ = false;
  unsigned stale_refreshes_ = 0;
  std::uint64_t spublish_errors_ = 0;  // forced refreshes in a row that found the map unchanged
  boost::asio::steady_timer refresh_timer_;
  Handler handler_;
  std::set<std::string> topics_;  // rt:t: channels, sharded
  std::set<std::string> others_;   // rt:u: and rt:r: channels, on the home master
  ClusterRequests requests_;
  std::deque<ReadyWaiter> ready_waiters_;
};

}  // namespace boundary::realtime::shell
