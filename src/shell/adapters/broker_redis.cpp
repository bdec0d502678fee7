#include "shell/adapters/broker_redis.hpp"

#include <algorithm>

#include <boost/asio/post.hpp>
#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr auto heartbeat_interval = std::chrono::milliseconds(1000);
// A node whose heartbeat key is not refreshed for this long is gone (three missed beats).
constexpr std::string_view heartbeat_ttl_ms = "3000";
// Pending waits are checked this often, so a wait ends at most this late past its timeout.
constexpr auto sweep_interval = std::chrono::milliseconds(50);
constexpr auto min_backoff = std::chrono::milliseconds(100);
constexpr auto max_backoff = std::chrono::milliseconds(2000);

std::string_view str(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}
}  // namespace

BrokerRedis::BrokerRedis(asio::io_context& io, Options options)
    : io_(io),
      opt_(std::move(options)),
      cmd_(io, false),
      sub_(io, true),
      resolver_(io),
      reconnect_timer_(io),
      heartbeat_timer_(io),
      sweep_timer_(io),
      requests_(opt_.node_id, opt_.reply_timeout, opt_.metrics) {
  sub_.set_push_handler([this](const redisReply* r) { on_push(r); });
  cmd_.set_down_handler([this] { on_down(); });
  sub_.set_down_handler([this] { on_down(); });
}

BrokerRedis::~BrokerRedis() {
  // Runs after the loops stopped. Closing fails the pending commands, whose handlers use the
  // members below: close while they are all alive, and without reconnecting.
  cmd_.set_down_handler({});
  sub_.set_down_handler({});
  cmd_.close();
  sub_.close();
}

void BrokerRedis::start() {
  asio::post(io_, [this] {
    do_connect();
    do_heartbeat();
    do_sweep();
  });
}

void BrokerRedis::do_connect() {
  state_ = State::connecting;
  if (attempt_++ > 0 && opt_.metrics) opt_.metrics->redis_reconnects.fetch_add(1, std::memory_order_relaxed);
  resolver_.async_resolve(opt_.url.host, std::to_string(opt_.url.port),
                          [this](const error_code& ec, asio::ip::tcp::resolver::results_type results) {
                            links_pending_ = 0;
                            links_failed_ = false;
                            if (ec) return on_links(ec);
                            links_pending_ = 2;
                            links_failed_ = false;
                            cmd_.connect(results, [this](const error_code& e) { on_links(e); });
                            sub_.connect(results, [this](const error_code& e) { on_links(e); });
                          });
}

// Both connections report here (or the resolver, with links_pending_ 0); the last one decides.
void BrokerRedis::on_links(const error_code& ec) {
  if (state_ != State::connecting) return;
  if (ec) links_failed_ = true;
  if (links_pending_ > 0 && --links_pending_ > 0) return;
  if (links_failed_) {
    if (attempt_ == 1 || attempt_ % 20 == 0)
      spdlog::warn("cluster: redis {}:{} unreachable ({}); retrying", opt_.url.host, opt_.url.port,
                   ec ? ec.message() : "connection failed");
    return on_down();
  }
  state_ = State::subscribing;
  if (opt_.url.db != 0) cmd_.command({"SELECT", std::to_string(opt_.url.db)});
  cmd_.command({"SET", core::node_key(opt_.node_id), std::to_string(opt_.local_connections()), "PX", heartbeat_ttl_ms});
  subscribe_all();
  // The node counts as connected once every subscription is confirmed: from then on, fan-outs
  // from any node reach its connections.
  ready_waiters_.emplace_back(sub_sent_, [this] {
    if (state_ != State::subscribing) return;
    state_ = State::up;
    attempt_ = 0;
    backoff_ = min_backoff;
    set_up(true);
    spdlog::info("cluster: connected to redis {}:{} as node {}", opt_.url.host, opt_.url.port, opt_.node_id);
  });
}

void BrokerRedis::subscribe_all() {
  sub_sent_ = sub_confirmed_ = 0;
  // One SUBSCRIBE per channel keeps commands small; they are pipelined into few writes anyway.
  sub_.command({"SUBSCRIBE", core::all_channel, requests_.reply_channel()});
  sub_sent_ += 2;
  for (const auto& c : interests_) {
    sub_.command({"SUBSCRIBE", c});
    ++sub_sent_;
  }
}

void BrokerRedis::on_down() {
  if (state_ == State::idle) return;
  const bool was_up = state_ == State::up;
  state_ = State::idle;
  cmd_.close();
  sub_.close();
  set_up(false);
  if (was_up) spdlog::warn("cluster: lost redis {}:{}; serving local connections only", opt_.url.host, opt_.url.port);
  requests_.fail_all();
  sub_sent_ = sub_confirmed_ = 0;
  auto waiters = std::move(ready_waiters_);
  ready_waiters_.clear();
  for (auto& [target, fn] : waiters) fn();
  reconnect_timer_.expires_after(backoff_);
  backoff_ = std::min(max_backoff, backoff_ * 2);
  reconnect_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_connect();
  });
}

void BrokerRedis::set_up(bool up) {
  up_.store(up, std::memory_order_release);
  if (opt_.metrics) opt_.metrics->redis_up.store(up ? 1 : 0, std::memory_order_relaxed);
}

void BrokerRedis::on_push(const redisReply* r) {
  if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3) return;
  const auto kind = str(r->element[0]);
  if (kind == "message") return on_message(str(r->element[1]), str(r->element[2]));
  if (kind == "subscribe" || kind == "unsubscribe") {
    ++sub_confirmed_;
    ready_reached();
  }
}

void BrokerRedis::ready_reached() {
  while (!ready_waiters_.empty() && ready_waiters_.front().first <= sub_confirmed_) {
    auto fn = std::move(ready_waiters_.front().second);
    ready_waiters_.pop_front();
    fn();
  }
}

void BrokerRedis::on_message(std::string_view channel, std::string_view payload) {
  requests_.on_message(channel, payload, handler_, [this](const std::string& origin, std::uint64_t id, std::size_t n) {
    asio::post(io_, [this, origin, id, n] {
      cmd_.command({"PUBLISH", core::reply_channel(origin), core::encode_reply(id, n)});
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
  const std::string channel = core::channel_for(f.route, f.target);
  const std::string payload = core::encode_fanout(f, opt_.node_id, id);
  if (!wait) {
    cmd_.command({"PUBLISH", channel, payload});
    if (done) done(FanoutResult{true, 0, true});
    return;
  }
  cmd_.command({"PUBLISH", channel, payload}, [this, id](const redisReply* r) { requests_.on_publish_reply(id, r); });
}

void BrokerRedis::set_interest(Route route, std::string_view name, bool interested) {
  asio::post(io_, [this, channel = core::channel_for(route, name), interested] {
    if (interested ? !interests_.insert(channel).second : interests_.erase(channel) == 0) return;
    if (state_ != State::subscribing && state_ != State::up) return;  // subscribe_all() sends it on connect
    sub_.command({interested ? "SUBSCRIBE" : "UNSUBSCRIBE", channel});
    ++sub_sent_;
  });
}

void BrokerRedis::when_ready(std::function<void()> ready) {
  asio::post(io_, [this, ready = std::move(ready)]() mutable {
    if (state_ != State::subscribing && state_ != State::up) return ready();  // unreachable: nothing to wait for
    if (sub_confirmed_ >= sub_sent_) return ready();
    ready_waiters_.emplace_back(sub_sent_, std::move(ready));
  });
}

void BrokerRedis::do_heartbeat() {
  if (state_ == State::up || state_ == State::subscribing)
    cmd_.command({"SET", core::node_key(opt_.node_id), std::to_string(opt_.local_connections()), "PX", heartbeat_ttl_ms});
  heartbeat_timer_.expires_after(heartbeat_interval);
  heartbeat_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_heartbeat();
  });
}

void BrokerRedis::do_sweep() {
  requests_.expire(std::chrono::steady_clock::now());
  sweep_timer_.expires_after(sweep_interval);
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (!ec) do_sweep();
  });
}

}  // namespace boundary::realtime::shell
