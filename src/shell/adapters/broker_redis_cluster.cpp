#include "shell/adapters/broker_redis_cluster.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

#include <boost/asio/post.hpp>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto heartbeat_interval = std::chrono::milliseconds(1000);
constexpr std::string_view heartbeat_ttl_ms = "3000";  // three missed beats, as BrokerRedis
constexpr auto sweep_interval = std::chrono::milliseconds(50);
constexpr auto min_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::milliseconds(2000);
// A forced refresh that finds the map unchanged is retried this often, this many times.
constexpr auto stale_refresh_interval = std::chrono::milliseconds(200);
constexpr unsigned max_stale_refreshes = 10;

std::string_view str(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}

core::RespValue to_resp(const redisReply* r) {
  using K = core::RespValue::Kind;
  core::RespValue v;
  switch (r->type) {
    case REDIS_REPLY_STRING: v.kind = K::string; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_STATUS: v.kind = K::status; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_ERROR: v.kind = K::error; v.str.assign(r->str, r->len); break;
    case REDIS_REPLY_INTEGER: v.kind = K::integer; v.integer = r->integer; break;
    case REDIS_REPLY_ARRAY:
      v.kind = K::array;
      v.elements.reserve(r->elements);
      for (std::size_t i = 0; i < r->elements; ++i) v.elements.push_back(to_resp(r->element[i]));
      break;
    default: break;
  }
  return v;
}
}  // namespace

BrokerRedisCluster::BrokerRedisCluster(asio::io_context& io, Options options)
    : io_(io),
      opt_(std::move(options)),
      probe_(io, false),
      resolver_(io),
      reconnect_timer_(io),
      heartbeat_timer_(io),
      sweep_timer_(io),
      refresh_timer_(io),
      requests_(opt_.node_id, opt_.reply_timeout, opt_.metrics) {
  if (opt_.seeds.empty()) throw std::invalid_argument("a Redis Cluster needs at least one seed node");
}

BrokerRedisCluster::~BrokerRedisCluster() {
  // Runs after the loops stopped: close every link without reacting to it (no reconnect), then
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

void BrokerRedisCluster::start() {
  asio::post(io_, [this] {
    do_connect();
    do_heartbeat();
    do_sweep();
  });
}

BrokerRedisCluster::Shard* BrokerRedisCluster::shard_at(const core::Endpoint& e) {
  for (auto& s : pool_)
    if (s->endpoint == e) return s.get();
  auto& s = pool_.emplace_back(std::make_unique<Shard>(io_, e));
  s->sub.set_push_handler([this, p = s.get()](const redisReply* r) { on_push(p, r); });
  s->cmd.set_down_handler([this] { on_down(); });
  s->sub.set_down_handler([this] { on_down(); });
  return s.get();
}

std::size_t BrokerRedisCluster::shard_for(std::string_view channel) const {
  return static_cast<std::size_t>(map_.owner[core::key_slot(channel)]);
}

// Asks the seeds in turn, then the masters of the last map (a seed may be the node that died).
void BrokerRedisCluster::do_connect() {
  state_ = State::discovering;
  if (attempt_++ > 0 && opt_.metrics) opt_.metrics->redis_reconnects.fetch_add(1, std::memory_order_relaxed);
  std::vector<core::Endpoint> candidates = opt_.seeds;
  for (const auto& m : map_.masters)
    if (std::find(candidates.begin(), candidates.end(), m) == candidates.end()) candidates.push_back(m);
  const core::Endpoint seed = candidates[(attempt_ - 1) % candidates.size()];
  const auto epoch = epoch_;
  auto unreachable = [this, seed](std::string why) {
    if (attempt_ == 1 || attempt_ % 20 == 0)
      spdlog::warn("cluster: redis cluster node {} unusable ({}); retrying", core::to_string(seed), why);
    on_down();
  };
  resolver_.async_resolve(
      seed.host, std::to_string(seed.port),
      [this, epoch, seed, unreachable](const error_code& ec, asio::ip::tcp::resolver::results_type results) {
        if (epoch != epoch_) return;
        if (ec) return unreachable(ec.message());
        probe_.connect(results, [this, epoch, seed, unreachable](const error_code& e) {
          if (epoch != epoch_) return;
          if (e) return unreachable(e.message());
          probe_.command({"CLUSTER", "SLOTS"}, [this, epoch, seed, unreachable](const redisReply* r) {
            if (epoch != epoch_) return;
            probe_.close();
            if (!r) return unreachable("connection lost");
            if (r->type == REDIS_REPLY_ERROR) return unreachable(std::string(str(r)));
            on_map(r, seed.host);
          });
        });
      });
}

void BrokerRedisCluster::on_map(const redisReply* reply, const std::string& asked_host) {
  auto map = core::parse_cluster_slots(to_resp(reply), asked_host);
  if (!map) {
    if (attempt_ == 1 || attempt_ % 20 == 0) spdlog::warn("cluster: {}; retrying", map.error());
    return on_down();
  }
  map_ = std::move(*map);
  shards_.clear();
  for (const auto& m : map_.masters) shards_.push_back(shard_at(m));
  home_ = shard_for(core::all_channel);
  state_ = State::connecting;
  links_pending_ = static_cast<int>(2 * shards_.size());
  links_failed_ = false;
  const auto epoch = epoch_;
  for (Shard* s : shards_) {
    resolver_.async_resolve(s->endpoint.host, std::to_string(s->endpoint.port),
                            [this, epoch, s](const error_code& ec, asio::ip::tcp::resolver::results_type results) {
                              if (epoch != epoch_) return;
                              if (ec) {
                                on_links(epoch, ec);
                                return on_links(epoch, ec);
                              }
                              s->cmd.connect(results, [this, epoch](const error_code& e) { on_links(epoch, e); });
                              s->sub.connect(results, [this, epoch](const error_code& e) { on_links(epoch, e); });
                            });
  }
}

// Every master's two links report here; the last one decides.
void BrokerRedisCluster::on_links(std::uint64_t epoch, const error_code& ec) {
  if (epoch != epoch_ || state_ != State::connecting) return;
  if (ec) links_failed_ = true;
  if (--links_pending_ > 0) return;
  if (links_failed_) {
    if (attempt_ == 1 || attempt_ % 20 == 0) spdlog::warn("cluster: a redis cluster master is unreachable; retrying");
    return on_down();
  }
  state_ = State::subscribing;
  for (Shard* s : shards_) {
    s->sub_sent = s->sub_confirmed = 0;
    s->unsubscribing.clear();
  }
  const auto key = core::node_key(opt_.node_id);
  shards_[shard_for(key)]->cmd.command({"SET", key, std::to_string(opt_.local_connections()), "PX", heartbeat_ttl_ms});
  subscribe_all();
  // Connected once every subscription on every master is confirmed.
  ready_waiters_.push_back({sub_targets(), [this] {
                              if (state_ != State::subscribing) return;
                              state_ = State::up;
                              attempt_ = 0;
                              backoff_ = min_backoff;
                              set_up(true);
                              spdlog::info("cluster: connected to redis cluster ({} masters, home {}) as node {}",
                                           shards_.size(), core::to_string(shards_[home_]->endpoint), opt_.node_id);
                            }});
  ready_reached();
}

std::vector<std::pair<BrokerRedisCluster::Shard*, std::uint64_t>> BrokerRedisCluster::sub_targets() const {
  std::vector<std::pair<Shard*, std::uint64_t>> t;
  t.reserve(shards_.size());
  for (Shard* s : shards_) t.emplace_back(s, s->sub_sent);
  return t;
}

void BrokerRedisCluster::subscribe_all() {
  Shard& home = *shards_[home_];
  home.sub.command({"SUBSCRIBE", core::all_channel, requests_.reply_channel()});
  home.sub_sent += 2;
  for (const auto& c : others_) subscribe(false, c, true);
  for (const auto& c : topics_) subscribe(true, c, true);
}

void BrokerRedisCluster::subscribe(bool topic, const std::string& channel, bool on) {
  Shard& s = *shards_[topic ? shard_for(channel) : home_];
  if (topic) {
    s.sub.command({on ? "SSUBSCRIBE" : "SUNSUBSCRIBE", channel});
    if (!on) ++s.unsubscribing[channel];
  } else {
    s.sub.command({on ? "SUBSCRIBE" : "UNSUBSCRIBE", channel});
  }
  ++s.sub_sent;
}

void BrokerRedisCluster::on_down() {
  if (state_ == State::idle) return;
  ++epoch_;
  const bool was_up = state_ == State::up;
  state_ = State::idle;
  resolver_.cancel();
  probe_.close();
  for (Shard* s : shards_) {
    s->cmd.close();
    s->sub.close();
  }
  refreshing_ = force_refresh_ = false;
  stale_refreshes_ = 0;
  refresh_timer_.cancel();
  set_up(false);
  if (was_up) spdlog::warn("cluster: lost the redis cluster; serving local connections only");
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
void BrokerRedisCluster::restart(std::string_view why) {
  spdlog::warn("cluster: {}; reconnecting to the current slot map", why);
  backoff_ = min_backoff;
  on_down();
}

void BrokerRedisCluster::set_up(bool up) {
  up_.store(up, std::memory_order_release);
  if (opt_.metrics) opt_.metrics->redis_up.store(up ? 1 : 0, std::memory_order_relaxed);
}

void BrokerRedisCluster::on_push(Shard* s, const redisReply* r) {
  if (!r || std::find(shards_.begin(), shards_.end(), s) == shards_.end()) return;
  if (r->type == REDIS_REPLY_ERROR) {
    // A refused (S)SUBSCRIBE, e.g. MOVED while a slot migrates: it still answers one command.
    spdlog::warn("cluster: {} refused a subscription: {}", core::to_string(s->endpoint), str(r));
    ++s->sub_confirmed;
    ready_reached();
    return request_refresh(true);
  }
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const auto kind = str(r->element[0]);
  if (kind == "message" || kind == "smessage") return on_message(str(r->element[1]), str(r->element[2]));
  if (kind == "sunsubscribe") {
    auto it = s->unsubscribing.find(std::string(str(r->element[1])));
    if (it == s->unsubscribing.end()) {
      // Not ours: the shard gave the slot away and dropped the subscription. Unless our map
      // already has the channel elsewhere (then it is subscribed there), find out where.
      const std::string channel(str(r->element[1]));
      if (topics_.contains(channel) && shards_[shard_for(channel)] == s) request_refresh(true);
      return;
    }
    if (--it->second == 0) s->unsubscribing.erase(it);
  } else if (kind != "subscribe" && kind != "unsubscribe" && kind != "ssubscribe") {
    return;
  }
  ++s->sub_confirmed;
  ready_reached();
}

void BrokerRedisCluster::ready_reached() {
  while (!ready_waiters_.empty()) {
    for (const auto& [shard, target] : ready_waiters_.front().targets)
      if (shard->sub_confirmed < target) return;
    auto fn = std::move(ready_waiters_.front().fn);
    ready_waiters_.pop_front();
    fn();
  }
}

void BrokerRedisCluster::on_message(std::string_view channel, std::string_view payload) {
  requests_.on_message(channel, payload, handler_, [this](const std::string& origin, std::uint64_t id, std::size_t n) {
    asio::post(io_, [this, origin, id, n] {
      if (state_ != State::up && state_ != State::subscribing) return;
      shards_[home_]->cmd.command({"PUBLISH", core::reply_channel(origin), core::encode_reply(id, n)});
    });
  });
}


void BrokerRedisCluster::publish(Fanout f, bool wait, Done done) {
  asio::post(io_, [this, f = std::move(f), wait, done = std::move(done)]() mutable {
    do_publish(std::move(f), wait, std::move(done));
  });
}

void BrokerRedisCluster::do_publish(Fanout f, bool wait, Done done) {
  if (state_ != State::up) {
    if (done) done(FanoutResult{false, 0, false});
    return;
  }
  const std::uint64_t id = wait ? requests_.begin(std::move(done)) : 0;
  auto msg = std::make_shared<const std::pair<std::string, std::string>>(core::channel_for(f.route, f.target),
                                                                        core::encode_fanout(f, opt_.node_id, id));
  if (f.route == Route::topic) {
    spublish(shard_for(msg->first), msg, id, false, true);
  } else if (!wait) {
    shards_[home_]->cmd.command({"PUBLISH", msg->first, msg->second});
  } else {
    const auto epoch = epoch_;
    shards_[home_]->cmd.command({"PUBLISH", msg->first, msg->second}, [this, epoch, id](const redisReply* r) {
      if (epoch == epoch_) requests_.on_publish_reply(id, r);
    });
  }
  if (!wait && done) done(FanoutResult{true, 0, true});
}

// SPUBLISH's reply counts the subscribers in the owning shard, which are exactly the nodes
// subscribed to that topic: it is used as PUBLISH's reply is. A redirect is followed once.
void BrokerRedisCluster::spublish(std::size_t shard, std::shared_ptr<const std::pair<std::string, std::string>> msg,
                                  std::uint64_t id, bool asking, bool follow) {
  Shard& s = *shards_[shard];
  if (asking) s.cmd.command({"ASKING"});
  const auto epoch = epoch_;
  s.cmd.command({"SPUBLISH", msg->first, msg->second}, [this, epoch, from = &s, msg, id, follow](const redisReply* r) {
    if (epoch != epoch_) return;
    if (r && r->type == REDIS_REPLY_INTEGER && r->integer >= 0) {
      if (id != 0) requests_.on_publish_reply(id, r);
      return;
    }
    if (r && r->type == REDIS_REPLY_ERROR) {
      if (auto redirect = core::parse_redirect(str(r))) {
        request_refresh(false);
        if (redirect->to.host.empty()) redirect->to.host = from->endpoint.host;
        if (follow)
          for (std::size_t i = 0; i < shards_.size(); ++i)
            if (shards_[i]->endpoint == redirect->to) return spublish(i, msg, id, redirect->ask, false);
      }
      // Rate-limited: under CLUSTERDOWN every topic fan-out is refused.
      if (spublish_errors_++ % 1000 == 0)
        spdlog::warn("cluster: SPUBLISH {} refused: {} ({} so far)", msg->first, str(r), spublish_errors_);
    }
    if (id != 0) requests_.failed(id);
  });
}

// Reads the slot map again from the home master; `force`: a subscription was dropped or
// refused, so the map must change (or the home master has not heard of the move yet).
void BrokerRedisCluster::request_refresh(bool force) {
  if (state_ != State::up && state_ != State::subscribing) return;
  force_refresh_ = force_refresh_ || force;
  if (refreshing_) return;
  refreshing_ = true;
  const auto epoch = epoch_;
  Shard& home = *shards_[home_];
  home.cmd.command({"CLUSTER", "SLOTS"}, [this, epoch, host = home.endpoint.host](const redisReply* r) {
    if (epoch != epoch_) return;
    on_refresh(r, host);
  });
}

void BrokerRedisCluster::on_refresh(const redisReply* r, const std::string& asked_host) {
  refreshing_ = false;
  const bool force = std::exchange(force_refresh_, false);
  if (!r) return;  // the link failed: on_down() handles it
  auto map = core::parse_cluster_slots(to_resp(r), asked_host);
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
void BrokerRedisCluster::remap(core::SlotMap map) {
  std::vector<Shard*> shards;
  for (const auto& m : map.masters) {
    auto it = std::find_if(shards_.begin(), shards_.end(), [&](const Shard* s) { return s->endpoint == m; });
    if (it == shards_.end()) return restart("the cluster's masters changed");
    shards.push_back(*it);
  }
  if (shards.size() != shards_.size()) return restart("the cluster's masters changed");
  const auto home = static_cast<std::size_t>(map.owner[core::key_slot(core::all_channel)]);
  if (shards[home] != shards_[home_]) return restart("rt:all moved to another master");
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

void BrokerRedisCluster::set_interest(Route route, std::string_view name, bool interested) {
  asio::post(io_, [this, topic = route == Route::topic, channel = core::channel_for(route, name), interested] {
    auto& set = topic ? topics_ : others_;
    if (interested ? !set.insert(channel).second : set.erase(channel) == 0) return;
    if (state_ != State::subscribing && state_ != State::up) return;  // subscribe_all() sends it on connect
    subscribe(topic, channel, interested);
  });
}

void BrokerRedisCluster::when_ready(std::function<void()> ready) {
  asio::post(io_, [this, ready = std::move(ready)]() mutable {
    if (state_ != State::subscribing && state_ != State::up) return ready();  // unreachable: nothing to wait for
    ready_waiters_.push_back({sub_targets(), std::move(ready)});
    ready_reached();
  });
}

void BrokerRedisCluster::do_heartbeat() {
  if (state_ == State::up || state_ == State::subscribing) {
    const auto key = core::node_key(opt_.node_id);
    shards_[shard_for(key)]->cmd.command({"SET", key, std::to_string(opt_.local_connections()), "PX", heartbeat_ttl_ms});
  }
  heartbeat_timer_.expires_after(heartbeat_interval);
  heartbeat_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_heartbeat();
  });
}

void BrokerRedisCluster::do_sweep() {
  requests_.expire(std::chrono::steady_clock::now());
  sweep_timer_.expires_after(sweep_interval);
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_sweep();
  });
}

}  // namespace boundary::realtime::shell
