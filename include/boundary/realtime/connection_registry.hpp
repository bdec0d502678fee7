#pragma once
// In-memory registry of connections and their topic subscriptions: a two-way index
// (connection -> user, roles, topics; user / role / topic -> connections), in the spirit of a
// pub/sub server's channel index. Single-threaded by design: the server keeps one per event
// loop, so lookups and deliveries take no lock.
//
// Every index uses swap-remove vectors with back-pointers (a user's connections: a linked list
// through them), so registering, unregistering, subscribing and unsubscribing are O(1) (plus
// the connection's own subscription count), and a connection that goes away leaves every
// topic, user and role index it was in. Empty topics, users and roles are erased, so memory
// follows what is live.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "boundary/realtime/identity.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/connection.hpp"

namespace boundary::realtime {

class ConnectionRegistry {
 public:
  ConnectionRegistry();
  ~ConnectionRegistry();
  ConnectionRegistry(const ConnectionRegistry&) = delete;
  ConnectionRegistry& operator=(const ConnectionRegistry&) = delete;

  // False when a connection with the same id is already registered. A connection whose identity
  // has an empty user id is in no user index (send_to_user("") reaches nobody) until
  // replace_identity names its user.
  bool register_connection(std::shared_ptr<Connection> connection, Identity identity);
  // Removes the connection from every index. False when unknown.
  bool unregister_connection(std::string_view connection_id);
  // Gives a registered connection a new identity (a refreshed token): it leaves the user and
  // role indexes the new identity no longer names and joins the new ones; its topics and its
  // place in `everyone` stay. Indexes kept across the change are neither erased nor recreated
  // (the index observer hears only real changes). False when unknown.
  bool replace_identity(std::string_view connection_id, Identity identity);

  Connection* find(std::string_view connection_id) const;
  const Identity* identity_of(std::string_view connection_id) const;
  std::vector<Connection*> find_by_user(std::string_view user_id) const;
  std::vector<Connection*> find_by_role(std::string_view role) const;
  std::vector<Connection*> all() const;
  std::size_t count() const noexcept;
  std::size_t user_connection_count(std::string_view user_id) const;

  enum class SubscribeResult { subscribed, already_subscribed, unknown_connection, limit_reached };
  // `max_subscriptions` bounds the topics of one connection; 0 means no limit. `skip_through`
  // (topic streams, subscribed or already subscribed): deliveries with an offset up to it are
  // not handed to this connection (it got them, or chose not to, from a history snapshot).
  SubscribeResult subscribe(std::string_view connection_id, std::string_view topic,
                            std::size_t max_subscriptions = 0, std::uint64_t skip_through = 0);
  // What subscribe() would answer now, without subscribing (`subscribed`: it would).
  SubscribeResult check_subscribe(std::string_view connection_id, std::string_view topic,
                                  std::size_t max_subscriptions = 0) const;
  // False when the connection is unknown or was not subscribed.
  bool unsubscribe(std::string_view connection_id, std::string_view topic);
  std::vector<std::string> topics_of(std::string_view connection_id) const;
  std::size_t subscriber_count(std::string_view topic) const;
  std::size_t topic_count() const noexcept;
  // Visits every topic with subscribers, with their number (listings; O(topics)).
  void for_each_topic(const std::function<void(std::string_view topic, std::size_t subscribers)>& visit) const;

  // Deliveries: hand `message` to each matching open connection once; return how many.
  std::size_t send_to_user(std::string_view user_id, const Message& message) const;
  std::size_t send_to_role(std::string_view role, const Message& message) const;
  std::size_t broadcast(const Message& message) const;
  bool send_to_connection(std::string_view connection_id, const Message& message) const;
  // `offset`: the message's place in its topic's stream (0 when the topic has no history).
  std::size_t publish(std::string_view topic, const Message& message, std::uint64_t offset = 0) const;

  // Called when a user, role or topic index is created (its first connection joined) or erased
  // (its last one left), not per message: a cluster node's interests follow these.
  enum class IndexKind { user, role, topic };
  using IndexObserver = std::function<void(IndexKind kind, std::string_view name, bool created)>;
  void set_index_observer(IndexObserver observer);

  // Called when a connection starts or stops being subscribed to a topic: subscribe (a new
  // subscription only), unsubscribe, and unregister_connection (once per topic it was in, before
  // it leaves). Presence follows these. `topic` and `identity` are valid during the call only.
  using SubscriptionObserver = std::function<void(std::string_view connection_id, const Identity& identity,
                                                  std::string_view topic, bool subscribed)>;
  void set_subscription_observer(SubscriptionObserver observer);

  // Visits every registered connection (shutdown, idle sweeps).
  void for_each(const std::function<void(Connection&, const Identity&)>& visit) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace boundary::realtime
