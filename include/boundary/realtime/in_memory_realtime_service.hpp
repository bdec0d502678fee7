#pragma once
// RealtimeService over one ConnectionRegistry, with no sockets and no threads: the reference
// implementation of the contract, and what applications use to test their realtime code with
// RecordingConnection, FixedClaimsVerifier and ManualClock (testing/).
//
// Single-threaded: every call must come from one thread. Delivery is synchronous: when a send
// returns, each target's Connection::send() has been called exactly once, in call order, and
// `done` has been called with the outcome.
// The verifier and the clock are borrowed and must outlive the service.

#include <cstddef>

#include "boundary/realtime/connection_registry.hpp"
#include "boundary/realtime/ports/clock.hpp"
#include "boundary/realtime/ports/token_verifier.hpp"
#include "boundary/realtime/realtime_service.hpp"

namespace boundary::realtime {

class InMemoryRealtimeService final : public RealtimeService {
 public:
  // `max_subscriptions` bounds the topics of one connection (the server's default); 0 = no limit.
  InMemoryRealtimeService(const TokenVerifier& verifier, const Clock& clock, std::size_t max_subscriptions = 1000);

  // Verifies `token` at the clock's now, registers the connection and sends it the `connected`
  // message {"type","connection-id","user-id","roles","timestamp"} before anything else (what
  // the server does for a WebSocket upgrade). Returns the connection id. On refusal nothing is
  // registered or sent.
  boost::system::result<std::string, AuthError> connect(std::shared_ptr<Connection> connection,
                                                        std::string_view token);

  void send_to_user(std::string user_id, boost::json::object message, CountHandler done = {}) override;
  void send_to_role(std::string role, boost::json::object message, CountHandler done = {}) override;
  void broadcast(boost::json::object message, CountHandler done = {}) override;
  void send_to_connection(std::string connection_id, boost::json::object message, BoolHandler done = {}) override;
  void publish(std::string topic, boost::json::object message, CountHandler done = {}) override;
  void subscribe(std::string connection_id, std::string topic, SubscribeHandler done = {}) override;
  void unsubscribe(std::string connection_id, std::string topic, BoolHandler done = {}) override;
  void disconnect_connection(std::string connection_id, CountHandler done = {}) override;
  void disconnect_user(std::string user_id, CountHandler done = {}) override;

  std::size_t connection_count() const override;

  ConnectionRegistry& registry() noexcept { return registry_; }
  const ConnectionRegistry& registry() const noexcept { return registry_; }

 private:
  // Closes with 1000, then leaves every index. False when the id is unknown.
  bool close_and_unregister(std::string_view connection_id);

  const TokenVerifier& verifier_;
  const Clock& clock_;
  std::size_t max_subscriptions_;
  ConnectionRegistry registry_;
};

}  // namespace boundary::realtime
