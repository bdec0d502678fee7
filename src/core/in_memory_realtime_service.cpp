#include "boundary/realtime/in_memory_realtime_service.hpp"

#include <stdexcept>
#include <utility>

#include <boost/json/array.hpp>

#include "core/envelope.hpp"

namespace boundary::realtime {
namespace json = boost::json;

InMemoryRealtimeService::InMemoryRealtimeService(const TokenVerifier& verifier, const Clock& clock,
                                                 std::size_t max_subscriptions)
    : verifier_(verifier), clock_(clock), max_subscriptions_(max_subscriptions) {}

boost::system::result<std::string, AuthError> InMemoryRealtimeService::connect(
    std::shared_ptr<Connection> connection, std::string_view token) {
  // Connection ids are UUIDs the caller generates: a null or reused one is a programming error,
  // not a token problem, so it is not reported as an AuthError.
  if (!connection) throw std::invalid_argument("connect: null connection");
  const auto now = clock_.now();
  const auto unix_seconds = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch()).count();
  auto identity = verifier_.verify(token, unix_seconds);
  if (!identity) return identity.error();

  json::array roles;
  for (const auto& role : identity->roles) roles.emplace_back(role);
  json::object connected{{"type", "connected"},
                         {"connection-id", connection->id()},
                         {"user-id", identity->user_id},
                         {"roles", std::move(roles)}};
  std::string id(connection->id());
  Connection& target = *connection;
  if (!registry_.register_connection(std::move(connection), std::move(*identity)))
    throw std::invalid_argument("connect: connection id already registered: " + id);
  target.send(core::make_envelope(std::move(connected), now));
  return id;
}

bool InMemoryRealtimeService::disconnect(std::string_view connection_id) {
  Connection* connection = registry_.find(connection_id);
  if (!connection) return false;
  // Close before unregistering: the registry may hold the last reference to the connection.
  connection->close(CloseCode::normal, "disconnected by the server");
  registry_.unregister_connection(connection_id);
  return true;
}

std::size_t InMemoryRealtimeService::send_to_user(std::string_view user_id, json::object message) {
  return registry_.send_to_user(user_id, core::make_envelope(std::move(message), clock_.now()));
}

std::size_t InMemoryRealtimeService::send_to_role(std::string_view role, json::object message) {
  return registry_.send_to_role(role, core::make_envelope(std::move(message), clock_.now()));
}

std::size_t InMemoryRealtimeService::broadcast(json::object message) {
  return registry_.broadcast(core::make_envelope(std::move(message), clock_.now()));
}

bool InMemoryRealtimeService::send_to_connection(std::string_view connection_id, json::object message) {
  return registry_.send_to_connection(connection_id, core::make_envelope(std::move(message), clock_.now()));
}

std::size_t InMemoryRealtimeService::publish_to_topic(std::string_view topic, json::object message) {
  return registry_.publish(topic, core::make_envelope(std::move(message), clock_.now(), topic));
}

InMemoryRealtimeService::SubscribeResult InMemoryRealtimeService::subscribe(std::string_view connection_id,
                                                                            std::string_view topic) {
  return registry_.subscribe(connection_id, topic, max_subscriptions_);
}

bool InMemoryRealtimeService::unsubscribe(std::string_view connection_id, std::string_view topic) {
  return registry_.unsubscribe(connection_id, topic);
}

std::size_t InMemoryRealtimeService::connection_count() const { return registry_.count(); }

}  // namespace boundary::realtime
