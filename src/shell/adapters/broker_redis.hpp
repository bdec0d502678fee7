#pragma once
// Broker over Redis pub/sub (docs/cluster.md), on one Redis or on a Redis Cluster. Which of the
// two is a value, RedisTopology; everything else (connecting, backoff, heartbeat, the subscribe
// barrier, answers and timeouts) is one code path. A single Redis is a cluster of one shard that
// owns every slot, uses plain pub/sub only and has no slot map to discover or refresh — as
// redis's pubsub.c serves global and sharded pub/sub through one path switched by a type table.
//
// Channels (every name starts with the --redis-prefix, "rt" here): rt:all, rt:reply:<node> and
// the rt:u: / rt:r: channels of names this node has local connections for are plain PUBLISH /
// SUBSCRIBE on the *home* shard: on a single Redis that Redis, on a cluster the master owning
// the slot of "rt:all", which every node agrees on, so PUBLISH's reply counts every node. rt:t:
// topic channels go to the shard owning their slot: on
// a cluster with sharded pub/sub (SPUBLISH / SSUBSCRIBE), spreading topic traffic over the
// shards; SPUBLISH's reply counts the topic's subscribers there, exactly the nodes that want it.
// The node key rt:node:<id> goes to the shard owning its slot. On a single Redis, `db` is
// SELECTed on the command connection first (pub/sub itself ignores the database).
//
// Node id claim: once connected, and before subscribing, the node claims rt:node:<id> with a
// random instance token ("<token> <local connections>", PX 3000) by a script that writes only
// when the key is absent or already ours; the heartbeat (every second) runs the same script. A
// key held by another instance means another running node has this id: the attempt fails, and at
// startup the server refuses to start (startup_refusal). A node that stops cleanly deletes its
// key (only if still ours, leave()); one that crashed frees the id when the key expires, 3 s on.
//
// Security: every link AUTHs (user and password, or password only) before anything else, on
// every (re)connect and on every shard; rediss:// wraps each link in TLS (RedisLink).
// Credentials rejected (WRONGPASS, NOAUTH, NOPERM) are a refusal like a duplicate id.
//
// Liveness: from the claim on, each heartbeat also PINGs every link; a shard that leaves pings
// unanswered for 3 beats (a Redis hanging mid-reply) is treated as lost. Connecting is bounded by
// RedisLink::connect_timeout, and so is the wait for CLUSTER SLOTS while discovering.
//
// Two connections per shard (commands, subscriptions), all on one event loop (loop 0),
// pipelined. Ordering holds per connection: one node's fan-outs leave on one command connection
// in call order, so every subscriber receives them in that order. On a single Redis that is
// every fan-out; on a cluster it is per topic and among non-topic fan-outs, with no order
// between a topic fan-out and a non-topic one (docs/cluster.md, "Ordering on Redis Cluster").
//
// Cluster topology: the slot map comes from CLUSTER SLOTS, asked of the seeds in turn (then of
// the masters last seen). The node reads it again (from the home master) when SPUBLISH is
// answered MOVED or ASK (the message itself follows the redirect once, after ASKING for ASK),
// when a shard drops one of our subscriptions (Redis sends an unsolicited sunsubscribe when a
// slot moves away) and when a shard refuses one. If only slots moved between the same masters
// and the home master kept rt:all's slot, each topic whose owner changed is subscribed on its
// new owner (the old one has already dropped it); any other change (a failover, a master added
// or removed) makes the node reconnect to the new map as after a failure. A dropped or refused
// subscription with an unchanged map means the home master has not learnt of the move yet: the
// map is read again every 200 ms, and after 10 tries the node reconnects.
//
// Failure: when any connection drops, all are closed, pending waits end with reached = false,
// and the node reconnects (on a cluster: rediscovers first) with exponential backoff (100 ms
// doubling to 2 s); once back, every current interest is subscribed again, and the node reports
// the cluster reachable only when every subscription is confirmed. Fan-outs are never queued
// while down and never retried.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
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

// Where the broker's channels live: one Redis (with a database number), or a Redis Cluster
// reached through seed nodes (database 0 only).
struct RedisTopology {
  bool cluster = false;
  std::vector<core::Endpoint> nodes;  // single: the one Redis; cluster: the seeds, tried in turn
  unsigned db = 0;                    // single only

  static RedisTopology single(const core::RedisUrl& url) { return {false, {{url.host, url.port}}, url.db}; }
  static RedisTopology redis_cluster(std::vector<core::Endpoint> seeds) { return {true, std::move(seeds), 0}; }
};

// The commands and push kinds of one flavour of pub/sub (pubsub.c's pubsubtype).
struct PubSubType {
  std::string_view subscribe, unsubscribe, publish;
  std::string_view subscribed, unsubscribed, message;  // the kinds Redis pushes back
  bool sharded;
};

class BrokerRedis final : public Broker {
 public:
  struct Options {
    RedisTopology topology;
    std::string node_id;
    std::string prefix = "rt";  // already validated (core::valid_redis_prefix)
    std::shared_ptr<const RedisLinkSettings> link;  // credentials and TLS; null: neither
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
  std::string startup_refusal(std::chrono::milliseconds max_wait) override;
  void leave(std::chrono::milliseconds max_wait) override;

  // History in Redis (HistoryRedis). Callbacks run on the broker's thread.
  using ScriptDone = std::function<void(const core::RespValue* reply)>;
  // `lost`: the link failed after the script was sent, so it may or may not have run.
  using StreamSent = std::function<void(const core::RespValue* reply, FanoutResult result, bool lost)>;
  // EVAL `script` with `keys` (all in the slot of `topic`'s channel) and `args` on the shard
  // owning that channel. nullptr: not sent (the cluster is unreachable) or the link dropped.
  void topic_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                    std::vector<std::string> args, ScriptDone done);
  // The same for a script that publishes a stream fan-out of `topic`: ARGV starts with the
  // channel, the publish command (PUBLISH; SPUBLISH on a cluster) and the fan-out header (route
  // stream, this node, a request id when `wait`), then `args`. The script's reply must be an
  // array whose second element is what the publish returned. `sent` runs once, after the reply
  // (or the link's failure) and, with `wait`, once the nodes' answers are in or the bounded wait
  // ended.
  void stream_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                     std::vector<std::string> args, bool wait, StreamSent sent);
  // Sees every stream fan-out this node receives, on the broker's thread, before it is
  // delivered. Before start().
  void set_stream_tap(std::function<void(const Fanout&)> tap) { stream_tap_ = std::move(tap); }
  // Presence in Redis (PresenceRedis). EVAL `script` on the shard owning `topic`'s channel with
  // ARGV starting with the channel, the publish command and the fan-out header (route presence,
  // this node, no request), then `args`; the script publishes its events itself. nullptr: not
  // sent (the cluster is unreachable) or the link dropped (it may have run).
  void presence_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                       std::vector<std::string> args, ScriptDone done);
  // Receives every presence fan-out (Route::presence) this node gets, on the broker's thread;
  // they go nowhere else. Before start().
  void set_presence_tap(std::function<void(const Fanout&)> tap) { presence_tap_ = std::move(tap); }
  // The topics some node has subscribers for (the topic channels subscribed on Redis: PUBSUB
  // CHANNELS, or SHARDCHANNELS on every master of a Redis Cluster), those starting with
  // `topic_prefix`. nullopt: the cluster is unreachable, or a shard did not answer. On the
  // broker's thread.
  using TopicsListed = std::function<void(std::optional<std::vector<std::string>> topics)>;
  void topic_channels(std::string topic_prefix, TopicsListed done);
  // Runs `argv` (a command naming `key`, and no key in another slot) on the shard owning `key`.
  // nullptr: not sent (the cluster is unreachable) or the link dropped. On the broker's thread.
  void key_command(std::string key, std::vector<std::string> argv, ScriptDone done);
  // The broker's event loop (timers of the stores that run on its thread).
  boost::asio::io_context& io() noexcept { return io_; }
  // Runs `fn` on the broker's thread.
  void run(std::function<void()> fn);

 private:
  void run_script(const std::string& topic, const std::string& script, std::vector<std::string> keys,
                  std::vector<std::string> args, std::string header, ScriptDone done);
  enum class State { idle, discovering, connecting, claiming, subscribing, up };
  enum class Startup { pending, joined, unreachable, refused };

  // Links to one master. Kept for the broker's lifetime once created (a link's pending
  // handlers refer to it), and reused when the same master appears in a later map.
  struct Shard {
    Shard(boost::asio::io_context& io, core::Endpoint e, const std::shared_ptr<const RedisLinkSettings>& link)
        : endpoint(std::move(e)), cmd(io, false, link), sub(io, true, link) {}
    core::Endpoint endpoint;
    RedisLink cmd;
    RedisLink sub;
    // Subscribe barrier: confirmations arrive in the order the (un)subscriptions were sent.
    std::uint64_t sub_sent = 0;
    std::uint64_t sub_confirmed = 0;
    std::unordered_map<std::string, unsigned> unsubscribing;  // our unsubscribes not yet confirmed
    unsigned pings_out = 0;      // PINGs not yet answered (both links)
    bool answered = false;       // a PING was answered since the last heartbeat
    unsigned stalled_beats = 0;  // heartbeats in a row with PINGs outstanding and none answered
  };
  struct ReadyWaiter {
    std::vector<std::pair<Shard*, std::uint64_t>> targets;  // confirmations each shard must reach
    std::function<void()> fn;
  };
  using Published = std::shared_ptr<const std::pair<std::string, std::string>>;  // channel, payload

  void do_connect();
  void discover();
  void connect_shards(core::SlotMap map);
  void on_links(std::uint64_t epoch, const Shard* shard, const LinkError& error);
  void claim();
  void on_claim(const core::RespValue* reply);
  void refuse(const std::string& why);
  void set_startup(Startup s, std::string why = {});
  void check_liveness();
  void on_subscribing();
  void on_down();
  void on_link_down();
  void restart(std::string_view why);
  void set_up(bool up);
  void subscribe_all();
  void subscribe(bool topic, const std::string& channel, bool on);
  void on_push(Shard* shard, const core::RespValue* reply);
  void on_unsubscribed(Shard* shard, const std::string& channel);
  void on_message(std::string_view channel, std::string_view payload);
  void do_publish(Fanout f, bool wait, Done done);
  void send_publish(const PubSubType& type, std::size_t shard, Published msg, std::uint64_t id, bool asking,
                    bool follow);
  void on_publish_refused(const PubSubType& type, const Shard& from, const Published& msg, std::uint64_t id,
                          const std::string& error, bool follow);
  void request_refresh(bool force);
  void on_refresh(const core::RespValue* reply, const std::string& asked_host);
  void remap(core::SlotMap map);
  void do_heartbeat();
  void send_heartbeat();
  void do_sweep();
  void ready_reached();
  const PubSubType& type_for(bool topic) const noexcept;
  std::size_t shard_for(std::string_view channel) const;
  std::vector<std::pair<Shard*, std::uint64_t>> sub_targets() const;
  Shard* shard_at(const core::Endpoint& e);
  std::string describe() const;
  bool log_retry() const noexcept { return attempt_ == 1 || attempt_ % 20 == 0; }

  boost::asio::io_context& io_;
  Options opt_;
  const std::string all_channel_;
  const std::string node_key_;
  const std::string instance_;  // random: tells this run's claim from another node's
  RedisLink probe_;  // asks a seed for the slot map (cluster only)
  std::vector<std::unique_ptr<Shard>> pool_;
  std::vector<Shard*> shards_;  // the current map's masters, in map order
  core::SlotMap map_;
  std::size_t home_ = 0;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer reconnect_timer_;
  boost::asio::steady_timer heartbeat_timer_;
  boost::asio::steady_timer sweep_timer_;
  boost::asio::steady_timer refresh_timer_;
  boost::asio::steady_timer probe_timer_;  // bounds the wait for CLUSTER SLOTS while discovering
  std::atomic<bool> up_{false};
  State state_ = State::idle;
  std::uint64_t epoch_ = 0;  // bumped on every teardown: handlers of an earlier attempt do nothing
  int links_pending_ = 0;
  LinkError links_error_;    // the first link that failed to connect in this attempt, and why
  bool leaving_ = false;     // leave() ran: no more claims
  unsigned attempt_ = 0;     // connection attempts since the last success
  bool first_attempt_ = true;
  std::chrono::milliseconds backoff_{100};
  bool refreshing_ = false;
  bool force_refresh_ = false;
  unsigned stale_refreshes_ = 0;  // forced refreshes in a row that found the map unchanged
  std::uint64_t publish_errors_ = 0;
  Handler handler_;
  std::function<void(const Fanout&)> stream_tap_;
  std::function<void(const Fanout&)> presence_tap_;
  std::set<std::string> topics_;  // rt:t: channels, on their slot's shard
  std::set<std::string> others_;  // rt:u: and rt:r: channels, on the home shard
  ClusterRequests requests_;
  std::deque<ReadyWaiter> ready_waiters_;
  std::mutex startup_mutex_;
  std::condition_variable startup_cv_;
  Startup startup_ = Startup::pending;
  std::string refusal_;
};

}  // namespace boundary::realtime::shell
