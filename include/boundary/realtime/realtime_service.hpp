#pragma once
// The realtime operations an application performs: accept a connection, route messages to a
// user, a role, everyone, one connection or a topic, and manage subscriptions. It mirrors the
// original Boundary module's realtime port, so application code written against it runs
// unchanged over InMemoryRealtimeService in its tests.
//
// Contract of every implementation:
// - Every message sent gets "timestamp" (ISO 8601 UTC, milliseconds) when it has none; topic
//   deliveries also get "topic" when they have none. A message is encoded once and the same
//   bytes are handed to every recipient.
// - Counts are the open connections the message was handed to; closed ones are skipped.
// - Each target connection receives one copy per send, in the order of the sends.
// - subscribe/unsubscribe are the server API's (backends are trusted): no topic policy check.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "boundary/realtime/connection_registry.hpp"
#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/ports/connection.hpp"

namespace boundary::realtime {

class RealtimeService {
 public:
  using SubscribeResult = ConnectionRegistry::SubscribeResult;

  virtual ~RealtimeService() = default;

  // Verifies `token` at the clock's now, registers the connection and sends it the
  // `connected` message {"type","connection-id","user-id","roles","timestamp"} before anything
  // else. Returns the connection id. On refusal nothing is registered or sent; closing the
  // refused connection is the caller's choice.
  virtual boost::system::result<std::string, AuthError> connect(std::shared_ptr<Connection> connection,
                                                                std::string_view token) = 0;
  // Closes the connection with 1000 and removes it from every user, role and topic.
  // False when the id is unknown.
  virtual bool disconnect(std::string_view connection_id) = 0;

  virtual std::size_t send_to_user(std::string_view user_id, boost::json::object message) = 0;
  virtual std::size_t send_to_role(std::string_view role, boost::json::object message) = 0;
  virtual std::size_t broadcast(boost::json::object message) = 0;
  // False when the connection is unknown or closed.
  virtual bool send_to_connection(std::string_view connection_id, boost::json::object message) = 0;
  virtual std::size_t publish_to_topic(std::string_view topic, boost::json::object message) = 0;

  virtual SubscribeResult subscribe(std::string_view connection_id, std::string_view topic) = 0;
  // False when the connection is unknown or was not subscribed.
  virtual bool unsubscribe(std::string_view connection_id, std::string_view topic) = 0;

  virtual std::size_t connection_count() const = 0;
};

}  // namespace boundary::realtime
