#pragma once
// State shared by every loop of one server, and the cross-loop operations. Sends are posted to
// every loop as one immutable message; each loop delivers to its own connections and the counts
// are gathered without a lock taken per delivered message.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>

#include "boundary/realtime/config.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/broker.hpp"
#include "boundary/realtime/ports/token_verifier.hpp"
#include "boundary/realtime/server.hpp"
#include "boundary/realtime/connection_registry.hpp"
#include "core/rate_limiter.hpp"
#include "core/topic.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {

class Loop;

// The outcome of a send: how many connections it was handed to (cluster-wide), whether the
// cluster was reached (false: only this node's connections got it), and whether it was
// answered before counting (fire-and-forget).
struct Delivery {
  std::size_t count = 0;
  bool reached = true;
  bool queued = false;
};
using SendDone = std::function<void(Delivery)>;

struct ServerCore {
  ServerCore(Config cfg, std::unique_ptr<TokenVerifier> token_verifier);
  ~ServerCore();

  Config config;
  std::unique_ptr<TokenVerifier> verifier;
  core::PublishPatterns publish_patterns;
  core::TokenBucketPolicy command_rate;  // --commands-per-second and --command-burst, per connection
  Metrics metrics;
  std::vector<std::unique_ptr<Loop>> loops;
  std::map<std::pair<std::string, std::string>, Server::RouteHandler> routes;  // (method, path)
  std::atomic<bool> shutting_down{false};
  std::atomic<std::size_t> live_sessions{0};  // WebSocket sessions not yet finished
  Message ping_frame;  // one shared empty ping for every idle check

  // Runs `work` on every loop (posted, in order) and calls `done` with the sum of the results on
  // the loop that finished last. `work` must not block.
  void on_every_loop(std::function<std::size_t(Loop&)> work, std::function<void(std::size_t)> done);

  // Fans a message or a connection operation out to other nodes (cluster mode; single node:
  // nothing). Declared after `loops`: destroyed before the loops' io_contexts it runs on.
  std::unique_ptr<Broker> broker;

  // The sends, as the HTTP API and the embedding API make them: the message is enveloped,
  // serialized and framed once, here, and shared by every loop and recipient. In cluster mode the
  // same bytes go to the other nodes; `wait` = false answers without gathering their counts.
  void send_to_user(std::string user_id, boost::json::object message, SendDone done, bool wait = true);
  void send_to_role(std::string role, boost::json::object message, SendDone done, bool wait = true);
  void broadcast(boost::json::object message, SendDone done, bool wait = true);
  void send_to_connection(std::string id, boost::json::object message, SendDone done, bool wait = true);
  void publish(std::string topic, boost::json::object message, SendDone done, bool wait = true);
  void subscribe(std::string id, std::string topic, SendDone done, bool wait = true);
  void unsubscribe(std::string id, std::string topic, SendDone done, bool wait = true);
  void disconnect_connection(std::string id, SendDone done, bool wait = true);
  void disconnect_user(std::string user_id, SendDone done, bool wait = true);
  // Connections on every node (cluster mode: gathered like a send's count).
  void count_connections(SendDone done);

  void start_broker();

  std::size_t connection_count() const noexcept;

 private:
  using Work = std::function<std::size_t(Loop&)>;
  // What a fan-out does on one loop of whichever node delivers it. `m` is the framed message
  // for message routes.
  Work work_for(const Fanout& f, Message m) const;
  // Local delivery plus, in cluster mode, the fan-out; `done` gets the sum.
  void dispatch(Fanout f, Work work, bool wait, SendDone done);
  // A fan-out from another node.
  void deliver_remote(const Fanout& f, Broker::Answer answer);
  // Node-level reference counts of user / role / topic indexes across loops.
  void index_changed(ConnectionRegistry::IndexKind kind, std::string_view name, bool created);

  std::mutex interests_mutex_;
  std::unordered_map<std::string, std::size_t> interest_refs_;
};

}  // namespace boundary::realtime::shell
