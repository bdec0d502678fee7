#include "boundary/realtime/in_memory_realtime_service.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

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

  auto connected = core::make_connected(connection->id(), *identity, now);
  std::string id(connection->id());
  Connection& target = *connection;
  if (!registry_.register_connection(std::move(connection), std::move(*identity)))
    throw std::invalid_argument("connect: connection id already registered: " + id);
  target.send(connected);
  return id;
}

namespace {

// `done` is optional: the port calls it exactly once when given, before returning here.
template <class Handler, class Value>
void complete(Handler& done, Value value) {
  if (done) done(value);
}

}  // namespace

void InMemoryRealtimeService::send_to_user(std::string user_id, json::object message, CountHandler done) {
  complete(done, registry_.send_to_user(user_id, core::make_envelope(std::move(message), clock_.now())));
}

void InMemoryRealtimeService::send_to_role(std::string role, json::object message, CountHandler done) {
  complete(done, registry_.send_to_role(role, core::make_envelope(std::move(message), clock_.now())));
}

void InMemoryRealtimeService::broadcast(json::object message, CountHandler done) {
  complete(done, registry_.broadcast(core::make_envelope(std::move(message), clock_.now())));
}

void InMemoryRealtimeService::send_to_connection(std::string connection_id, json::object message,
                                                 BoolHandler done) {
  complete(done,
           registry_.send_to_connection(connection_id, core::make_envelope(std::move(message), clock_.now())));
}

void InMemoryRealtimeService::publish(std::string topic, json::object message, CountHandler done) {
  complete(done, registry_.publish(topic, core::make_envelope(std::move(message), clock_.now(), topic)));
}

void InMemoryRealtimeService::subscribe(std::string connection_id, std::string topic, SubscribeHandler done) {
  complete(done, registry_.subscribe(connection_id, topic, max_subscriptions_));
}

void InMemoryRealtimeService::unsubscribe(std::string connection_id, std::string topic, BoolHandler done) {
  complete(done, registry_.unsubscribe(connection_id, topic));
}

bool InMemoryRealtimeService::close_and_unregister(std::string_view connection_id) {
  Connection* connection = registry_.find(connection_id);
  if (!connection) return false;
  // Close before unregistering: the registry may hold the last reference to the connection.
  connection->close(CloseCode::normal, "disconnected by the server");
  registry_.unregister_connection(connection_id);
  return true;
}

void InMemoryRealtimeService::disconnect_connection(std::string connection_id, CountHandler done) {
  complete(done, std::size_t{close_and_unregister(connection_id) ? 1u : 0u});
}

void InMemoryRealtimeService::disconnect_user(std::string user_id, CountHandler done) {
  // Ids first: unregistering invalidates the pointers find_by_user returned.
  std::vector<std::string> ids;
  for (const Connection* connection : registry_.find_by_user(user_id)) ids.emplace_back(connection->id());
  std::size_t closed = 0;
  for (const auto& id : ids) closed += close_and_unregister(id) ? 1 : 0;
  complete(done, closed);
}

std::size_t InMemoryRealtimeService::connection_count() const { return registry_.count(); }

}  // namespace boundary::realtime
