#pragma once
// One server process (a node of the cluster, or the single node): its configuration, the
// application's hooks, the rules every client command passes, metrics, the event loops and the
// fan-out hub. Loops and sessions reach it through these accessors; only the Server facade
// (server.cpp) drives its lifecycle.

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "boundary/realtime/config.hpp"
#include "boundary/realtime/hooks.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/broker.hpp"
#include "boundary/realtime/ports/history_store.hpp"
#include "boundary/realtime/ports/presence_store.hpp"
#include "boundary/realtime/ports/subscribe_authorizer.hpp"
#include "boundary/realtime/ports/token_verifier.hpp"
#include "boundary/realtime/server.hpp"
#include "core/admission.hpp"
#include "core/command.hpp"
#include "core/pusher.hpp"
#include "core/pusher_webhook.hpp"
#include "shell/metrics.hpp"
#include "shell/refusal_log.hpp"

namespace boundary::realtime::shell {

class Hub;
class Loop;
class TlsContext;
class JwksFetcher;
class PusherWebhooks;
class WebhookClaims;

class Node {
 public:
  // Validates the configuration (core::validate_config) and builds the loops, the broker (the
  // given one, or one made from config.redis_url), the hub and, with config.jwt_jwks_url, the
  // JWKS verifier (then `verifier` must be null). Nothing runs until start().
  Node(Config config, std::unique_ptr<TokenVerifier> verifier, Hooks hooks, std::unique_ptr<Broker> broker);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const Config& config() const noexcept { return config_; }
  const TokenVerifier& verifier() const noexcept { return *verifier_; }
  const Hooks& hooks() const noexcept { return hooks_; }
  const core::CommandRules& command_rules() const noexcept { return command_rules_; }
  Metrics& metrics() noexcept { return metrics_; }
  RefusalLog& refusal_log() noexcept { return refusal_log_; }
  Hub& hub() noexcept { return *hub_; }
  // --tls-cert/--tls-key: the context new connections take; null when the port is plain.
  TlsContext* tls() noexcept { return tls_.get(); }
  // --subscribe-policy proxy: the authorizer that runs on loop `loop_index`; null otherwise.
  SubscribeAuthorizer* subscribe_authorizer(unsigned loop_index) noexcept {
    return authorizers_.empty() ? nullptr : authorizers_[loop_index].get();
  }
  // --pusher-app, parsed (validate_config checked them); the first is the default app.
  const std::vector<core::pusher::App>& pusher_apps() const noexcept { return pusher_apps_; }
  // Webhooks of the Pusher apps that have a URL; null when none has.
  PusherWebhooks* pusher_webhooks() noexcept { return webhooks_.get(); }
  // Cluster mode over Redis: the topics starting with `topic_prefix` that some node has
  // subscribers for (BrokerRedis::topic_channels); nullopt when Redis did not answer. Only when
  // lists_cluster_topics() (the Redis broker; an application's own broker cannot list).
  bool lists_cluster_topics() const noexcept;
  void list_cluster_topics(std::string topic_prefix,
                           std::function<void(std::optional<std::vector<std::string>>)> done);
  // The index of the app with this key or id, or nullopt.
  std::optional<std::size_t> pusher_app_by_key(std::string_view key) const noexcept;
  std::optional<std::size_t> pusher_app_by_id(std::string_view id) const noexcept;
  // One shared empty ping frame for every idle check.
  const Message& ping_frame() const noexcept { return ping_frame_; }

  // Application routes (exact path), registered before start.
  void add_route(std::string method, std::string path, Server::RouteHandler handler);
  const Server::RouteHandler* find_route(std::string_view method, std::string_view path) const;

  bool shutting_down() const noexcept { return shutting_down_.load(std::memory_order_acquire); }
  // True for the first caller only.
  bool begin_shutdown() noexcept { return !shutting_down_.exchange(true, std::memory_order_acq_rel); }

  // WebSocket sessions not yet finished (shutdown waits for them).
  void session_opened() noexcept { live_sessions_.fetch_add(1, std::memory_order_relaxed); }
  void session_finished() noexcept { live_sessions_.fetch_sub(1, std::memory_order_relaxed); }
  std::size_t live_sessions() const noexcept { return live_sessions_.load(std::memory_order_relaxed); }

  // --max-connections / --max-connections-per-user. Takes a slot for a connection of `user_id`,
  // or says why not (core::decide_admission). Safe from any loop: one user's connections may land
  // on different loops. Every admitted connection gives its slot back exactly once.
  std::optional<core::AdmissionRefusal> admit_connection(std::string_view user_id);
  void release_connection(std::string_view user_id) noexcept;

  std::vector<std::unique_ptr<Loop>>& loops() noexcept { return loops_; }
  void start_broker();
  Broker& broker() noexcept { return *broker_; }
  HistoryStore* history() noexcept { return history_.get(); }
  PresenceStore* presence() noexcept { return presence_.get(); }
  void start_jwks();  // the first JWKS fetch, when configured

 private:
  void start_pusher_webhooks();  // construction: webhooks of the apps that have a URL

  Config config_;
  std::unique_ptr<TokenVerifier> verifier_;
  Hooks hooks_;
  core::CommandRules command_rules_;
  Metrics metrics_;
  std::unique_ptr<TlsContext> tls_;
  RefusalLog refusal_log_;
  Message ping_frame_;
  std::vector<core::pusher::App> pusher_apps_;
  std::map<std::pair<std::string, std::string>, Server::RouteHandler, std::less<>> routes_;  // (method, path)
  std::atomic<bool> shutting_down_{false};
  std::atomic<std::size_t> live_sessions_{0};
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // One lock for both counts: reading them, deciding and incrementing must be one step, or two
  // loops could each see room for the last slot. Taken once per upgrade, after the token check,
  // which costs far more.
  std::mutex admission_mutex_;
  std::size_t admitted_ = 0;
  // Only with a per-user limit; a user leaves the map with their last connection.
  std::unordered_map<std::string, std::size_t, StringHash, std::equal_to<>> admitted_per_user_;
  std::vector<std::unique_ptr<Loop>> loops_;
  std::vector<std::unique_ptr<SubscribeAuthorizer>> authorizers_;  // one per loop, or none
  // Declared after the loops: destroyed before the io_contexts they run on.
  std::shared_ptr<JwksFetcher> jwks_;
  std::unique_ptr<Broker> broker_;
  std::unique_ptr<HistoryStore> history_;  // --history; null without
  std::unique_ptr<Hub> hub_;
  std::unique_ptr<PresenceStore> presence_;  // --presence; null without
  std::unique_ptr<PusherWebhooks> webhooks_;  // destroyed before the loops it runs on
  std::unique_ptr<WebhookClaims> webhook_claims_;  // cluster mode: whose change is the cluster's
};

}  // namespace boundary::realtime::shell
