#include "run.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <stdexcept>

#include "boundary/realtime/jwt_verifier.hpp"

namespace loadgen {

namespace {

constexpr std::uint64_t api_key_tag = std::uint64_t{1} << 40;
// storm: the tag of the POST /api/disconnect request (publish requests are tagged with their seq).
constexpr std::uint64_t drop_tag = std::uint64_t{1} << 62;
constexpr Nanos tick_interval = 50'000'000;       // how often deadlines and handshakes are checked
constexpr Nanos progress_interval = 2'000'000'000;
// Plain-ws publishing at full speed: messages written per loop pass before reading again.
constexpr int plain_burst = 64;
// Duplicate tracking keeps one bit per (client, message); refuse runs that would need more.
constexpr std::uint64_t max_tracking_bits = std::uint64_t{8} << 30;

// The unsigned number right after `key` in `s`, or -1.
std::int64_t number_after(std::string_view s, std::string_view key) {
  const void* hit = memmem(s.data(), s.size(), key.data(), key.size());
  if (hit == nullptr) return -1;
  const char* p = static_cast<const char*>(hit) + key.size();
  std::int64_t v = -1;
  if (std::from_chars(p, s.data() + s.size(), v).ec != std::errc{}) return -1;
  return v;
}

bool contains(std::string_view s, std::string_view what) {
  return memmem(s.data(), s.size(), what.data(), what.size()) != nullptr;
}

std::string shorten(std::string_view s) { return std::string(s.substr(0, 160)); }

// Connections opened before the warm RSS sample: a tenth, at most 1,000.
std::uint64_t warm_connections(std::uint64_t n) { return std::min<std::uint64_t>(1000, n / 10); }

}  // namespace

Run::Run(const Options& options) : o_(options), publisher_index_(options.connections) {
  roles_json_.push_back('[');  // append, not operator=/operator+: GCC 12 -Wrestrict false positive
  std::size_t start = 0;
  while (start <= o_.roles.size() && !o_.roles.empty()) {
    const std::size_t comma = std::min(o_.roles.find(',', start), o_.roles.size());
    if (roles_json_.size() > 1) roles_json_ += ',';
    roles_json_.append(1, '"').append(o_.roles, start, comma - start).append(1, '"');
    start = comma + 1;
  }
  roles_json_ += ']';

  WsTarget target;
  const std::vector<std::uint16_t> ports = o_.ports.empty() ? std::vector<std::uint16_t>{o_.port} : o_.ports;
  for (const std::uint16_t port : ports) {
    target.addresses.push_back(resolve(o_.host, port));
    target.host_headers.push_back(o_.host + ":" + std::to_string(port));
  }
  target.protocol = o_.protocol;
  const sockaddr_in api_address = target.addresses.front();
  const std::string api_host = target.host_headers.front();
  const bool loopback = (ntohl(api_address.sin_addr.s_addr) >> 24) == 127;
  target.source_ips = loopback ? static_cast<std::uint32_t>(o_.source_ips) : 0;
  target.tls = o_.tls;
  target.compression = o_.compression;
  pool_ = std::make_unique<WsPool>(reactor_, target, *this, o_.connections + 1);
  if ((o_.protocol == Protocol::realtime || o_.protocol == Protocol::pusher) && o_.scenario != Scenario::connect &&
      o_.via == Via::api)
    for (std::size_t i = 0; i < o_.api_connections; ++i)
      api_.push_back(std::make_unique<HttpClient>(reactor_, api_address, api_host, api_key_tag + i, *this, o_.tls));
  if (o_.scenario == Scenario::storm)
    control_ = std::make_unique<HttpClient>(reactor_, api_address, api_host, api_key_tag + api_.size(), *this, o_.tls);
}

Run::~Run() = default;

std::string Run::token_for(const std::string& user_id) const {
  if (!o_.token.empty()) return o_.token;
  const auto now = static_cast<long long>(std::time(nullptr));
  const std::string claims = R"({"user-id":")" + user_id + R"(","roles":)" + roles_json_ +
                             R"(,"iat":)" + std::to_string(now) + R"(,"exp":)" + std::to_string(now + 86400) + "}";
  return boundary::realtime::sign_hs256(o_.secret, claims);
}

std::string Run::request_target(const std::string& user_id) const {
  if (o_.protocol == Protocol::plain) return o_.path;
  if (o_.protocol == Protocol::pusher) return "/app/" + o_.pusher_key + "?protocol=7&client=realtime-loadgen&version=1";
  if (o_.protocol == Protocol::socketio)
    return o_.path + (o_.path.find('?') == std::string::npos ? "?" : "&") + "EIO=4&transport=websocket";
  std::string target = "/ws?token=";
  target += token_for(user_id);
  return target;
}

void Run::dispatch(std::uint64_t key, std::uint32_t events) {
  if (key >= api_key_tag) {
    if (key - api_key_tag < api_.size()) api_[key - api_key_tag]->on_event(events);
    else if (control_ && key - api_key_tag == api_.size()) control_->on_event(events);
    return;
  }
  pool_->on_event(static_cast<std::uint32_t>(key), events);
}

template <class Done, class Tick>
bool Run::loop_until(Nanos deadline, Done done, Tick tick) {
  Nanos wake = tick(now_ns());
  while (!done()) {
    const Nanos now = now_ns();
    if (now >= deadline) return false;
    reactor_.poll(std::min({deadline, wake, now + tick_interval}),
                  [this](std::uint64_t key, std::uint32_t events) { dispatch(key, events); });
    const Nanos after = now_ns();
    wake = tick(after);
    progress(after);
  }
  return true;
}

int Run::execute() {
  results_.started = now_ns();
  deadline_ = results_.started + seconds_ns(o_.timeout);
  next_progress_ = results_.started + progress_interval;
  results_.server.rss_baseline = read_rss_bytes(o_.server_pid);

  bool ok = connect_phase();
  results_.server.rss_connected = read_rss_bytes(o_.server_pid);
  if (ok && o_.scenario == Scenario::connect) hold_phase();
  if (ok && (o_.scenario == Scenario::fanout || o_.scenario == Scenario::storm)) ok = subscribe_phase();
  if (ok && o_.scenario != Scenario::connect) ok = delivery_phase();
  phase_ = Phase::done;
  results_.finished = now_ns();
  results_.bytes_received = pool_->bytes_received();
  return ok ? 0 : 2;
}

// ---------------------------------------------------------------------------------------------
// connect

void Run::start_client(std::size_t i, Nanos now) {
  ++in_flight_;
  handshakes_.push_back(static_cast<std::uint32_t>(i));
  std::string user(1, 'u');
  user += std::to_string(o_.id_offset + i);
  pool_->start(i, request_target(o_.scenario == Scenario::storm ? o_.storm_user : user), now);
}

void Run::expire_handshakes(Nanos now) {
  const Nanos limit = seconds_ns(o_.connect_timeout);
  while (!handshakes_.empty()) {
    WsClient& c = pool_->client(handshakes_.front());
    const bool pending = c.state != WsClient::State::open && c.state != WsClient::State::closed;
    if (pending && now - c.started < limit) return;
    handshakes_.pop_front();
    if (pending) {
      const char* stage = c.state == WsClient::State::connecting    ? "connect"
                          : c.state == WsClient::State::handshaking ? "upgrade response"
                          : o_.protocol == Protocol::socketio       ? "socket.io connect"
                                                                    : "connected frame";
      pool_->close(c);
      on_failed(c, std::string("timeout waiting for ") + stage);
    }
  }
}

bool Run::connect_phase() {
  phase_ = Phase::connecting;
  const std::size_t n = o_.connections;
  results_.connect.first_start = now_ns();
  auto tick = [&](Nanos now) {
    while (in_flight_ < o_.in_flight && next_client_ < n) start_client(next_client_++, now);
    expire_handshakes(now);
    return now + tick_interval;
  };
  auto& r = results_.connect;
  const bool ok = loop_until(deadline_, [&] { return r.opened + r.failed == n; }, tick);
  r.timed_out = !ok;
  return ok && r.opened > 0;
}

void Run::on_open(WsClient& c, Nanos now) {
  if (c.index == publisher_index_) return;
  if (o_.scenario == Scenario::storm && phase_ == Phase::delivering) {
    // A reconnect: subscribe again, recovering from the last offset this client received.
    --in_flight_;
    auto& st = results_.storm;
    ++st.reopened;
    st.all_reopened = now;
    pool_->send_text(c, R"({"action":"subscribe","topic":")" + o_.topic + R"(","recover":{"offset":)" +
                            std::to_string(last_offset_[c.index]) + R"(,"epoch":")" + st.epoch + R"("}})");
    return;
  }
  auto& r = results_.connect;
  ++r.opened;
  --in_flight_;
  r.last_open = now;
  r.handshake.record(now - c.started);
  if (r.opened == warm_connections(o_.connections)) {
    results_.server.warm_connections = r.opened;
    results_.server.rss_warm = read_rss_bytes(o_.server_pid);
  }
  if (o_.protocol == Protocol::pusher && o_.scenario == Scenario::fanout)
    pool_->send_text(c, R"({"event":"pusher:subscribe","data":{"channel":")" + o_.topic + R"("}})");
  else if (o_.scenario == Scenario::fanout || o_.scenario == Scenario::storm)
    pool_->send_text(c, R"({"action":"subscribe","topic":")" + o_.topic + R"("})");
}

void Run::on_failed(WsClient& c, const std::string& why) {
  if (c.index == publisher_index_) {
    results_.delivery.publisher_failed = shorten(why);
    return;
  }
  if (o_.scenario == Scenario::storm && phase_ == Phase::delivering) {
    // A reconnect that did not open: try again.
    --in_flight_;
    ++results_.storm.reconnect_failures;
    ++results_.storm.reconnect_errors[shorten(why)];
    reconnect_queue_.push_back(c.index);
    return;
  }
  ++results_.connect.failed;
  --in_flight_;
  ++results_.connect.errors[shorten(why)];
}

void Run::on_closed(WsClient& c, const std::string& why) {
  if (c.index == publisher_index_) {
    results_.delivery.publisher_failed = shorten(why);
    return;
  }
  ++closed_;
  ++results_.closes[shorten(why)];
  static constexpr const char* names[] = {"connecting", "holding", "subscribing", "delivering", "done"};
  ++results_.closes_by_phase[names[static_cast<int>(phase_)]];
  if (o_.scenario == Scenario::storm && phase_ == Phase::delivering) storm_closed(c);
}

void Run::hold_phase() {
  phase_ = Phase::holding;
  const Nanos end = std::min(deadline_, now_ns() + seconds_ns(o_.hold));
  loop_until(end, [] { return false; }, [](Nanos now) { return now + tick_interval; });
  results_.server.rss_after_hold = read_rss_bytes(o_.server_pid);
}

bool Run::subscribe_phase() {
  phase_ = Phase::subscribing;
  auto& d = results_.delivery;
  // Every open client has answered, been refused, or been closed.
  return loop_until(deadline_, [&] { return d.subscribed + d.command_errors + closed_ >= results_.connect.opened; },
                    [](Nanos now) { return now + tick_interval; });
}

// ---------------------------------------------------------------------------------------------
// delivery

std::string Run::message_json(std::uint64_t seq, Nanos t) const {
  std::string m = R"({"type":"bench","seq":)" + std::to_string(seq) + R"(,"t":)" + std::to_string(t) + R"(,"pad":")";
  if (m.size() + 2 < o_.size) m.append(o_.size - m.size() - 2, 'x');
  m += "\"}";
  return m;
}

std::uint64_t Run::total_messages() const {
  if (o_.scenario == Scenario::users) return static_cast<std::uint64_t>(o_.rate * o_.duration);
  return o_.messages;
}

void Run::prepare_tracking() {
  auto& d = results_.delivery;
  const std::uint64_t n = o_.connections;
  const std::uint64_t m = total_messages();
  const bool users = o_.scenario == Scenario::users;
  bits_per_client_ = users ? (m + n - 1) / n : m;
  if (o_.scenario == Scenario::storm) {
    if (results_.storm.epoch.empty())
      throw std::runtime_error("topic '" + o_.topic + "' keeps no history: its `subscribed` reply has no epoch "
                               "(run the server with --history " + o_.topic + "=SIZE)");
    replay_until_.assign(n, 0);
    recovering_.assign(n, 0);
  }
  if (api_.size() > 1) last_by_connection_.assign(n * api_.size(), -1);
  if (bits_per_client_ * n > max_tracking_bits)
    throw std::invalid_argument("too many messages x connections to track duplicates (over 8 Gbit)");
  for (std::size_t i = 0; i < n; ++i) {
    WsClient& c = pool_->client(i);
    if (c.state != WsClient::State::open) continue;
    if (o_.scenario == Scenario::storm) {
      if (!c.acked) continue;  // refused or unanswered: not a subscriber
      ++based_;
      base_sum_ += base_[i];
      results_.storm.first_offset =
          based_ == 1 ? base_[i] : std::min<std::uint64_t>(results_.storm.first_offset, base_[i]);
    }
    ++d.subscribers;
    c.seen.assign((bits_per_client_ + 63) / 64, 0);
    // users: client i gets seq i, i+n, i+2n, ... below m.
    if (o_.scenario != Scenario::storm) d.expected += users ? (i < m ? (m - i + n - 1) / n : 0) : m;
  }
  if (o_.scenario == Scenario::storm) storm_update_expected();
}

bool Run::open_publisher() {
  if (!api_.empty()) return true;
  const Nanos now = now_ns();
  WsClient& p = pool_->client(publisher_index_);
  if (o_.protocol == Protocol::pusher) {
    // Pusher clients cannot publish to a public channel: the publisher speaks the native protocol.
    p.native = true;
    pool_->start(publisher_index_, "/ws?token=" + token_for("loadgen-publisher"), now);
  } else {
    pool_->start(publisher_index_, request_target("loadgen-publisher"), now);
  }
  const Nanos until = std::min(deadline_, now + seconds_ns(o_.connect_timeout));
  loop_until(until, [&] { return p.state == WsClient::State::open || p.state == WsClient::State::closed; },
             [](Nanos t) { return t + tick_interval; });
  if (p.state == WsClient::State::open) return true;
  if (results_.delivery.publisher_failed.empty()) results_.delivery.publisher_failed = "publisher did not open in time";
  return false;
}

bool Run::publisher_ready() const {
  if (!api_.empty()) return api_[api_turn()]->in_flight() < o_.window;
  WsClient& p = pool_->client(publisher_index_);
  if (p.state != WsClient::State::open) return false;
  if (o_.protocol != Protocol::realtime && o_.protocol != Protocol::pusher) return p.out.empty();
  return awaiting_replies_ < o_.window;
}

void Run::send_next() {
  auto& d = results_.delivery;
  const std::uint64_t seq = d.sent;
  const Nanos t = now_ns();
  if (!api_.empty() && o_.batch > 0 && o_.scenario == Scenario::fanout) return send_batch(t);
  const std::string message = message_json(seq, t);
  if (!api_.empty()) {
    std::string body;
    const char* path = "/api/broadcast";
    if (o_.scenario == Scenario::fanout || o_.scenario == Scenario::storm) {
      path = "/api/publish";
      body = R"({"topic":")" + o_.topic + R"(","message":)" + message + "}";
    } else if (o_.scenario == Scenario::users) {
      path = "/api/send-to-user";
      const std::uint64_t user = o_.id_offset + seq % o_.connections;
      body = R"({"user-id":"u)" + std::to_string(user) + R"(","message":)" + message + "}";
    } else {
      body = R"({"message":)" + message + "}";
    }
    if (o_.no_wait) body.insert(body.size() - 1, R"(,"wait":false)");
    next_api()->request("POST", path, o_.api_key, body, seq);
  } else if (o_.protocol == Protocol::realtime || o_.protocol == Protocol::pusher) {
    ++awaiting_replies_;
    requests_sent_.push_back(t);
    pool_->send_text(pool_->client(publisher_index_),
                     R"({"action":"publish","topic":")" + o_.topic + R"(","message":)" + message + "}");
  } else if (o_.protocol == Protocol::socketio) {
    pool_->send_text(pool_->client(publisher_index_), R"(42["publish",)" + message + "]");
  } else {
    pool_->send_text(pool_->client(publisher_index_), message);
  }
  request_sent_ = t;
  if (d.sent == 0) d.first_send = t;
  d.last_send = t;
  last_progress_ = t;
  ++d.sent;
}

// Sends what is due; returns when the loop must wake up at the latest.
Nanos Run::publish_tick(Nanos now, Nanos start) {
  auto& d = results_.delivery;
  const std::uint64_t total = total_messages();
  for (int burst = 0; d.sent < total && publisher_ready() && burst < plain_burst; ++burst) {
    if (o_.rate > 0) {
      const Nanos due = start + static_cast<Nanos>(static_cast<double>(d.sent) * 1e9 / o_.rate);
      if (now < due) return due;
    }
    send_next();
    now = now_ns();
  }
  return now + tick_interval;
}

bool Run::delivery_phase() {
  auto& d = results_.delivery;
  d.ran = true;
  if (!open_publisher()) return false;
  prepare_tracking();
  phase_ = Phase::delivering;
  const std::uint64_t total = total_messages();
  const double server_cpu0 = read_cpu_seconds(o_.server_pid);
  const double self_cpu0 = self_cpu_seconds();
  server_cpu_start_ = server_cpu0;
  const Nanos start = now_ns();
  last_progress_ = start;
  const Nanos drain = seconds_ns(o_.drain);
  const bool storm = o_.scenario == Scenario::storm;
  results_.storm.ran = storm;
  auto done = [&] {
    if (!d.publisher_failed.empty()) return true;
    const bool idle = d.sent == total && publisher_ready();
    if (storm) {
      storm_update_expected();
      if (idle && d.unique >= d.expected && results_.storm.complete) return true;
    } else if (idle && d.unique >= d.expected) {
      return true;
    }
    // No delivery, send or reply for --drain seconds while nothing is left to send or the
    // publisher waits for an answer: the server has lost messages or stalled.
    if ((d.sent == total || !publisher_ready()) && now_ns() - last_progress_ > drain) {
      d.stalled = true;
      return true;
    }
    return false;
  };
  auto tick = [&](Nanos now) {
    const Nanos wake = publish_tick(now, start);
    if (!storm) return wake;
    storm_tick(now_ns());
    return std::min(wake, now_ns() + tick_interval);
  };
  const bool ok = loop_until(deadline_, done, tick);
  d.deadline_hit = !ok;
  d.server_cpu_seconds = server_cpu0 >= 0 ? read_cpu_seconds(o_.server_pid) - server_cpu0 : -1;
  d.loadgen_cpu_seconds = self_cpu_seconds() - self_cpu0;
  results_.server.rss_after_delivery = read_rss_bytes(o_.server_pid);
  return ok && d.publisher_failed.empty();
}

void Run::on_message(WsClient& c, std::string_view payload, Nanos now) {
  if (c.index == publisher_index_) return on_publisher_message(payload, now);
  // A Pusher frame carries the message as a JSON string: its quotes are escaped.
  const bool pusher = o_.protocol == Protocol::pusher;
  const std::int64_t seq = number_after(payload, pusher ? R"(\"seq\":)" : R"("seq":)");
  if (seq < 0) return on_control(c, payload, now);
  if (o_.scenario == Scenario::storm) return storm_delivery(c, payload, now);
  auto& d = results_.delivery;
  ++d.received;
  ++c.received;
  std::uint64_t slot = static_cast<std::uint64_t>(seq);
  if (o_.scenario == Scenario::users) {
    if (slot % o_.connections != c.index) {
      ++d.misrouted;
      return;
    }
    slot /= o_.connections;
  }
  if (slot >= bits_per_client_ || c.seen.empty()) {
    ++d.foreign;
    return;
  }
  std::uint64_t& word = c.seen[slot >> 6];
  const std::uint64_t bit = std::uint64_t{1} << (slot & 63);
  if ((word & bit) != 0) {
    ++d.duplicates;
    return;
  }
  word |= bit;
  ++d.unique;
  if (api_.size() > 1) {
    const std::uint64_t per = o_.batch > 0 ? o_.batch : 1;
    std::int64_t& last = last_by_connection_[c.index * api_.size() + (static_cast<std::uint64_t>(seq) / per) % api_.size()];
    if (seq < last) ++d.reordered;
    last = seq;
  } else {
    if (seq < c.last_seq) ++d.reordered;
    c.last_seq = seq;
  }
  if (const std::int64_t t = number_after(payload, pusher ? R"(\"t\":)" : R"("t":)"); t >= 0) d.latency.record(now - t);
  d.last_delivery = now;
  last_progress_ = now;
}

void Run::on_control(WsClient& c, std::string_view payload, Nanos now) {
  auto& d = results_.delivery;
  if (contains(payload, R"("type":"subscribed")") || contains(payload, R"("event":"pusher_internal:subscription_succeeded")")) {
    if (o_.scenario == Scenario::storm) storm_subscribed(c, payload, now);
    if (!c.acked && !(o_.scenario == Scenario::storm && phase_ == Phase::delivering)) ++d.subscribed;
    c.acked = true;
  } else if (contains(payload, R"("type":"error")") || contains(payload, R"("event":"pusher:error")") ||
             contains(payload, R"("event":"pusher:subscription_error")")) {
    if (d.command_errors++ == 0) d.first_command_error = shorten(payload);
  }
}

void Run::on_publisher_message(std::string_view payload, Nanos now) {
  auto& d = results_.delivery;
  if (o_.protocol != Protocol::realtime && o_.protocol != Protocol::pusher) {
    if (contains(payload, R"("seq":)")) ++d.publisher_echoes;
    return;
  }
  if (contains(payload, R"("type":"published")")) {
    d.reply_latency.record(now - take_request_time());
    last_progress_ = now;
    if (const auto n = number_after(payload, R"("delivered":)"); n > 0)
      d.server_delivered += static_cast<std::uint64_t>(n);
  } else if (contains(payload, R"("type":"error")")) {
    take_request_time();
    last_progress_ = now;
    if (d.send_errors++ == 0) d.first_send_error = shorten(payload);
    forget_refused(d.sent - 1);
  }
}

// Replies come in request order: the oldest outstanding `publish` is the one answered.
Nanos Run::take_request_time() {
  if (awaiting_replies_ > 0) --awaiting_replies_;
  if (requests_sent_.empty()) return now_ns();
  const Nanos t = requests_sent_.front();
  requests_sent_.pop_front();
  return t;
}

// Requests go round the API connections in turn: request r (messages r*per .. r*per+per-1) on
// connection r % N, so a subscriber can check the order of each connection's messages (the
// server keeps each connection's order; between connections there is none).
std::size_t Run::api_turn() const {
  const std::uint64_t per = o_.batch > 0 ? o_.batch : 1;
  return static_cast<std::size_t>((results_.delivery.sent / per) % api_.size());
}

HttpClient* Run::next_api() { return api_[api_turn()].get(); }

// --batch: up to N messages in one POST /api/batch; its tag is the first seq, times 2^16, plus N.
void Run::send_batch(Nanos t) {
  auto& d = results_.delivery;
  const std::uint64_t first = d.sent;
  const std::uint64_t n = std::min<std::uint64_t>(o_.batch, total_messages() - first);
  std::string body = "[";
  for (std::uint64_t i = 0; i < n; ++i) {
    if (i > 0) body += ',';
    body += R"({"kind":"publish","topic":")" + o_.topic + R"(","message":)" + message_json(first + i, t);
    body += o_.no_wait ? R"(,"wait":false})" : "}";
  }
  body += ']';
  next_api()->request("POST", "/api/batch", o_.api_key, body, (first << 16) | n);
  request_sent_ = t;
  if (d.sent == 0) d.first_send = t;
  d.last_send = t;
  last_progress_ = t;
  d.sent += n;
}

void Run::on_response(int status, std::string_view body, Nanos sent, std::uint64_t tag, Nanos now) {
  auto& d = results_.delivery;
  if (tag == drop_tag) {
    auto& st = results_.storm;
    drop_answered_ = true;
    if (status == 200) st.disconnected = number_after(body, R"("disconnected":)");
    else st.drop_error = "HTTP " + std::to_string(status) + " " + shorten(body);
    storm_check_complete(now);
    return;
  }
  if (o_.scenario == Scenario::storm && status == 200)
    if (const auto k = number_after(body, R"("offset":)"); k > 0)
      results_.storm.last_offset = std::max(results_.storm.last_offset, static_cast<std::uint64_t>(k));
  last_progress_ = now;
  d.reply_latency.record(now - sent);
  const bool batch = o_.batch > 0 && o_.scenario == Scenario::fanout;
  const std::uint64_t items = batch ? (tag & 0xffff) : 1;
  const std::uint64_t first = batch ? tag >> 16 : tag;
  if (status != 200) {
    if (d.send_errors++ == 0) d.first_send_error = "HTTP " + std::to_string(status) + " " + shorten(body);
    for (std::uint64_t i = 0; i < items; ++i) forget_refused(first + i);
    return;
  }
  // A batch answers each item in its place: sum the deliveries, forget the refused items.
  std::uint64_t ok = 0;
  for (std::string_view rest = body;;) {
    const auto at = rest.find(R"("delivered":)");
    if (at == std::string_view::npos) break;
    rest.remove_prefix(at);
    if (const auto n = number_after(rest, R"("delivered":)"); n >= 0) d.server_delivered += static_cast<std::uint64_t>(n);
    rest.remove_prefix(1);
    ++ok;
  }
  for (std::uint64_t i = ok; i < items; ++i) {
    if (d.send_errors++ == 0) d.first_send_error = "batch item refused: " + shorten(body);
    forget_refused(first + i);
  }
}

// A message the server refused (non-200, `error` reply) is not expected anywhere: the refusal is
// reported as a send error, not as lost deliveries. A request whose connection broke stays
// expected, since the server may or may not have acted on it.
void Run::forget_refused(std::uint64_t seq) {
  auto& d = results_.delivery;
  std::uint64_t targets = d.subscribers;
  if (o_.scenario == Scenario::users)
    targets = pool_->client(seq % o_.connections).seen.empty() ? 0 : 1;
  d.expected -= std::min(d.expected, targets);
}

void Run::on_http_error(const std::string& why, std::uint64_t tag, Nanos now) {
  auto& d = results_.delivery;
  if (tag == drop_tag) {
    drop_answered_ = true;
    results_.storm.drop_error = shorten(why);
    return;
  }
  last_progress_ = now;
  if (d.send_errors++ == 0) d.first_send_error = shorten(why);
}

void Run::progress(Nanos now) {
  if (o_.quiet || now < next_progress_) return;
  next_progress_ = now + progress_interval;
  if (o_.scenario == Scenario::storm && phase_ == Phase::delivering) storm_update_expected();
  const double at = static_cast<double>(now - results_.started) / 1e9;
  const auto& c = results_.connect;
  const auto& d = results_.delivery;
  switch (phase_) {
    case Phase::connecting:
      std::fprintf(stderr, "[%6.1fs] connecting: %llu open, %llu failed, %zu in flight\n", at,
                   (unsigned long long)c.opened, (unsigned long long)c.failed, in_flight_);
      break;
    case Phase::holding:
      std::fprintf(stderr, "[%6.1fs] holding %llu connections\n", at, (unsigned long long)c.opened);
      break;
    case Phase::subscribing:
      std::fprintf(stderr, "[%6.1fs] subscribing: %llu/%llu\n", at, (unsigned long long)d.subscribed,
                   (unsigned long long)c.opened);
      break;
    case Phase::delivering:
      std::fprintf(stderr, "[%6.1fs] delivering: sent %llu, delivered %llu/%llu\n", at, (unsigned long long)d.sent,
                   (unsigned long long)d.unique, (unsigned long long)d.expected);
      if (dropped_) {
        const auto& st = results_.storm;
        std::fprintf(stderr, "          storm: closed %llu, reopened %llu, recovered %llu true %llu false, %llu pending\n",
                     (unsigned long long)st.closed, (unsigned long long)st.reopened,
                     (unsigned long long)st.recovered_true, (unsigned long long)st.recovered_false,
                     (unsigned long long)storm_pending_);
      }
      break;
    case Phase::done: break;
  }
}

// ---------------------------------------------------------------------------------------------
// storm

void Run::storm_update_expected() {
  auto& d = results_.delivery;
  const std::uint64_t last = results_.storm.last_offset;
  d.expected = last * based_ > base_sum_ ? last * based_ - base_sum_ : 0;
}

void Run::storm_drop(Nanos now) {
  auto& st = results_.storm;
  dropped_ = true;
  st.drop_at = now;
  st.sent_at_drop = results_.delivery.sent;
  st.before_ns = now - results_.delivery.first_send;
  storm_server_cpu0_ = read_cpu_seconds(o_.server_pid);
  storm_self_cpu0_ = self_cpu_seconds();
  if (storm_server_cpu0_ >= 0 && server_cpu_start_ >= 0) st.server_cpu_before = storm_server_cpu0_ - server_cpu_start_;
  control_->request("POST", "/api/disconnect", o_.api_key, R"({"user-id":")" + o_.storm_user + R"("})", drop_tag);
}

void Run::storm_tick(Nanos now) {
  if (!dropped_ && results_.delivery.sent >= o_.drop_after) storm_drop(now);
  // A client whose connect fails at once comes back to the queue: try each once per pass.
  for (std::size_t n = reconnect_queue_.size(); n > 0 && in_flight_ < o_.in_flight; --n) {
    const std::uint32_t i = reconnect_queue_.front();
    reconnect_queue_.pop_front();
    ++results_.storm.reconnects;
    start_client(i, now);
  }
  expire_handshakes(now);
}

void Run::storm_closed(WsClient& c) {
  auto& st = results_.storm;
  if (c.seen.empty()) return;  // not a subscriber
  if (dropped_) ++st.closed;
  c.acked = false;
  if (recovering_[c.index] == 0) {
    recovering_[c.index] = 1;
    ++storm_pending_;
  }
  st.complete = false;
  reconnect_queue_.push_back(c.index);
}

// The storm is over when the server answered the disconnect and every client it closed has
// reconnected and had its recovering subscribe answered.
void Run::storm_check_complete(Nanos now) {
  auto& st = results_.storm;
  if (st.complete || !drop_answered_ || storm_pending_ > 0 || !reconnect_queue_.empty()) return;
  if (st.disconnected < 0 || st.closed < static_cast<std::uint64_t>(st.disconnected)) return;
  st.complete = true;
  st.all_recovered = last_recovery_ > 0 ? last_recovery_ : now;
  st.sent_at_recovered = sent_at_last_recovery_;
  if (storm_server_cpu0_ >= 0) st.server_cpu_storm = read_cpu_seconds(o_.server_pid) - storm_server_cpu0_;
  st.loadgen_cpu_storm = self_cpu_seconds() - storm_self_cpu0_;
}

void Run::storm_subscribed(WsClient& c, std::string_view payload, Nanos now) {
  auto& st = results_.storm;
  const std::size_t i = c.index;
  std::string_view epoch;
  static constexpr std::string_view key = R"("epoch":")";
  if (const auto at = payload.find(key); at != std::string_view::npos) {
    const auto from = at + key.size();
    epoch = payload.substr(from, payload.find('"', from) - from);
  }
  const std::int64_t last = number_after(payload, R"("offset":)");
  if (phase_ != Phase::delivering) {
    // The first subscribe: deliveries start after LAST.
    if (base_.empty()) {
      base_.assign(o_.connections, 0);
      last_offset_.assign(o_.connections, 0);
    }
    base_[i] = last_offset_[i] = last > 0 ? static_cast<std::uint64_t>(last) : 0;
    if (st.epoch.empty()) st.epoch = epoch;
    else if (epoch != st.epoch) ++st.epoch_changes;
    return;
  }
  if (recovering_.empty() || recovering_[i] == 0) return;
  recovering_[i] = 0;
  --storm_pending_;
  if (epoch != st.epoch) ++st.epoch_changes;
  if (contains(payload, R"("recovered":true)")) {
    ++st.recovered_true;
    replay_until_[i] = last > 0 ? static_cast<std::uint64_t>(last) : 0;
  } else {
    ++st.recovered_false;
  }
  last_recovery_ = now;
  sent_at_last_recovery_ = results_.delivery.sent;
  last_progress_ = now;
  storm_check_complete(now);
}

// A delivery on the stream, checked by its offset: client i must receive each of
// base_[i]+1 .. LAST once, in order, across its reconnects.
void Run::storm_delivery(WsClient& c, std::string_view payload, Nanos now) {
  auto& d = results_.delivery;
  auto& st = results_.storm;
  ++d.received;
  ++c.received;
  const std::int64_t offset = number_after(payload, R"("offset":)");
  const std::size_t i = c.index;
  if (offset <= 0 || c.seen.empty() || static_cast<std::uint64_t>(offset) <= base_[i]) {
    ++d.foreign;
    return;
  }
  const auto off = static_cast<std::uint64_t>(offset);
  st.last_offset = std::max(st.last_offset, off);
  const std::uint64_t slot = off - base_[i] - 1;
  if (slot >= bits_per_client_) {
    ++d.foreign;
    return;
  }
  if (off <= replay_until_[i]) {
    ++st.replayed;
    st.last_replayed = now;
  }
  std::uint64_t& word = c.seen[slot >> 6];
  const std::uint64_t bit = std::uint64_t{1} << (slot & 63);
  if ((word & bit) != 0) {
    ++d.duplicates;
    return;
  }
  word |= bit;
  ++d.unique;
  if (off < last_offset_[i]) ++d.reordered;
  else last_offset_[i] = off;
  if (const std::int64_t t = number_after(payload, R"("t":)"); t >= 0) d.latency.record(now - t);
  d.last_delivery = now;
  last_progress_ = now;
}

}  // namespace loadgen
