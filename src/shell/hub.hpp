#pragma once
// The fan-out hub: every send of one server goes through here. A message is enveloped, serialized
// and framed once; the same bytes are posted to every loop (each delivers to its own
// connections) and, in cluster mode, handed to the broker for the other nodes, whose counts are
// joined with the local ones. The hub also keeps the node's interests (which users, roles and
// topics have local connections) in step with the broker.
//
// Thread-safety: every member may be called from any thread. Counts are gathered without a lock
// taken per delivered message.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "boundary/realtime/connection_registry.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/broker.hpp"
#include "boundary/realtime/ports/history_store.hpp"

namespace boundary::realtime::shell {

class Loop;
struct Metrics;

// The outcome of a send: how many connections it was handed to (cluster-wide), whether the
// cluster was reached (false: only this node's connections got it), and whether it was
// answered before counting (fire-and-forget).
struct Delivery {
  std::size_t count = 0;
  bool reached = true;
  bool queued = false;
  std::uint64_t offset = 0;  // the message's offset on a topic with history, else 0
};
using SendDone = std::function<void(Delivery)>;

struct SendOptions {
  // Cluster mode: false answers once the fan-out is handed to the broker, without the other
  // nodes' counts (`queued`). Ignored on a single node, where counting costs nothing.
  bool wait = true;
};

// A subscribe's answer, summed over nodes like a count: only the node that holds the connection
// answers non-zero.
enum class SubscribeAnswer : std::size_t { unknown_connection = 0, subscribed = 1, limit_reached = 2 };

class Hub {
 public:
  // The loops, the broker and the history store (null: no --history) must outlive the hub; the
  // broker is not started here.
  Hub(std::vector<std::unique_ptr<Loop>>& loops, Broker& broker, Metrics& metrics, std::size_t max_subscriptions,
      HistoryStore* history = nullptr);
  ~Hub();

  using Work = std::function<std::size_t(Loop&)>;
  // Runs `work` on every loop (posted, in order) and calls `done` with the sum of the results on
  // the loop that finished last. `work` must not block.
  void on_every_loop(Work work, std::function<void(std::size_t)> done);

  // A message to the connections of `route` (user, role, topic, all, connection) named by
  // `target` (empty for all). On a topic with history the message gets its offset ("offset",
  // replacing one the sender put there) and is kept; the store's lock orders the posts to the
  // loops by offset (HistoryStore, "Atomic join").
  void send(Route route, std::string target, boost::json::object message, SendOptions options, SendDone done);
  // An encoded message (or several frames in one buffer) to this node's subscribers of `topic`,
  // without history and without the cluster: presence events (each node announces them to its
  // own subscribers; in cluster mode every node receives them from Redis).
  void publish_local(std::string topic, Message message);
  // A connection operation: subscribe / unsubscribe (`topic`), disconnect (a connection id),
  // disconnect_user (a user id) and count (every node's connections; target empty).
  void control(Route route, std::string target, std::string topic, SendOptions options, SendDone done);

  // Called when the node's first subscriber of a topic arrives (true) and its last one leaves
  // (false), across loops. Set before start; runs under the interests lock, so it must not block.
  using TopicObserver = std::function<void(std::string_view topic, bool occupied)>;
  void set_topic_observer(TopicObserver observer);

  // The node's own connections.
  std::size_t connection_count() const noexcept;

  bool distributed() const noexcept { return broker_.distributed(); }
  HistoryStore* history() const noexcept { return history_; }
  bool cluster_reachable() const noexcept { return broker_.connected(); }
  // Keeps this node subscribed to `topic` cluster-wide while the returned handle lives, as if a
  // connection were subscribed (HistoryStore: a recovery's read must not miss what is published
  // before the connection's own subscription). Null on a single node. A handle released after
  // detach() does nothing.
  std::shared_ptr<void> pin(std::string_view topic);
  // At shutdown, once the loops have stopped and before the broker is destroyed: interests no
  // longer reach the broker (handles still held by queued work are released later).
  void detach() noexcept { *attached_ = false; }
  // Calls `ready` once every subscription made so far is in effect cluster-wide (at once on a
  // single node).
  void when_ready(std::function<void()> ready) { broker_.when_ready(std::move(ready)); }

 private:
  Work work_for(const Fanout& f, Message m, std::uint64_t offset = 0) const;
  void dispatch(Fanout f, Work work, SendOptions options, SendDone done);
  void deliver_remote(const Fanout& f, Broker::Answer answer);
  void send_stream(std::string topic, boost::json::object message, SendOptions options, SendDone done);
  void index_changed(ConnectionRegistry::IndexKind kind, std::string_view name, bool created);

  std::vector<std::unique_ptr<Loop>>& loops_;
  Broker& broker_;
  Metrics& metrics_;
  const std::size_t max_subscriptions_;
  HistoryStore* const history_;
  std::mutex interests_mutex_;
  std::unordered_map<std::string, std::size_t> interest_refs_;  // node-level refs across loops
  TopicObserver topic_observer_;
  // Shared with pins, which may outlive the hub in work still queued on stopped loops.
  std::shared_ptr<bool> attached_ = std::make_shared<bool>(true);
};

}  // namespace boundary::realtime::shell
