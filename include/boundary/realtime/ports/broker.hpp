#pragma once
// Port: the link between the nodes of a cluster. A node hands the broker an already enveloped
// message and says which connections it is for (a route and a target); the broker fans it out
// to every other node interested in that route, which delivers it to its own connections and
// answers with how many it reached.
//
// Guarantees every adapter gives:
// - Ordering: fan-outs made by one node reach every other node in the order they were made.
//   Exception, by design: BrokerRedis on a Redis Cluster keeps this per topic and among
//   non-topic fan-outs, not between a topic fan-out and a non-topic one (docs/cluster.md,
//   "Ordering on Redis Cluster").
// - At most once: a fan-out is never retried, and a node never receives its own fan-outs back
//   (the origin delivers locally itself).
// - Interest: a node receives user / role / topic fan-outs only for names it declared interest
//   in (set_interest), and every `all` and connection-addressed fan-out.
// - Failure: while the broker cannot reach the cluster, publish() answers `reached = false` at
//   once, nothing is queued for later, and local delivery is the caller's business.
// - Callbacks (done, ready, the delivery handler) run on the broker's own thread (one event
//   loop) and must not block. Every member may be called from any thread.
//
// BrokerMemory (single node) fans out to nobody; BrokerRedis (src/shell/adapters) uses Redis
// pub/sub on one Redis or on a Redis Cluster (topics on sharded pub/sub there), the topology
// being a value it is given; make_broker picks one from the --redis URL.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace boundary::realtime {

// Who a fan-out is for. The letter is its tag on the wire (core/cluster_codec.hpp).
enum class Route : char {
  user = 'u',             // target: user id; body: enveloped JSON
  role = 'r',             // target: role
  topic = 't',            // target: topic
  stream = 'o',           // target: topic with history; body: "<offset>\n" + enveloped JSON. Made by
                          // HistoryRedis's script, delivered by every node (its origin too)
  presence = 'p',         // target: topic with presence; body: core/presence_redis.hpp. Made by
                          // PresenceRedis's scripts, handed to it by every node (its origin too)
  all = 'a',              // broadcast; target empty
  connection = 'c',       // target: connection id; body: enveloped JSON
  subscribe = 's',        // target: connection id; body: topic
  unsubscribe = 'x',      // target: connection id; body: topic
  disconnect = 'd',       // target: connection id; body empty
  disconnect_user = 'k',  // target: user id; body empty
  count = 'n',            // every node answers its local connection count
  topic_count = 'q',      // target: topic; every node with subscribers answers how many it has
};

struct Fanout {
  Route route = Route::all;
  std::string target;
  std::string body;
};

struct FanoutResult {
  bool reached = true;     // false: the cluster could not be reached (nothing was sent)
  std::size_t count = 0;   // sum of the other nodes' answers (0 when not waited for)
  bool complete = true;    // false: the bounded wait ended before every node answered
};

class Broker {
 public:
  using Done = std::function<void(FanoutResult)>;
  using Answer = std::function<void(std::size_t)>;
  // Delivers a fan-out from another node to this node's connections; calls `answer` once with
  // the local count (any thread).
  using Handler = std::function<void(const Fanout&, Answer)>;

  virtual ~Broker() = default;

  // Both before start().
  virtual void set_handler(Handler handler) = 0;
  virtual void start() = 0;

  // True for adapters that reach other nodes; a single-node server skips fan-out entirely.
  virtual bool distributed() const noexcept = 0;
  // Whether the cluster is reachable right now (always true for a single node).
  virtual bool connected() const noexcept = 0;

  // Fans `f` out. With `wait`, `done` gets the other nodes' summed answers (bounded wait);
  // without, `done` is called once the fan-out is handed to the transport, count 0.
  virtual void publish(Fanout f, bool wait, Done done) = 0;

  // This node starts / stops having local connections for a user, role or topic. Calls for one
  // name must come in the order the changes happened.
  virtual void set_interest(Route route, std::string_view name, bool interested) = 0;

  // Calls `ready` once every interest declared so far is in effect cluster-wide (or at once when
  // the cluster is unreachable): after it, fan-outs from any node reach those names.
  virtual void when_ready(std::function<void()> ready) = 0;

  // Blocks (never on a broker callback) until the first attempt to join the cluster has ended,
  // at most `max_wait`. Returns why the cluster refused this node for good (its credentials were
  // rejected, its node id is held by another running node): the server must not start. Empty
  // when it joined, when the cluster was unreachable (retried in the background, as always) or
  // when the attempt is still going on.
  virtual std::string startup_refusal(std::chrono::milliseconds max_wait) {
    (void)max_wait;
    return {};
  }

  // Gives up this node's membership at a graceful shutdown (BrokerRedis: deletes its node id
  // claim, so the id is free at once). Blocks at most `max_wait`; called once, before the loops
  // stop, never on a broker callback.
  virtual void leave(std::chrono::milliseconds max_wait) { (void)max_wait; }
};

}  // namespace boundary::realtime
