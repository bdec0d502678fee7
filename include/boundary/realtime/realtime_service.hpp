#pragma once
// The realtime operations an application performs: route messages to a user, a role, everyone,
// one connection or a topic, manage subscriptions and disconnect. Server implements it over
// its event loops (and the cluster); InMemoryRealtimeService implements it over one registry
// with no sockets or threads, so application code written against this interface and tested
// over the in-memory service runs unchanged against the server.
//
// Contract of every implementation:
// - Calls return at once; `done` (optional) is called exactly once with the outcome: counts are
//   the open connections the message was handed to (on every node, in a cluster), closed ones
//   are skipped. InMemoryRealtimeService calls it before returning; Server on one of its loop
//   threads. `done` must not block.
// - Every message sent gets "timestamp" (ISO 8601 UTC, milliseconds) when it has none; topic
//   deliveries also get "topic" when they have none. A message is encoded once and the same
//   bytes are handed to every recipient.
// - Each target connection receives one copy per send, in the order of the sends made from one
//   thread.
// - subscribe/unsubscribe are the API's (backends are trusted): no topic policy check and no
//   subscribe hook, but --max-subscriptions applies (limit_reached).

#include <cstddef>
#include <functional>
#include <string>

#include <boost/json/object.hpp>

#include "boundary/realtime/connection_registry.hpp"

namespace boundary::realtime {

class RealtimeService {
 public:
  using SubscribeResult = ConnectionRegistry::SubscribeResult;
  using CountHandler = std::function<void(std::size_t)>;
  using BoolHandler = std::function<void(bool)>;
  using SubscribeHandler = std::function<void(SubscribeResult)>;

  virtual ~RealtimeService() = default;

  virtual void send_to_user(std::string user_id, boost::json::object message, CountHandler done = {}) = 0;
  virtual void send_to_role(std::string role, boost::json::object message, CountHandler done = {}) = 0;
  virtual void broadcast(boost::json::object message, CountHandler done = {}) = 0;
  // false: no such open connection.
  virtual void send_to_connection(std::string connection_id, boost::json::object message, BoolHandler done = {}) = 0;
  virtual void publish(std::string topic, boost::json::object message, CountHandler done = {}) = 0;

  // subscribed, already_subscribed, unknown_connection or limit_reached.
  virtual void subscribe(std::string connection_id, std::string topic, SubscribeHandler done = {}) = 0;
  // false: no such connection, or it was not subscribed.
  virtual void unsubscribe(std::string connection_id, std::string topic, BoolHandler done = {}) = 0;
  // Closes with 1000 and removes the connection(s) from every index; counts those closed.
  virtual void disconnect_connection(std::string connection_id, CountHandler done = {}) = 0;
  virtual void disconnect_user(std::string user_id, CountHandler done = {}) = 0;

  // This process's open connections.
  virtual std::size_t connection_count() const = 0;
};

}  // namespace boundary::realtime
