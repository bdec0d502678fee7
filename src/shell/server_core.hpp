#pragma once
// State shared by every loop of one server, and the cross-loop operations. Sends are posted to
// every loop as one immutable message; each loop delivers to its own connections and the counts
// are gathered without a lock taken per delivered message.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "boundary/realtime/config.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/token_verifier.hpp"
#include "boundary/realtime/server.hpp"
#include "boundary/realtime/connection_registry.hpp"
#include "core/topic.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {

class Loop;

struct ServerCore {
  ServerCore(Config cfg, std::unique_ptr<TokenVerifier> token_verifier);
  ~ServerCore();

  Config config;
  std::unique_ptr<TokenVerifier> verifier;
  core::PublishPatterns publish_patterns;
  Metrics metrics;
  std::vector<std::unique_ptr<Loop>> loops;
  std::map<std::pair<std::string, std::string>, Server::RouteHandler> routes;  // (method, path)
  std::atomic<bool> shutting_down{false};
  std::atomic<std::size_t> live_sessions{0};  // WebSocket sessions not yet finished
  Message ping_frame;  // one shared empty ping for every idle check

  // Runs `work` on every loop (posted, in order) and calls `done` with the sum of the results on
  // the loop that finished last. `work` must not block.
  void on_every_loop(std::function<std::size_t(Loop&)> work, std::function<void(std::size_t)> done);

  // The sends, as the HTTP API and the embedding API make them: the message is enveloped,
  // serialized and framed once, here, and shared by every loop and recipient.
  void send_to_user(std::string user_id, boost::json::object message, std::function<void(std::size_t)> done);
  void send_to_role(std::string role, boost::json::object message, std::function<void(std::size_t)> done);
  void broadcast(boost::json::object message, std::function<void(std::size_t)> done);
  void send_to_connection(std::string id, boost::json::object message, std::function<void(std::size_t)> done);
  void publish(std::string topic, boost::json::object message, std::function<void(std::size_t)> done);
  void subscribe(std::string id, std::string topic, std::function<void(std::size_t)> done);
  void unsubscribe(std::string id, std::string topic, std::function<void(std::size_t)> done);
  void disconnect_connection(std::string id, std::function<void(std::size_t)> done);
  void disconnect_user(std::string user_id, std::function<void(std::size_t)> done);

  std::size_t connection_count() const noexcept;
};

}  // namespace boundary::realtime::shell
