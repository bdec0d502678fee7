// The public Server facade: its lifecycle (start, graceful shutdown, wait) and the
// RealtimeService operations, each one call into the hub (shell/hub.hpp).

#include "boundary/realtime/server.hpp"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "core/envelope.hpp"
#include "shell/adapters/tls_context.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"

namespace boundary::realtime {
namespace json = boost::json;

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

shell::SendDone counted(RealtimeService::CountHandler done) {
  if (!done) return {};
  return [done = std::move(done)](shell::Delivery d) { done(d.count); };
}

shell::SendDone as_bool(RealtimeService::BoolHandler done) {
  if (!done) return {};
  return [done = std::move(done)](shell::Delivery d) { done(d.count > 0); };
}

shell::SendDone as_subscribe(RealtimeService::SubscribeHandler done) {
  if (!done) return {};
  return [done = std::move(done)](shell::Delivery d) {
    using A = shell::SubscribeAnswer;
    using R = RealtimeService::SubscribeResult;
    const auto a = static_cast<A>(d.count);
    done(a == A::subscribed ? R::subscribed : a == A::limit_reached ? R::limit_reached : R::unknown_connection);
  };
}
}  // namespace

struct Server::Impl {
  shell::Node node;
  std::mutex mutex;
  std::condition_variable stopped_cv;
  bool started = false;
  bool stopped = false;

  Impl(Config config, std::unique_ptr<TokenVerifier> verifier, Hooks hooks, std::unique_ptr<Broker> broker)
      : node(std::move(config), std::move(verifier), std::move(hooks), std::move(broker)) {}
};

Server::Server(Config config, std::unique_ptr<TokenVerifier> verifier, Hooks hooks, std::unique_ptr<Broker> broker)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(verifier), std::move(hooks), std::move(broker))) {}

Server::~Server() { shutdown(std::chrono::milliseconds(0)); }

std::uint16_t Server::start() {
  auto& node = impl_->node;
  auto& loops = node.loops();
  boost::asio::ip::tcp::endpoint endpoint(resolve_host(node.config().host), node.config().port);
  if (endpoint.port() != 0) shell::Loop::ensure_port_free(endpoint);
  loops.front()->listen(endpoint);
  endpoint.port(loops.front()->local_endpoint().port());  // port 0: the others join the chosen one
  for (std::size_t i = 1; i < loops.size(); ++i) loops[i]->listen(endpoint);
  node.start_broker();
  node.start_jwks();
  for (auto& l : loops) l->start_thread();
  // A cluster that refuses this node (credentials, a node id already in use) stops the start; an
  // unreachable one does not (the node serves locally and keeps trying). Bounded by the
  // broker's own connect timeouts: discovery, then the shards.
  if (auto refusal = node.broker().startup_refusal(std::chrono::seconds(11)); !refusal.empty())
    throw std::runtime_error("cluster: " + refusal);
  std::lock_guard lock(impl_->mutex);
  impl_->started = true;
  return endpoint.port();
}

void Server::shutdown(std::chrono::milliseconds grace) {
  auto& node = impl_->node;
  if (!node.begin_shutdown()) return wait();
  bool started;
  {
    std::lock_guard lock(impl_->mutex);
    started = impl_->started;
  }
  if (started) {
    for (auto& l : node.loops()) l->stop_accepting();
    json::object notice{{"type", "server-shutdown"}, {"message", "Server shutting down gracefully"}};
    auto m = core::make_envelope(std::move(notice), std::chrono::system_clock::now());
    node.hub().on_every_loop([m](shell::Loop& l) {
      l.registry().for_each([&m](Connection& c, const Identity&) {
        c.send(m);
        c.close(CloseCode::going_away, "server shutting down");
      });
      return std::size_t{0};
    }, {});
    // Wait for peers to answer the close frames (or the grace period), then stop the loops.
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline && node.live_sessions() > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    // This node's present users leave now (cluster mode), not when its entries expire.
    if (auto* presence = node.presence()) presence->close(std::chrono::milliseconds(500));
    node.broker().leave(std::chrono::milliseconds(500));  // frees the node id at once
  }
  for (auto& l : node.loops()) l->join();
  std::lock_guard lock(impl_->mutex);
  impl_->stopped = true;
  impl_->stopped_cv.notify_all();
}

void Server::wait() {
  std::unique_lock lock(impl_->mutex);
  impl_->stopped_cv.wait(lock, [this] { return impl_->stopped; });
}

bool Server::reload_tls() {
  auto* tls = impl_->node.tls();
  return tls && tls->reload();
}

void Server::add_route(std::string method, std::string path, RouteHandler handler) {
  impl_->node.add_route(std::move(method), std::move(path), std::move(handler));
}

void Server::send_to_user(std::string user_id, json::object message, CountHandler done) {
  impl_->node.hub().send(Route::user, std::move(user_id), std::move(message), {}, counted(std::move(done)));
}
void Server::send_to_role(std::string role, json::object message, CountHandler done) {
  impl_->node.hub().send(Route::role, std::move(role), std::move(message), {}, counted(std::move(done)));
}
void Server::broadcast(json::object message, CountHandler done) {
  impl_->node.hub().send(Route::all, {}, std::move(message), {}, counted(std::move(done)));
}
void Server::send_to_connection(std::string id, json::object message, BoolHandler done) {
  impl_->node.hub().send(Route::connection, std::move(id), std::move(message), {}, as_bool(std::move(done)));
}
void Server::publish(std::string topic, json::object message, CountHandler done) {
  impl_->node.hub().send(Route::topic, std::move(topic), std::move(message), {}, counted(std::move(done)));
}
void Server::subscribe(std::string id, std::string topic, SubscribeHandler done) {
  impl_->node.hub().control(Route::subscribe, std::move(id), std::move(topic), {}, as_subscribe(std::move(done)));
}
void Server::unsubscribe(std::string id, std::string topic, BoolHandler done) {
  impl_->node.hub().control(Route::unsubscribe, std::move(id), std::move(topic), {}, as_bool(std::move(done)));
}
void Server::disconnect_connection(std::string id, CountHandler done) {
  impl_->node.hub().control(Route::disconnect, std::move(id), {}, {}, counted(std::move(done)));
}
void Server::disconnect_user(std::string user_id, CountHandler done) {
  impl_->node.hub().control(Route::disconnect_user, std::move(user_id), {}, {}, counted(std::move(done)));
}
std::size_t Server::connection_count() const noexcept { return impl_->node.hub().connection_count(); }

void Server::presence(std::string topic, std::function<void(PresenceListing)> done) {
  auto* p = impl_->node.presence();
  if (!p || !p->tracks(topic)) {
    PresenceListing none;
    none.available = false;
    if (done) done(std::move(none));
    return;
  }
  // A store may answer while holding its lock (PresenceMemory does, to order listings after
  // events): an answer given before list() returns is handed over after it returns, so the
  // application's callback may call the server.
  struct Handover {
    std::mutex mutex;
    bool returned = false;
    std::optional<PresenceListing> early;
    std::function<void(PresenceListing)> done;
  };
  auto h = std::make_shared<Handover>();
  h->done = std::move(done);
  p->list(topic, impl_->node.config().presence_max_users, [h](PresenceListing l) {
    {
      std::lock_guard lock(h->mutex);
      if (!h->returned) {
        h->early = std::move(l);
        return;
      }
    }
    if (h->done) h->done(std::move(l));
  });
  std::optional<PresenceListing> early;
  {
    std::lock_guard lock(h->mutex);
    h->returned = true;
    early = std::move(h->early);
  }
  if (early && h->done) h->done(std::move(*early));
}

void Server::presence_stats(std::string topic, std::function<void(PresenceStats)> done) {
  auto* p = impl_->node.presence();
  if (!p || !p->tracks(topic)) {
    PresenceStats none;
    none.available = false;
    if (done) done(none);
    return;
  }
  p->stats(topic, [done = std::move(done)](PresenceStats s) {
    if (done) done(s);
  });
}

}  // namespace boundary::realtime
