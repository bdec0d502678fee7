#include "boundary/realtime/server.hpp"

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include "core/cluster_codec.hpp"
#include "core/envelope.hpp"
#include "core/frame.hpp"
#include "shell/adapters/make_broker.hpp"
#include "shell/loop.hpp"
#include "shell/server_core.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime {
namespace json = boost::json;
namespace shell {
namespace asio = boost::asio;
namespace json = boost::json;
using Done = std::function<void(std::size_t)>;

namespace {

Message envelope(json::object message, std::string_view topic = {}) {
  return core::make_envelope(std::move(message), std::chrono::system_clock::now(), topic);
}

std::size_t close_all(const std::vector<Connection*>& connections) {
  std::size_t n = 0;
  for (Connection* c : connections) {
    if (!c->is_open()) continue;
    c->close(CloseCode::normal, "disconnected by the server");
    ++n;
  }
  return n;
}

std::string random_node_id() {
  unsigned char b[6];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("no randomness available");
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 0xF];
  }
  return s;
}

bool carries_message(Route r) {
  return r == Route::user || r == Route::role || r == Route::topic || r == Route::all || r == Route::connection;
}

}  // namespace

ServerCore::ServerCore(Config cfg, std::unique_ptr<TokenVerifier> token_verifier)
    : config(std::move(cfg)),
      verifier(std::move(token_verifier)),
      publish_patterns(config.publish_patterns),
      command_rate(config.commands_per_second, config.command_burst),
      ping_frame(Message::from_wire(core::encode_frame(core::Opcode::ping, {}))) {
  if (!verifier) throw std::invalid_argument("a token verifier is required");
  if (config.api_key.empty()) throw std::invalid_argument("an API key is required");
  if (config.max_message_bytes < 125) throw std::invalid_argument("max-message-bytes must be at least 125");
  if (config.max_outbound_bytes < 4096) throw std::invalid_argument("max-outbound-bytes must be at least 4096");
  if (config.idle_timeout.count() < 2) throw std::invalid_argument("idle-timeout must be at least 2 seconds");
  if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < config.threads; ++i) loops.push_back(std::make_unique<Loop>(*this, i));
  if (!config.redis_url.empty()) {
    if (config.node_id.empty()) config.node_id = random_node_id();
    if (!core::valid_node_id(config.node_id))
      throw std::invalid_argument("--node-id: 1 to 64 characters of letters, digits, '.', '_' and '-'");
  }
  broker = make_broker({config.redis_url, config.node_id, config.cluster_reply_timeout}, loops.front()->io(),
                       [this] { return connection_count(); }, &metrics);
  if (!broker->distributed()) return;
  metrics.cluster = true;
  broker->set_handler([this](const Fanout& f, Broker::Answer answer) { deliver_remote(f, std::move(answer)); });
  for (auto& l : loops)
    l->registry().set_index_observer([this](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
      index_changed(k, name, created);
    });
}

void ServerCore::start_broker() { broker->start(); }

void ServerCore::index_changed(ConnectionRegistry::IndexKind kind, std::string_view name, bool created) {
  using K = ConnectionRegistry::IndexKind;
  const Route route = kind == K::user ? Route::user : kind == K::role ? Route::role : Route::topic;
  std::string key(1, static_cast<char>(route));
  key += name;
  // Held while telling the broker, so that its calls for one name keep the order of the changes.
  std::lock_guard lock(interests_mutex_);
  if (created) {
    if (interest_refs_[key]++ == 0) broker->set_interest(route, name, true);
  } else if (auto it = interest_refs_.find(key); it != interest_refs_.end() && --it->second == 0) {
    interest_refs_.erase(it);
    broker->set_interest(route, name, false);
  }
}

ServerCore::~ServerCore() {
  for (auto& l : loops) l->join();
  // The broker goes before the loops' registries: nothing may report to it any more.
  for (auto& l : loops) l->registry().set_index_observer({});
}

void ServerCore::on_every_loop(std::function<std::size_t(Loop&)> work, Done done) {
  struct Gather {
    std::atomic<std::size_t> remaining;
    std::atomic<std::size_t> total{0};
    std::function<std::size_t(Loop&)> work;
    Done done;
  };
  auto g = std::make_shared<Gather>();
  g->remaining = loops.size();
  g->work = std::move(work);
  g->done = std::move(done);
  for (auto& l : loops) {
    asio::post(l->io(), [g, &loop = *l] {
      g->total.fetch_add(g->work(loop), std::memory_order_relaxed);
      if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && g->done) g->done(g->total.load());
    });
  }
}

namespace {
// Deliveries are counted once per fan-out on a loop, not once per recipient: one atomic add
// instead of ten thousand for a broadcast.
std::size_t sent(Loop& loop, std::size_t n) {
  loop.server().metrics.messages_sent.fetch_add(n, std::memory_order_relaxed);
  return n;
}
}  // namespace

ServerCore::Work ServerCore::work_for(const Fanout& f, Message m) const {
  switch (f.route) {
    case Route::user: return [m, t = f.target](Loop& l) { return sent(l, l.registry().send_to_user(t, m)); };
    case Route::role: return [m, t = f.target](Loop& l) { return sent(l, l.registry().send_to_role(t, m)); };
    case Route::topic: return [m, t = f.target](Loop& l) { return sent(l, l.registry().publish(t, m)); };
    case Route::all: return [m](Loop& l) { return sent(l, l.registry().broadcast(m)); };
    case Route::connection:
      return [m, t = f.target](Loop& l) { return sent(l, l.registry().send_to_connection(t, m) ? 1 : 0); };
    case Route::subscribe:
      // Backends are trusted: --max-subscriptions bounds what clients subscribe themselves, so
      // `false` here means only "no such connection" (SPEC.md section 3).
      return [id = f.target, topic = f.body](Loop& l) -> std::size_t {
        using R = ConnectionRegistry::SubscribeResult;
        auto* c = l.registry().find(id);
        if (!c || !c->is_open()) return 0;
        const auto r = l.registry().subscribe(id, topic);
        return r == R::subscribed || r == R::already_subscribed ? 1 : 0;
      };
    case Route::unsubscribe:
      return [id = f.target, topic = f.body](Loop& l) -> std::size_t {
        return l.registry().unsubscribe(id, topic) ? 1 : 0;
      };
    case Route::disconnect:
      return [id = f.target](Loop& l) -> std::size_t {
        Connection* c = l.registry().find(id);
        return c ? close_all({c}) : 0;
      };
    case Route::disconnect_user:
      return [t = f.target](Loop& l) { return close_all(l.registry().find_by_user(t)); };
    case Route::count: return [](Loop& l) { return l.registry().count(); };
  }
  return [](Loop&) { return std::size_t{0}; };
}

void ServerCore::dispatch(Fanout f, Work work, bool wait, SendDone done) {
  if (!broker->distributed()) {
    on_every_loop(std::move(work), [done = std::move(done)](std::size_t n) {
      if (done) done(Delivery{n});
    });
    return;
  }
  if (!wait && broker->connected()) {
    on_every_loop(std::move(work), {});
    broker->publish(std::move(f), false, {});
    if (done) done(Delivery{0, true, true});
    return;
  }
  // Local and remote counts arrive on different threads; the second one answers.
  struct Join {
    std::atomic<int> remaining{2};
    std::size_t local = 0;
    FanoutResult remote;
    SendDone done;
  };
  auto j = std::make_shared<Join>();
  j->done = std::move(done);
  auto finish = [j] {
    if (j->remaining.fetch_sub(1, std::memory_order_acq_rel) == 1 && j->done)
      j->done(Delivery{j->local + j->remote.count, j->remote.reached});
  };
  const bool barrier = f.route == Route::subscribe;
  on_every_loop(std::move(work), [this, j, finish, barrier](std::size_t n) {
    j->local = n;
    // A subscription made here answers once it is in effect cluster-wide.
    if (barrier && n > 0) return broker->when_ready(finish);
    finish();
  });
  broker->publish(std::move(f), true, [j, finish](FanoutResult r) {
    j->remote = r;
    finish();
  });
}

void ServerCore::deliver_remote(const Fanout& f, Broker::Answer answer) {
  if (f.route == Route::count) return answer(connection_count());
  Message m = carries_message(f.route) ? Message::from_json(f.body) : Message();
  if (f.route == Route::subscribe) {
    on_every_loop(work_for(f, std::move(m)), [this, answer = std::move(answer)](std::size_t n) {
      if (n == 0) return answer(0);
      broker->when_ready([answer, n] { answer(n); });
    });
    return;
  }
  on_every_loop(work_for(f, std::move(m)), std::move(answer));
}

namespace {
// The fan-out of a send; the body (enveloped JSON) is copied only when other nodes exist.
Fanout fanout(const Broker& b, Route route, std::string target, const Message& m) {
  return Fanout{route, std::move(target), b.distributed() ? std::string(m.json()) : std::string()};
}
}  // namespace

void ServerCore::send_to_user(std::string user_id, json::object message, SendDone done, bool wait) {
  auto m = envelope(std::move(message));
  auto f = fanout(*broker, Route::user, std::move(user_id), m);
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::send_to_role(std::string role, json::object message, SendDone done, bool wait) {
  auto m = envelope(std::move(message));
  auto f = fanout(*broker, Route::role, std::move(role), m);
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::broadcast(json::object message, SendDone done, bool wait) {
  auto m = envelope(std::move(message));
  auto f = fanout(*broker, Route::all, {}, m);
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::send_to_connection(std::string id, json::object message, SendDone done, bool wait) {
  auto m = envelope(std::move(message));
  auto f = fanout(*broker, Route::connection, std::move(id), m);
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::publish(std::string topic, json::object message, SendDone done, bool wait) {
  auto m = envelope(std::move(message), topic);
  auto f = fanout(*broker, Route::topic, std::move(topic), m);
  auto work = work_for(f, std::move(m));
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::subscribe(std::string id, std::string topic, SendDone done, bool wait) {
  Fanout f{Route::subscribe, std::move(id), std::move(topic)};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::unsubscribe(std::string id, std::string topic, SendDone done, bool wait) {
  Fanout f{Route::unsubscribe, std::move(id), std::move(topic)};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::disconnect_connection(std::string id, SendDone done, bool wait) {
  Fanout f{Route::disconnect, std::move(id), {}};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::disconnect_user(std::string user_id, SendDone done, bool wait) {
  Fanout f{Route::disconnect_user, std::move(user_id), {}};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), wait, std::move(done));
}

void ServerCore::count_connections(SendDone done) {
  if (!broker->distributed()) {
    if (done) done(Delivery{connection_count()});
    return;
  }
  Fanout f{Route::count, {}, {}};
  auto work = work_for(f, {});
  dispatch(std::move(f), std::move(work), true, std::move(done));
}

std::size_t ServerCore::connection_count() const noexcept {
  const auto n = metrics.connections.load(std::memory_order_relaxed);
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace shell

namespace {
// Names are resolved once, at startup (never on a loop thread).
boost::asio::ip::address resolve_host(const std::string& host) {
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(host, ec);
  if (!ec) return address;
  boost::asio::io_context io;
  boost::asio::ip::tcp::resolver resolver(io);
  auto results = resolver.resolve(host, "", ec);
  if (ec || results.empty())
    throw std::invalid_argument("--host: cannot resolve '" + host + "': " + ec.message());
  return results.begin()->endpoint().address();
}
}  // namespace

struct Server::Impl {
  shell::ServerCore core;
  std::mutex mutex;
  std::condition_variable stopped_cv;
  bool started = false;
  bool stopped = false;

  Impl(Config config, std::unique_ptr<TokenVerifier> verifier) : core(std::move(config), std::move(verifier)) {}
};

Server::Server(Config config, std::unique_ptr<TokenVerifier> verifier)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(verifier))) {}

Server::~Server() {
  shutdown(std::chrono::milliseconds(0));
}

std::uint16_t Server::start() {
  auto& core = impl_->core;
  boost::asio::ip::tcp::endpoint endpoint(resolve_host(core.config.host), core.config.port);
  if (endpoint.port() != 0) shell::Loop::ensure_port_free(endpoint);
  core.loops.front()->listen(endpoint);
  endpoint.port(core.loops.front()->local_endpoint().port());  // port 0: the others join the chosen one
  for (std::size_t i = 1; i < core.loops.size(); ++i) core.loops[i]->listen(endpoint);
  core.start_broker();
  for (auto& l : core.loops) l->start_thread();
  std::lock_guard lock(impl_->mutex);
  impl_->started = true;
  return endpoint.port();
}

void Server::shutdown(std::chrono::milliseconds grace) {
  auto& core = impl_->core;
  if (core.shutting_down.exchange(true)) return wait();
  bool started;
  {
    std::lock_guard lock(impl_->mutex);
    started = impl_->started;
  }
  if (started) {
    for (auto& l : core.loops) l->stop_accepting();
    json::object notice{{"type", "server-shutdown"}, {"message", "Server shutting down gracefully"}};
    core.on_every_loop([m = shell::envelope(std::move(notice))](shell::Loop& l) {
      l.registry().for_each([&m](Connection& c, const Identity&) {
        c.send(m);
        c.close(CloseCode::going_away, "server shutting down");
      });
      return std::size_t{0};
    }, {});
    // Wait for peers to answer the close frames (or the grace period), then stop the loops.
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline && core.live_sessions.load() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& l : core.loops) l->join();
  std::lock_guard lock(impl_->mutex);
  impl_->stopped = true;
  impl_->stopped_cv.notify_all();
}

void Server::wait() {
  std::unique_lock lock(impl_->mutex);
  impl_->stopped_cv.wait(lock, [this] { return impl_->stopped; });
}

void Server::add_route(std::string method, std::string path, RouteHandler handler) {
  impl_->core.routes[{std::move(method), std::move(path)}] = std::move(handler);
}

namespace {
shell::SendDone counted(Server::CountHandler done) {
  if (!done) return {};
  return [done = std::move(done)](shell::Delivery d) { done(d.count); };
}
shell::SendDone as_bool(Server::BoolHandler done) {
  if (!done) return {};
  return [done = std::move(done)](shell::Delivery d) { done(d.count > 0); };
}
}  // namespace

void Server::send_to_user(std::string user_id, json::object message, CountHandler done) {
  impl_->core.send_to_user(std::move(user_id), std::move(message), counted(std::move(done)));
}
void Server::send_to_role(std::string role, json::object message, CountHandler done) {
  impl_->core.send_to_role(std::move(role), std::move(message), counted(std::move(done)));
}
void Server::broadcast(json::object message, CountHandler done) {
  impl_->core.broadcast(std::move(message), counted(std::move(done)));
}
void Server::send_to_connection(std::string id, json::object message, BoolHandler done) {
  impl_->core.send_to_connection(std::move(id), std::move(message), as_bool(std::move(done)));
}
void Server::publish(std::string topic, json::object message, CountHandler done) {
  impl_->core.publish(std::move(topic), std::move(message), counted(std::move(done)));
}
void Server::subscribe(std::string id, std::string topic, BoolHandler done) {
  impl_->core.subscribe(std::move(id), std::move(topic), as_bool(std::move(done)));
}
void Server::unsubscribe(std::string id, std::string topic, BoolHandler done) {
  impl_->core.unsubscribe(std::move(id), std::move(topic), as_bool(std::move(done)));
}
void Server::disconnect_connection(std::string id, CountHandler done) {
  impl_->core.disconnect_connection(std::move(id), counted(std::move(done)));
}
void Server::disconnect_user(std::string user_id, CountHandler done) {
  impl_->core.disconnect_user(std::move(user_id), counted(std::move(done)));
}
std::size_t Server::connection_count() const noexcept { return impl_->core.connection_count(); }

}  // namespace boundary::realtime
