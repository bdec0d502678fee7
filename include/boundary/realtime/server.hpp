#pragma once
// The realtime server, embeddable: WebSocket endpoint, HTTP API, health and metrics on one port,
// `threads` event loops each owning its connections.
//
// It implements RealtimeService (realtime_service.hpp has the contract of the sends): code
// tested against InMemoryRealtimeService runs unchanged against it. Hooks (hooks.hpp) let the
// application refuse connections, attach its data to them, authorize topics and handle its own
// client actions.
//
// Thread-safety: every public member may be called from any thread. Sends are asynchronous:
// they return at once and call `done` (on one of the server's loop threads) with how many
// connections the message was handed to. Sends made one after another from one thread reach
// each connection in that order. `done` handlers must not block.
//
// Cluster mode (Config::redis_url, docs/cluster.md): sends reach every node and counts include
// every node (bounded wait); while Redis is unreachable they reach, and count, this node's
// connections only. connection_count() is always this node's.
//
// Asio and Beast stay behind this header (pimpl) so that applications build quickly.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "boundary/realtime/config.hpp"
#include "boundary/realtime/hooks.hpp"
#include "boundary/realtime/ports/broker.hpp"
#include "boundary/realtime/ports/presence_store.hpp"
#include "boundary/realtime/ports/token_verifier.hpp"
#include "boundary/realtime/realtime_service.hpp"

namespace boundary::realtime {

struct HttpRequest {
  std::string method;
  std::string target;  // path and query
  std::string body;
  std::string authorization;  // Authorization header, possibly empty
};

struct HttpResponse {
  unsigned status = 200;
  std::string body;
  std::string content_type = "application/json";
};

class Server final : public RealtimeService {
 public:
  using Responder = std::function<void(HttpResponse)>;
  using RouteHandler = std::function<void(const HttpRequest&, Responder)>;

  // Throws std::invalid_argument for an unusable configuration (the message names the option).
  // `broker`: the link to the other nodes of a cluster. Null: made from Config::redis_url (none:
  // a single node). An application may pass its own adapter of the Broker port instead
  // (ports/broker.hpp states what it must guarantee); then Config::redis_url must be empty.
  // `verifier`: null exactly when Config::jwt_jwks_url is set (the server then verifies tokens
  // with the keys it fetches from there).
  Server(Config config, std::unique_ptr<TokenVerifier> verifier, Hooks hooks = {},
         std::unique_ptr<Broker> broker = nullptr);
  ~Server() override;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds the listening port (0 picks a free one) and starts the loop threads. Throws
  // std::system_error when the address cannot be bound. Returns the bound port.
  std::uint16_t start();
  // Graceful shutdown: stop accepting, send `server-shutdown` and close 1001
  // to every connection, wait up to `grace` for them to go, then stop the loops. Idempotent.
  void shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  // Blocks until shutdown() has finished.
  void wait();
  // TLS (Config::tls_cert_file): re-reads the certificate and key files. Connections accepted
  // from now on use them; open connections keep theirs. On failure (a missing file, a key that
  // does not match) the previous certificate stays and the error is logged. Returns whether the
  // new files are in use; false without TLS. Reads files: not for a hook or loop thread.
  bool reload_tls();

  // An extra HTTP route served on the same port (exact path match), for applications that
  // embed the server. Register before start(). Requests under /api/ still need the API key.
  void add_route(std::string method, std::string path, RouteHandler handler);

  void send_to_user(std::string user_id, boost::json::object message, CountHandler done = {}) override;
  void send_to_role(std::string role, boost::json::object message, CountHandler done = {}) override;
  void broadcast(boost::json::object message, CountHandler done = {}) override;
  void send_to_connection(std::string connection_id, boost::json::object message, BoolHandler done = {}) override;
  void publish(std::string topic, boost::json::object message, CountHandler done = {}) override;
  void subscribe(std::string connection_id, std::string topic, SubscribeHandler done = {}) override;
  void unsubscribe(std::string connection_id, std::string topic, BoolHandler done = {}) override;
  void disconnect_connection(std::string connection_id, CountHandler done = {}) override;
  void disconnect_user(std::string user_id, CountHandler done = {}) override;
  std::size_t connection_count() const noexcept override;

  // Presence (Config::presence, docs/presence.md): who is on `topic` (at most
  // Config::presence_max_users users listed), and how many users and connections. Answered on
  // the calling thread or a loop thread, never under a lock of the server's: `done` may call the
  // server. A topic without presence answers `available = false`.
  void presence(std::string topic, std::function<void(PresenceListing)> done);
  void presence_stats(std::string topic, std::function<void(PresenceStats)> done);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace boundary::realtime
