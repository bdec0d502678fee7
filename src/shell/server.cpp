#include "boundary/realtime/server.hpp"

#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "core/envelope.hpp"
#include "core/frame.hpp"
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

}  // namespace

ServerCore::ServerCore(Config cfg, std::unique_ptr<TokenVerifier> token_verifier)
    : config(std::move(cfg)),
      verifier(std::move(token_verifier)),
      publish_patterns(config.publish_patterns),
      ping_frame(Message::from_wire(core::encode_frame(core::Opcode::ping, {}))) {
  if (!verifier) throw std::invalid_argument("a token verifier is required");
  if (config.api_key.empty()) throw std::invalid_argument("an API key is required");
  if (config.max_message_bytes < 125) throw std::invalid_argument("max-message-bytes must be at least 125");
  if (config.max_outbound_bytes < 4096) throw std::invalid_argument("max-outbound-bytes must be at least 4096");
  if (config.idle_timeout.count() < 2) throw std::invalid_argument("idle-timeout must be at least 2 seconds");
  if (config.threads == 0) config.threads = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < config.threads; ++i) loops.push_back(std::make_unique<Loop>(*this, i));
}

ServerCore::~ServerCore() {
  for (auto& l : loops) l->join();
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

void ServerCore::send_to_user(std::string user_id, json::object message, Done done) {
  on_every_loop([m = envelope(std::move(message)), user_id = std::move(user_id)](Loop& l) {
    return l.registry().send_to_user(user_id, m);
  }, std::move(done));
}

void ServerCore::send_to_role(std::string role, json::object message, Done done) {
  on_every_loop([m = envelope(std::move(message)), role = std::move(role)](Loop& l) {
    return l.registry().send_to_role(role, m);
  }, std::move(done));
}

void ServerCore::broadcast(json::object message, Done done) {
  on_every_loop([m = envelope(std::move(message))](Loop& l) { return l.registry().broadcast(m); }, std::move(done));
}

void ServerCore::send_to_connection(std::string id, json::object message, Done done) {
  on_every_loop([m = envelope(std::move(message)), id = std::move(id)](Loop& l) -> std::size_t {
    return l.registry().send_to_connection(id, m) ? 1 : 0;
  }, std::move(done));
}

void ServerCore::publish(std::string topic, json::object message, Done done) {
  auto m = envelope(std::move(message), topic);
  on_every_loop([m = std::move(m), topic = std::move(topic)](Loop& l) { return l.registry().publish(topic, m); },
                std::move(done));
}

void ServerCore::subscribe(std::string id, std::string topic, Done done) {
  // Backends are trusted: --max-subscriptions bounds what clients subscribe themselves, so
  // `false` here means only "no such connection" (SPEC.md section 3).
  on_every_loop([id = std::move(id), topic = std::move(topic)](Loop& l) -> std::size_t {
    using R = ConnectionRegistry::SubscribeResult;
    auto* c = l.registry().find(id);
    if (!c || !c->is_open()) return 0;
    const auto r = l.registry().subscribe(id, topic);
    return r == R::subscribed || r == R::already_subscribed ? 1 : 0;
  }, std::move(done));
}

void ServerCore::unsubscribe(std::string id, std::string topic, Done done) {
  on_every_loop([id = std::move(id), topic = std::move(topic)](Loop& l) -> std::size_t {
    return l.registry().unsubscribe(id, topic) ? 1 : 0;
  }, std::move(done));
}

void ServerCore::disconnect_connection(std::string id, Done done) {
  on_every_loop([id = std::move(id)](Loop& l) -> std::size_t {
    Connection* c = l.registry().find(id);
    return c ? close_all({c}) : 0;
  }, std::move(done));
}

void ServerCore::disconnect_user(std::string user_id, Done done) {
  on_every_loop([user_id = std::move(user_id)](Loop& l) { return close_all(l.registry().find_by_user(user_id)); },
                std::move(done));
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
template <class T>
std::function<void(std::size_t)> as_bool(std::function<void(bool)> done) {
  if (!done) return {};
  return [done = std::move(done)](std::size_t n) { done(n > 0); };
}
}  // namespace

void Server::send_to_user(std::string user_id, json::object message, CountHandler done) {
  impl_->core.send_to_user(std::move(user_id), std::move(message), std::move(done));
}
void Server::send_to_role(std::string role, json::object message, CountHandler done) {
  impl_->core.send_to_role(std::move(role), std::move(message), std::move(done));
}
void Server::broadcast(json::object message, CountHandler done) {
  impl_->core.broadcast(std::move(message), std::move(done));
}
void Server::send_to_connection(std::string id, json::object message, BoolHandler done) {
  impl_->core.send_to_connection(std::move(id), std::move(message), as_bool<void>(std::move(done)));
}
void Server::publish(std::string topic, json::object message, CountHandler done) {
  impl_->core.publish(std::move(topic), std::move(message), std::move(done));
}
void Server::subscribe(std::string id, std::string topic, BoolHandler done) {
  impl_->core.subscribe(std::move(id), std::move(topic), as_bool<void>(std::move(done)));
}
void Server::unsubscribe(std::string id, std::string topic, BoolHandler done) {
  impl_->core.unsubscribe(std::move(id), std::move(topic), as_bool<void>(std::move(done)));
}
void Server::disconnect_connection(std::string id, CountHandler done) {
  impl_->core.disconnect_connection(std::move(id), std::move(done));
}
void Server::disconnect_user(std::string user_id, CountHandler done) {
  impl_->core.disconnect_user(std::move(user_id), std::move(done));
}
std::size_t Server::connection_count() const noexcept { return impl_->core.connection_count(); }

}  // namespace boundary::realtime
