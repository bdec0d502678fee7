#include "shell/adapters/broker_redis.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "shell/adapters/random.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;
using Kind = core::RespValue::Kind;

namespace {
constexpr auto heartbeat_interval = std::chrono::milliseconds(1000);
// A node whose heartbeat key is not refreshed for this long is gone (three missed beats).
constexpr std::string_view heartbeat_ttl_ms = "3000";
// Pending waits are checked this often, so a wait ends at most this late past its timeout.
constexpr auto sweep_interval = std::chrono::milliseconds(50);
constexpr auto min_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::milliseconds(2000);
// A forced refresh that finds the map unchanged is retried this often, this many times.
constexpr auto stale_refresh_interval = std::chrono::milliseconds(200);
constexpr unsigned max_stale_refreshes = 10;
// Heartbeats in a row a shard may leave PINGs unanswered before it counts as lost.
constexpr unsigned max_stalled_beats = 3;

// Claims or refreshes the node key: KEYS[1] node key, ARGV[1] instance token, ARGV[2] local
// connections, ARGV[3] TTL in ms. 1: ours; 0: held by another instance (another running node
// with this id). One script, so the check and the write are one step.
constexpr std::string_view claim_script =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[2], 'PX', ARGV[3]) return 1";
// Deletes the node key if it is still ours.
constexpr std::string_view release_script =
    "local v = redis.call('GET', KEYS[1]) "
    "if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then return redis.call('DEL', KEYS[1]) end "
    "return 0";

constexpr PubSubType global_pubsub{
    "SUBSCRIBE", "UNSUBSCRIBE", "PUBLISH", "subscribe", "unsubscribe", "message", false};
constexpr PubSubType shard_pubsub{
    "SSUBSCRIBE", "SUNSUBSCRIBE", "SPUBLISH", "ssubscribe", "sunsubscribe", "smessage", true};

// A single Redis as a slot map: one master serving every slot.
core::SlotMap single_map(const core::Endpoint& e) {
  core::SlotMap map;
  map.masters.push_back(e);
  map.owner.fill(0);
  return map;
}
}  // namespace

BrokerRedis::BrokerRedis(asio::io_context& io, Options options)
    : io_(io),
      opt_(std::move(options)),
      all_channel_(core::all_channel(opt_.prefix)),
      node_key_(core::node_key(opt_.prefix, opt_.node_id)),
      instance_(random_hex(16)),
      probe_(io, false, opt_.link),
      resolver_(io),
      reconnect_timer_(io),
      heartbeat_timer_(io),
      sweep_timer_(io),
      refresh_timer_(io),
      probe_timer_(io),
      requests_(opt_.node_id, core::reply_channel(opt_.prefix, opt_.node_id), opt_.reply_timeout, opt_.metrics) {
  if (opt_.topology.nodes.empty()) throw std::invalid_argument("a Redis Cluster needs at least one seed node");
  if (!opt_.topology.cluster) opt_.topology.nodes.resize(1);
}

BrokerRedis::~BrokerRedis() {
  // Runs after the loops stopped. Closing fails the pending commands, whose handlers use the
  // members: close every link while they are all alive, without reacting (no reconnect), then
  // end what was waiting.
  ++epoch_;
  probe_.close();
  for (auto& s : pool_) {
    s->cmd.set_down_handler({});
    s->sub.set_down_handler({});
    s->cmd.close();
    s->sub.close();
  }
  requests_.fail_all();
}

void BrokerRedis::start() {
  if (stream_tap_ && handler_)
    handler_ = [tap = stream_tap_, deliver = std::move(handler_)](const Fanout& f, Answer a) {
      if (f.route == Route::stream) tap(f);
      deliver(f, std::move(a));
    };
  // Presence events go to the presence store only (it announces them to the topic's subscribers).
  if (handler_)
    handler_ = [tap = presence_tap_, deliver = std::move(handler_)](const Fanout& f, Answer a) {
      if (f.route != Route::presence) return deliver(f, std::move(a));
      if (tap) tap(f);
      a(0);
    };
  asio::post(io_, [this] {
    do_connect();
    do_heartbeat();
    do_sweep();
  });
}

const PubSubType& BrokerRedis::type_for(bool topic) const noexcept {
  return topic && opt_.topology.cluster ? shard_pubsub : global_pubsub;
}

BrokerRedis::Shard* BrokerRedis::shard_at(const core::Endpoint& e) {
  for (auto& s : pool_)
    if (s->endpoint == e) return s.get();
  auto& s = pool_.emplace_back(std::make_unique<Shard>(io_, e, opt_.link));
  s->sub.set_push_handler([this, p = s.get()](const core::RespValue* r) { on_push(p, r); });
  s->cmd.set_down_handler([this] { on_link_down(); });
  s->sub.set_down_handler([this] { on_link_down(); });
  return s.get();
}

std::size_t BrokerRedis::shard_for(std::string_view channel) const {
  if (shards_.size() == 1) return 0;
  return static_cast<std::size_t>(map_.owner[core::key_slot(channel)]);
}

std::string BrokerRedis::describe() const {
  if (!opt_.topology.cluster) return "redis " + core::to_string(opt_.topology.nodes.front());
  return fmt::format("redis cluster ({} masters, home {})", shards_.size(),
                     shards_.empty() ? std::string("?") : core::to_string(shards_[home_]->endpoint));
}

void BrokerRedis::do_connect() {
  // Every attempt but the very first is a reconnect, including the first one after being up.
  if (!std::exchange(first_attempt_, false) && opt_.metrics)
    opt_.metrics->redis_reconnects.fetch_add(1, std::memory_order_relaxed);
  ++attempt_;
  if (opt_.topology.cluster) return discover();
  connect_shards(single_map(opt_.topology.nodes.front()));
}

// Asks the seeds in turn, then the masters of the last map (a seed may be the node that died).
void BrokerRedis::discover() {
  state_ = State::discovering;
  std::vector<core::Endpoint> candidates = opt_.topology.nodes;
  for (const auto& m : map_.masters)
    if (std::find(candidates.begin(), candidates.end(), m) == candidates.end()) candidates.push_back(m);
  const core::Endpoint seed = candidates[(attempt_ - 1) % candidates.size()];
  const auto epoch = epoch_;
  auto unusable = [this, seed](std::string why) {
    if (log_retry()) spdlog::warn("cluster: redis cluster node {} unusable ({}); retrying", core::to_string(seed), why);
    on_down();
  };
  resolver_.async_resolve(
      seed.host, std::to_string(seed.port),
      [this, epoch, seed, unusable](const error_code& ec, asio::ip::tcp::resolver::results_type results) {
        if (epoch != epoch_) return;
        if (ec) return unusable(ec.message());
        probe_.connect(results, seed.host, [this, epoch, seed, unusable](const LinkError& e) {
          if (epoch != epoch_) return;
          if (e.kind == LinkError::Kind::refused) return refuse("redis cluster node " + core::to_string(seed) + ": " + e.text);
          if (e) return unusable(e.text);
          // A seed that takes the command and never answers is given up on, as one that fails.
          probe_timer_.expires_after(RedisLink::connect_timeout);
          probe_timer_.async_wait([this, epoch, unusable](const error_code& ec) {
            if (!ec && epoch == epoch_ && state_ == State::discovering) {
              probe_.close();
              unusable("no answer to CLUSTER SLOTS");
            }
          });
          probe_.command({"CLUSTER", "SLOTS"}, [this, epoch, seed, unusable](const core::RespValue* r) {
            if (epoch != epoch_) return;
            probe_timer_.cancel();
            probe_.close();
            if (!r) return unusable("connection lost");
            if (r->kind == Kind::error && is_auth_error(r->str))
              return refuse("redis cluster node " + core::to_string(seed) + ": " + r->str);
            if (r->kind == Kind::error) return unusable(r->str);
            auto map = core::parse_cluster_slots(*r, seed.host);
            if (!map) {
              if (log_retry()) spdlog::warn("cluster: {}; retrying", map.error());
              return on_down();
            }
            connect_shards(std::move(*map));
          });
        });
      });
}

void BrokerRedis::connect_shards(core::SlotMap map) {
  map_ = std::move(map);
  shards_.clear();
  for (const auto& m : map_.masters) shards_.push_back(shard_at(m));
  home_ = shard_for(all_channel_);
  state_ = State::connecting;
  links_pending_ = static_cast<int>(2 * shards_.size());
  links_error_ = {};
  const auto epoch = epoch_;
  for (Shard* s : shards_) {
    resolver_.async_resolve(s->endpoint.host, std::to_string(s->endpoint.port),
                            [this, epoch, s](const error_code& ec, asio::ip::tcp::resolver::results_type results) {
                              if (epoch != epoch_) return;
                              if (ec) {
                                const LinkError e{LinkError::Kind::network, ec.message()};
                                on_links(epoch, s, e);
                                return on_links(epoch, s, e);
                              }
                              const auto& host = s->endpoint.host;
                              s->cmd.connect(results, host, [this, epoch, s](const LinkError& e) { on_links(epoch, s, e); });
                              s->sub.connect(results, host, [this, epoch, s](const LinkError& e) { on_links(epoch, s, e); });
                            });
  }
}

// Every shard's two links report here; the last one decides.
void BrokerRedis::on_links(std::uint64_t epoch, const Shard* shard, const LinkError& error) {
  if (epoch != epoch_ || state_ != State::connecting) return;
  // A refusal outranks a network error: it is the one retrying will not fix.
  if (error && (!links_error_ || (error.kind == LinkError::Kind::refused && links_error_.kind != LinkError::Kind::refused)))
    links_error_ = {error.kind, core::to_string(shard->endpoint) + ": " + error.text};
  if (--links_pending_ > 0) return;
  if (links_error_.kind == LinkError::Kind::refused) return refuse("redis " + links_error_.text);
  if (links_error_) {
    if (log_retry()) spdlog::warn("cluster: redis {}; retrying", links_error_.text);
    return on_down();
  }
  claim();
}

// Connected and authenticated: claim the node id before taking part in anything.
void BrokerRedis::claim() {
  state_ = State::claiming;
  for (Shard* s : shards_) {
    s->pings_out = s->stalled_beats = 0;
    s->answered = false;
  }
  // Only a single Redis has a database number, and it has one shard.
  if (opt_.topology.db != 0) shards_.front()->cmd.command({"SELECT", std::to_string(opt_.topology.db)});
  const auto epoch = epoch_;
  shards_[shard_for(node_key_)]->cmd.command(
      {"EVAL", claim_script, "1", node_key_, instance_, std::to_string(opt_.local_connections()), heartbeat_ttl_ms},
      [this, epoch](const core::RespValue* r) {
        if (epoch == epoch_ && state_ == State::claiming) on_claim(r);
      });
}

void BrokerRedis::on_claim(const core::RespValue* r) {
  if (!r) return;  // the link failed: on_down() runs
  if (r->kind == Kind::integer && r->integer == 1) return on_subscribing();
  if (r->kind == Kind::integer)
    return refuse(fmt::format(
        "node id '{}' is in use by another running node on redis prefix '{}' (key {}); give this node another "
        "--node-id, or wait for the other to stop (a crashed node frees its id within {} ms)",
        opt_.node_id, opt_.prefix, node_key_, heartbeat_ttl_ms));
  const std::string why = r->kind == Kind::error ? r->str : std::string("unexpected reply");
  if (r->kind == Kind::error && is_auth_error(r->str)) return refuse("redis refused the node: " + why);
  if (log_retry()) spdlog::warn("cluster: claiming node id '{}' failed ({}); retrying", opt_.node_id, why);
  on_down();
}

// Refused for a reason retrying will not fix (at startup the server stops); later, it is
// retried anyway, since an operator may fix Redis's side.
void BrokerRedis::refuse(const std::string& why) {
  if (log_retry() || startup_ == Startup::pending) spdlog::error("cluster: {}", why);
  set_startup(Startup::refused, why);
  on_down();
}

void BrokerRedis::set_startup(Startup s, std::string why) {
  std::lock_guard lock(startup_mutex_);
  if (startup_ != Startup::pending) return;
  startup_ = s;
  refusal_ = std::move(why);
  startup_cv_.notify_all();
}

std::string BrokerRedis::startup_refusal(std::chrono::milliseconds max_wait) {
  std::unique_lock lock(startup_mutex_);
  startup_cv_.wait_for(lock, max_wait, [this] { return startup_ != Startup::pending; });
  return startup_ == Startup::refused ? refusal_ : std::string();
}

void BrokerRedis::leave(std::chrono::milliseconds max_wait) {
  auto done = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
  auto left = std::make_shared<bool>(false);
  asio::post(io_, [this, done, left] {
    leaving_ = true;
    auto finish = [done, left] {
      std::lock_guard lock(done->first);
      *left = true;
      done->second.notify_all();
    };
    if (state_ != State::up && state_ != State::subscribing) return finish();
    shards_[shard_for(node_key_)]->cmd.command({"EVAL", release_script, "1", node_key_, instance_},
                                               [finish](const core::RespValue*) { finish(); });
  });
  std::unique_lock lock(done->first);
  done->second.wait_for(lock, max_wait, [&] { return *left; });
}

void BrokerRedis::on_subscribing() {
  state_ = State::subscribing;
  for (Shard* s : shards_) {
    s->sub_sent = s->sub_confirmed = 0;
    s->unsubscribing.clear();
  }
  subscribe_all();
  // The node counts as connected once every subscription on every shard is confirmed: from then
  // on, fan-outs from any node reach its connections.
  ready_waiters_.push_back({sub_targets(), [this] {
                              if (state_ != State::subscribing) return;
                              state_ = State::up;
                              attempt_ = 0;
                              backoff_ = min_backoff;
                              set_up(true);
                              set_startup(Startup::joined);
                              spdlog::info("cluster: connected to {} as node {}", describe(), opt_.node_id);
                            }});
  ready_reached();
}

std::vector<std::pair<BrokerRedis::Shard*, std::uint64_t>> BrokerRedis::sub_targets() const {
  std::vector<std::pair<Shard*, std::uint64_t>> t;
  t.reserve(shards_.size());
  for (Shard* s : shards_) t.emplace_back(s, s->sub_sent);
  return t;
}

void BrokerRedis::subscribe_all() {
  // One command per channel keeps commands small; they are pipelined into few writes anyway.
  Shard& home = *shards_[home_];
  home.sub.command({global_pubsub.subscribe, all_channel_, requests_.reply_channel()});
  home.sub_sent += 2;
  for (const auto& c : others_) subscribe(false, c, true);
  for (const auto& c : topics_) subscribe(true, c, true);
}

void BrokerRedis::subscribe(bool topic, const std::string& channel, bool on) {
  const PubSubType& type = type_for(topic);
  Shard& s = *shards_[topic ? shard_for(channel) : home_];
  s.sub.command({on ? type.subscribe : type.unsubscribe, channel});
  if (!on) ++s.unsubscribing[channel];
  ++s.sub_sent;
}

// A link dropped. While the other links of the attempt are still connecting, nothing else says
// so: a Redis that ends the TLS session after the handshake (a client certificate it requires and
// did not get, under TLS 1.3) would otherwise leave no trace in the log.
void BrokerRedis::on_link_down() {
  if (state_ == State::connecting && log_retry())
    spdlog::warn("cluster: {} closed the connection while the node was connecting; retrying", describe());
  on_down();
}

void BrokerRedis::on_down() {
  if (state_ == State::idle) return;
  ++epoch_;
  const bool was_up = state_ == State::up;
  const bool was_joining = state_ == State::claiming || state_ == State::subscribing;
  state_ = State::idle;
  resolver_.cancel();
  probe_timer_.cancel();
  probe_.close();
  for (Shard* s : shards_) {
    s->cmd.close();
    s->sub.close();
  }
  refreshing_ = force_refresh_ = false;
  stale_refreshes_ = 0;
  refresh_timer_.cancel();
  set_up(false);
  set_startup(Startup::unreachable);
  if (was_up)
    spdlog::warn("cluster: lost {}; serving local connections only",
                 opt_.topology.cluster ? std::string("the redis cluster") : describe());
  else if (was_joining && log_retry())
    spdlog::warn("cluster: {} closed the connection while the node was joining; retrying", describe());
  requests_.fail_all();
  auto waiters = std::move(ready_waiters_);
  ready_waiters_.clear();
  for (auto& w : waiters) w.fn();
  reconnect_timer_.expires_after(backoff_);
  backoff_ = std::min(max_backoff, backoff_ * 2);
  reconnect_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_connect();
  });
}

// The topology moved under us: start over from the slot map, as after a failure but promptly.
void BrokerRedis::restart(std::string_view why) {
  spdlog::warn("cluster: {}; reconnecting to the current slot map", why);
  backoff_ = min_backoff;
  on_down();
}

void BrokerRedis::set_up(bool up) {
  up_.store(up, std::memory_order_release);
  if (opt_.metrics) opt_.metrics->redis_up.store(up ? 1 : 0, std::memory_order_relaxed);
}

void BrokerRedis::on_push(Shard* s, const core::RespValue* r) {
  if (!r || std::find(shards_.begin(), shards_.end(), s) == shards_.end()) return;
  // A PING's answer: "+PONG" without subscriptions, ["pong", ""] with.
  if (r->kind == Kind::status || (r->kind == Kind::array && !r->elements.empty() && r->elements[0].str == "pong")) {
    if (s->pings_out > 0) --s->pings_out;
    s->answered = true;
    return;
  }
  if (r->kind == Kind::error) {
    // A refused (un)subscribe, e.g. MOVED while a slot migrates: it still answers one command.
    spdlog::warn("cluster: {} refused a subscription: {}", core::to_string(s->endpoint), r->str);
    ++s->sub_confirmed;
    ready_reached();
    return request_refresh(true);
  }
  if (r->kind != Kind::array || r->elements.size() < 3) return;
  const std::string& kind = r->elements[0].str;
  for (const PubSubType* type : {&global_pubsub, &shard_pubsub}) {
    if (kind == type->message) return on_message(r->elements[1].str, r->elements[2].str);
    if (kind == type->unsubscribed) return on_unsubscribed(s, r->elements[1].str);
    if (kind == type->subscribed) {
      ++s->sub_confirmed;
      return ready_reached();
    }
  }
}

void BrokerRedis::on_unsubscribed(Shard* s, const std::string& channel) {
  auto it = s->unsubscribing.find(channel);
  if (it == s->unsubscribing.end()) {
    // Not ours: the shard gave the slot away and dropped the subscription (sharded pub/sub
    // only). Unless our map already has the channel elsewhere (then it is subscribed there),
    // find out where.
    if (topics_.contains(channel) && shards_[shard_for(channel)] == s) request_refresh(true);
    return;
  }
  if (--it->second == 0) s->unsubscribing.erase(it);
  ++s->sub_confirmed;
  ready_reached();
}

void BrokerRedis::ready_reached() {
  while (!ready_waiters_.empty()) {
    for (const auto& [shard, target] : ready_waiters_.front().targets)
      if (shard->sub_confirmed < target) return;
    auto fn = std::move(ready_waiters_.front().fn);
    ready_waiters_.pop_front();
    fn();
  }
}

void BrokerRedis::on_message(std::string_view channel, std::string_view payload) {
  requests_.on_message(channel, payload, handler_, [this](const std::string& origin, std::uint64_t id, std::size_t n) {
    asio::post(io_, [this, origin, id, n] {
      if (state_ != State::up && state_ != State::subscribing) return;
      shards_[home_]->cmd.command(
          {global_pubsub.publish, core::reply_channel(opt_.prefix, origin), core::encode_reply(id, n)});
    });
  });
}

void BrokerRedis::publish(Fanout f, bool wait, Done done) {
  asio::post(io_, [this, f = std::move(f), wait, done = std::move(done)]() mutable {
    do_publish(std::move(f), wait, std::move(done));
  });
}

void BrokerRedis::do_publish(Fanout f, bool wait, Done done) {
  if (state_ != State::up) {
    if (done) done(FanoutResult{false, 0, false});
    return;
  }
  const std::uint64_t id = wait ? requests_.begin(std::move(done)) : 0;
  // Counting a topic's subscribers goes where its messages go (sharded on a Redis Cluster).
  const bool topic = f.route == Route::topic || f.route == Route::topic_count;
  auto msg = std::make_shared<const std::pair<std::string, std::string>>(core::channel_for(opt_.prefix, f.route, f.target),
                                                                        core::encode_fanout(f, opt_.node_id, id));
  const std::size_t shard = topic ? shard_for(msg->first) : home_;
  send_publish(type_for(topic), shard, std::move(msg), id, false, true);
  if (!wait && done) done(FanoutResult{true, 0, true});
}

void BrokerRedis::run_script(const std::string& topic, const std::string& script, std::vector<std::string> keys,
                             std::vector<std::string> args, std::string header, ScriptDone done) {
  if (state_ != State::up) return done(nullptr);
  const auto channel = core::channel_for(opt_.prefix, Route::topic, topic);
  const auto count = std::to_string(keys.size());
  std::vector<std::string_view> argv{"EVAL", script, count};
  argv.reserve(keys.size() + args.size() + 6);
  for (const auto& k : keys) argv.push_back(k);
  if (!header.empty()) {
    argv.push_back(channel);
    argv.push_back(type_for(true).publish);
    argv.push_back(header);
  }
  for (const auto& a : args) argv.push_back(a);
  shards_[shard_for(channel)]->cmd.command(argv, [this, epoch = epoch_, done = std::move(done)](const core::RespValue* r) {
    if (r && r->kind == Kind::error) {
      // A moved slot: read the map again; this script is not retried (the caller sees it failed).
      if (epoch == epoch_ && core::parse_redirect(r->str)) request_refresh(false);
      if (publish_errors_++ % 1000 == 0) spdlog::warn("cluster: script refused (history or presence): {}", r->str);
    }
    done(r);
  });
}

void BrokerRedis::run(std::function<void()> fn) { asio::post(io_, std::move(fn)); }

void BrokerRedis::key_command(std::string key, std::vector<std::string> argv, ScriptDone done) {
  asio::post(io_, [this, key = std::move(key), argv = std::move(argv), done = std::move(done)] {
    if (state_ != State::up) return done(nullptr);
    const std::vector<std::string_view> views(argv.begin(), argv.end());
    shards_[shard_for(key)]->cmd.command(views, [this, epoch = epoch_, done](const core::RespValue* r) {
      if (r && r->kind == Kind::error && epoch == epoch_ && core::parse_redirect(r->str)) request_refresh(false);
      done(r);
    });
  });
}

void BrokerRedis::topic_channels(std::string topic_prefix, TopicsListed done) {
  asio::post(io_, [this, topic_prefix = std::move(topic_prefix), done = std::move(done)]() mutable {
    if (state_ != State::up) return done(std::nullopt);
    struct Gather {
      std::size_t waiting = 0;
      bool failed = false;
      std::vector<std::string> topics;
      TopicsListed done;
    };
    auto g = std::make_shared<Gather>();
    g->waiting = shards_.size();
    g->done = std::move(done);
    const auto pattern = core::topic_channel_pattern(opt_.prefix, topic_prefix);
    // Topic channels live on the shard owning their slot: every master answers for its own.
    const std::string_view which = type_for(true).sharded ? "SHARDCHANNELS" : "CHANNELS";
    for (Shard* s : shards_)
      s->cmd.command({"PUBSUB", which, pattern}, [this, g](const core::RespValue* r) {
        if (!r || r->kind != Kind::array) {
          if (g->waiting > 0 && !g->failed && r && r->kind == Kind::error)
            spdlog::warn("cluster: listing topic channels refused: {}", r->str);
          g->failed = true;
        } else {
          for (const auto& e : r->elements)
            if (auto topic = core::topic_of_channel(opt_.prefix, e.str)) g->topics.emplace_back(*topic);
        }
        if (--g->waiting > 0) return;
        if (g->failed) return g->done(std::nullopt);
        std::sort(g->topics.begin(), g->topics.end());
        g->topics.erase(std::unique(g->topics.begin(), g->topics.end()), g->topics.end());
        g->done(std::move(g->topics));
      });
  });
}

void BrokerRedis::topic_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                               std::vector<std::string> args, ScriptDone done) {
  asio::post(io_, [this, topic = std::move(topic), &script, keys = std::move(keys), args = std::move(args),
                   done = std::move(done)]() mutable {
    run_script(topic, script, std::move(keys), std::move(args), {}, std::move(done));
  });
}

void BrokerRedis::presence_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                                  std::vector<std::string> args, ScriptDone done) {
  asio::post(io_, [this, topic = std::move(topic), &script, keys = std::move(keys), args = std::move(args),
                   done = std::move(done)]() mutable {
    auto header = core::encode_fanout(Fanout{Route::presence, topic, {}}, opt_.node_id, 0);
    run_script(topic, script, std::move(keys), std::move(args), std::move(header), std::move(done));
  });
}

void BrokerRedis::stream_script(std::string topic, const std::string& script, std::vector<std::string> keys,
                                std::vector<std::string> args, bool wait, StreamSent sent) {
  asio::post(io_, [this, topic = std::move(topic), &script, keys = std::move(keys), args = std::move(args), wait,
                   sent = std::move(sent)]() mutable {
    if (state_ != State::up) return sent(nullptr, FanoutResult{false, 0, false}, false);
    // `sent` runs once both are in: the script's reply (or the link's failure) and, with `wait`,
    // the gathered count. A count that times out before the reply still waits for the reply:
    // the offset is the caller's to report, and a script whose fate is unknown must not be
    // mistaken for one that did not run.
    struct Pending {
      std::optional<core::RespValue> reply;
      bool replied = false;
      bool lost = false;  // the link failed after the script was sent: it may have run
      std::optional<FanoutResult> result;
      StreamSent sent;
    };
    auto p = std::make_shared<Pending>();
    p->sent = std::move(sent);
    auto finish = [p] {
      if (!p->replied || !p->result || !p->sent) return;
      auto fn = std::exchange(p->sent, {});
      fn(p->reply ? &*p->reply : nullptr, *p->result, p->lost);
    };
    std::uint64_t id = 0;
    if (wait)
      id = requests_.begin([p, finish](FanoutResult r) {
        p->result = r;
        finish();
      });
    auto header = core::encode_fanout(Fanout{Route::stream, topic, {}}, opt_.node_id, id);
    run_script(topic, script, std::move(keys), std::move(args), std::move(header),
               [this, id, p, finish](const core::RespValue* r) {
                 const bool ok = r && r->kind == Kind::array && r->elements.size() >= 2 &&
                                 r->elements[1].kind == Kind::integer && r->elements[1].integer >= 0;
                 p->replied = true;
                 p->lost = r == nullptr;
                 if (r) p->reply = *r;
                 if (id == 0) {
                   p->result = FanoutResult{ok, 0, ok};
                 } else if (ok) {
                   requests_.published(id, static_cast<std::size_t>(r->elements[1].integer));
                 } else {
                   requests_.failed(id);
                 }
                 finish();
               });
  });
}

// The reply counts the subscribers that received it: with PUBLISH on the home shard every node
// subscribed to the channel, with SPUBLISH the topic's subscribers in the owning shard, which are
// exactly the nodes subscribed to it. `follow`: a redirect may still be followed (once).
void BrokerRedis::send_publish(const PubSubType& type, std::size_t shard, Published msg, std::uint64_t id, bool asking,
                               bool follow) {
  Shard& s = *shards_[shard];
  if (asking) s.cmd.command({"ASKING"});
  if (id == 0 && !type.sharded) return s.cmd.command({type.publish, msg->first, msg->second});  // no answer to read
  const auto epoch = epoch_;
  s.cmd.command({type.publish, msg->first, msg->second},
                [this, epoch, type = &type, from = &s, msg, id, follow](const core::RespValue* r) {
                  if (epoch != epoch_) return;
                  if (r && r->kind == Kind::integer && r->integer >= 0) {
                    if (id != 0) requests_.published(id, static_cast<std::size_t>(r->integer));
                    return;
                  }
                  if (r && r->kind == Kind::error) return on_publish_refused(*type, *from, msg, id, r->str, follow);
                  if (id != 0) requests_.failed(id);
                });
}

void BrokerRedis::on_publish_refused(const PubSubType& type, const Shard& from, const Published& msg, std::uint64_t id,
                                     const std::string& error, bool follow) {
  if (auto redirect = type.sharded ? core::parse_redirect(error) : std::nullopt) {
    request_refresh(false);
    if (redirect->to.host.empty()) redirect->to.host = from.endpoint.host;
    if (follow)
      for (std::size_t i = 0; i < shards_.size(); ++i)
        if (shards_[i]->endpoint == redirect->to) return send_publish(type, i, msg, id, redirect->ask, false);
  }
  // Rate-limited: under CLUSTERDOWN every topic fan-out is refused.
  if (publish_errors_++ % 1000 == 0)
    spdlog::warn("cluster: {} {} refused: {} ({} so far)", type.publish, msg->first, error, publish_errors_);
  if (id != 0) requests_.failed(id);
}

// Reads the slot map again from the home master; `force`: a subscription was dropped or
// refused, so the map must change (or the home master has not heard of the move yet). A single
// Redis has no map to read.
void BrokerRedis::request_refresh(bool force) {
  if (!opt_.topology.cluster || (state_ != State::up && state_ != State::subscribing)) return;
  force_refresh_ = force_refresh_ || force;
  if (refreshing_) return;
  refreshing_ = true;
  const auto epoch = epoch_;
  Shard& home = *shards_[home_];
  home.cmd.command({"CLUSTER", "SLOTS"}, [this, epoch, host = home.endpoint.host](const core::RespValue* r) {
    if (epoch == epoch_) on_refresh(r, host);
  });
}

void BrokerRedis::on_refresh(const core::RespValue* r, const std::string& asked_host) {
  refreshing_ = false;
  const bool force = std::exchange(force_refresh_, false);
  if (!r) return;  // the link failed: on_down() handles it
  auto map = core::parse_cluster_slots(*r, asked_host);
  if (!map) return restart(map.error());
  if (*map != map_) {
    stale_refreshes_ = 0;
    return remap(std::move(*map));
  }
  if (!force) return;
  if (++stale_refreshes_ > max_stale_refreshes) return restart("a shard dropped or refused a subscription");
  const auto epoch = epoch_;
  refresh_timer_.expires_after(stale_refresh_interval);
  refresh_timer_.async_wait([this, epoch](const error_code& ec) {
    if (!ec && epoch == epoch_) request_refresh(true);
  });
}

// Slots moved between the masters we are connected to: move the topics whose owner changed.
// Anything else is a new topology: reconnect.
void BrokerRedis::remap(core::SlotMap map) {
  std::vector<Shard*> shards;
  for (const auto& m : map.masters) {
    auto it = std::find_if(shards_.begin(), shards_.end(), [&](const Shard* s) { return s->endpoint == m; });
    if (it == shards_.end()) return restart("the cluster's masters changed");
    shards.push_back(*it);
  }
  if (shards.size() != shards_.size()) return restart("the cluster's masters changed");
  const auto home = static_cast<std::size_t>(map.owner[core::key_slot(all_channel_)]);
  if (shards[home] != shards_[home_]) return restart(all_channel_ + " moved to another master");
  std::vector<std::pair<const std::string*, Shard*>> before;
  before.reserve(topics_.size());
  for (const auto& c : topics_) before.emplace_back(&c, shards_[shard_for(c)]);
  map_ = std::move(map);
  shards_ = std::move(shards);
  home_ = home;
  std::size_t moved = 0;
  for (const auto& [channel, old_owner] : before) {
    if (shards_[shard_for(*channel)] == old_owner) continue;
    subscribe(true, *channel, true);
    ++moved;
  }
  spdlog::info("cluster: the slot map changed; {} topic subscriptions moved to their new master", moved);
}

void BrokerRedis::set_interest(Route route, std::string_view name, bool interested) {
  asio::post(io_, [this, topic = route == Route::topic, channel = core::channel_for(opt_.prefix, route, name), interested] {
    auto& set = topic ? topics_ : others_;
    if (interested ? !set.insert(channel).second : set.erase(channel) == 0) return;
    if (state_ != State::subscribing && state_ != State::up) return;  // subscribe_all() sends it on connect
    subscribe(topic, channel, interested);
  });
}

void BrokerRedis::when_ready(std::function<void()> ready) {
  asio::post(io_, [this, ready = std::move(ready)]() mutable {
    if (state_ != State::subscribing && state_ != State::up) return ready();  // unreachable: nothing to wait for
    ready_waiters_.push_back({sub_targets(), std::move(ready)});
    ready_reached();
  });
}

void BrokerRedis::do_heartbeat() {
  if (state_ == State::claiming || state_ == State::subscribing || state_ == State::up) check_liveness();
  if (state_ == State::up || state_ == State::subscribing) send_heartbeat();
  heartbeat_timer_.expires_after(heartbeat_interval);
  heartbeat_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_heartbeat();
  });
}

void BrokerRedis::send_heartbeat() {
  if (leaving_) return;
  const auto epoch = epoch_;
  shards_[shard_for(node_key_)]->cmd.command(
      {"EVAL", claim_script, "1", node_key_, instance_, std::to_string(opt_.local_connections()), heartbeat_ttl_ms},
      [this, epoch](const core::RespValue* r) {
        if (epoch != epoch_ || !r || leaving_) return;
        // Our key expired (Redis unanswered for 3 s) and another node took the id meanwhile.
        if (r->kind == Kind::integer && r->integer == 0)
          refuse(fmt::format("node id '{}' was taken by another node on redis prefix '{}'", opt_.node_id, opt_.prefix));
      });
}

// A Redis that accepts bytes but never finishes a reply (hung, or stuck mid-reply) looks
// connected to TCP: every link is PINGed each beat, and a shard with PINGs outstanding that
// answered none of them for max_stalled_beats beats is treated as lost. A slow Redis that
// answers late still answers some PING every beat, so latency alone never trips this.
void BrokerRedis::check_liveness() {
  for (Shard* s : shards_) {
    s->stalled_beats = s->pings_out > 0 && !s->answered ? s->stalled_beats + 1 : 0;
    s->answered = false;
    if (s->stalled_beats >= max_stalled_beats) {
      spdlog::warn("cluster: redis {} stopped answering; reconnecting", core::to_string(s->endpoint));
      return on_down();
    }
  }
  for (Shard* s : shards_) {
    s->pings_out += 2;
    s->cmd.command({"PING"}, [this, epoch = epoch_, s](const core::RespValue* r) {
      if (epoch != epoch_ || !r) return;
      if (s->pings_out > 0) --s->pings_out;
      s->answered = true;
    });
    s->sub.command({"PING"});
  }
}

void BrokerRedis::do_sweep() {
  requests_.expire(std::chrono::steady_clock::now());
  sweep_timer_.expires_after(sweep_interval);
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_sweep();
  });
}

}  // namespace boundary::realtime::shell
