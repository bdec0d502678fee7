#pragma once
// Port: presence (--presence). For topics matching a presence pattern, the store knows which
// users have at least one connection subscribed, and announces a user's first connection
// (presence-join) and last one (presence-leave) to the topic's subscribers.
//
// Guarantees every adapter gives:
// - User level: a second connection of a user is no new join; leave comes with the last one.
// - Order: the announcements of one topic are made in the order of the changes that caused
//   them, and an answer of list() is handed over at a point between two announcements of its
//   topic, after every change made before it was announced (a client that lists and then
//   applies later events sees every change once).
// - Coalescing: an adapter may gather a topic's events over a short interval and announce them
//   together; a join and a leave of one user that cancel out inside it are then not announced.
// - Threads: every member may be called from any thread; `announce` and the answers run on the
//   caller's thread (PresenceMemory) and must not block or call back into the store.
//
// PresenceMemory (src/shell/adapters) keeps presence in this process (single node);
// PresenceRedis keeps it in Redis, shared by the nodes of a cluster.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace boundary::realtime {

struct PresenceUser {
  std::string user_id;
  std::size_t connections = 0;                // this user's connections subscribed to the topic
  std::shared_ptr<const std::string> info;    // the token's `info` object, serialized; null: none
};

struct PresenceListing {
  std::vector<PresenceUser> users;
  bool truncated = false;   // more users are present than were listed
  bool available = true;    // false: the store could not answer
};

struct PresenceStats {
  std::size_t users = 0;
  std::size_t connections = 0;
  bool available = true;
};

// For /metrics.
struct PresenceUsage {
  std::size_t topics = 0;  // topics with anyone present
  std::size_t users = 0;   // users present, summed over topics
};

// What the topic's subscribers are told.
struct PresenceEvent {
  enum class Kind { join, leave } kind = Kind::join;
  std::string topic;
  std::string user_id;
  std::shared_ptr<const std::string> info;  // null: none; for a leave, the info the user had (not sent)
};

class PresenceStore {
 public:
  virtual ~PresenceStore() = default;

  // Events of one topic, in order (one or more).
  using Announce = std::function<void(const std::vector<PresenceEvent>& events)>;

  // Whether `topic`'s subscribers are tracked.
  virtual bool tracks(std::string_view topic) const = 0;
  // Where join and leave events go (set once, before any change).
  virtual void set_announce(Announce announce) = 0;
  // A connection of `user_id` subscribed to a tracked `topic` / stopped being subscribed.
  virtual void joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) = 0;
  virtual void left(std::string_view topic, std::string_view user_id) = 0;
  // At most `max_users` of the topic's present users.
  virtual void list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) = 0;
  virtual void stats(std::string_view topic, std::function<void(PresenceStats)> answer) = 0;
  virtual PresenceUsage usage() const = 0;
  // The node is stopping: an adapter that shares presence with other nodes withdraws this
  // node's users (they leave now), waiting at most `max_wait`.
  virtual void close(std::chrono::milliseconds max_wait) { (void)max_wait; }
};

}  // namespace boundary::realtime
