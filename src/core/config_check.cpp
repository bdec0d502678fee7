#include "core/config_check.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "core/cluster_codec.hpp"
#include "core/history.hpp"
#include "core/presence.hpp"
#include "core/pusher.hpp"
#include "core/redis_cluster.hpp"
#include "core/redis_target.hpp"
#include "core/subscribe_proxy.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {
namespace {

template <class T>
void in_range(const char* option, T value, T min, T max) {
  if (value >= min && value <= max) return;
  throw std::invalid_argument(std::string("--") + option + ": expected a whole number from " + std::to_string(min) +
                              " to " + std::to_string(max) + ", got " + std::to_string(value));
}

void non_negative(const char* option, double value) {
  if (std::isfinite(value) && value >= 0) return;
  throw std::invalid_argument(std::string("--") + option + ": expected a non-negative number");
}

// At most one key source (an application that passes its own verifier names none). One is
// required by the command line, which builds the verifier.
void check_key_source(const Config& c) {
  const int sources = !c.jwt_secret.empty() + !c.jwt_public_key_file.empty() + !c.jwt_jwks_url.empty();
  if (sources > 1)
    throw std::invalid_argument("give only one of --jwt-secret, --jwt-public-key and --jwt-jwks-url");
  if (!c.jwt_jwks_url.empty()) {
    auto url = parse_http_url(c.jwt_jwks_url);
    if (!url) throw std::invalid_argument("--jwt-jwks-url: " + url.error());
    if (!c.jwt_jwks_ca_file.empty() && !url->tls)
      throw std::invalid_argument("--jwt-jwks-ca: only used with an https:// --jwt-jwks-url");
  } else if (!c.jwt_jwks_ca_file.empty()) {
    throw std::invalid_argument("--jwt-jwks-ca: only used with --jwt-jwks-url");
  }
}

}  // namespace

void validate_config(const Config& c) {
  if (c.api_key.empty()) throw std::invalid_argument("--api-key: an API key is required");
  // Compared in constant time, but a short key can still be guessed over the network. The key
  // itself is never part of the message.
  constexpr std::size_t min_api_key_bytes = 16;
  if (c.api_key.size() < min_api_key_bytes)
    throw std::invalid_argument("--api-key: API key must be at least " + std::to_string(min_api_key_bytes) +
                                " bytes (got " + std::to_string(c.api_key.size()) + ")");
  if (c.tls_cert_file.empty() != c.tls_key_file.empty())
    throw std::invalid_argument(c.tls_cert_file.empty() ? "--tls-cert: --tls-key was given without a certificate"
                                                        : "--tls-key: --tls-cert was given without a private key");
  in_range<unsigned>("threads", c.threads, 0, 256);  // 0 = one per core
  check_key_source(c);
  // A close frame's reason and every control frame must fit: 125 bytes.
  in_range<std::size_t>("max-message-bytes", c.max_message_bytes, 125, std::size_t{1} << 30);
  in_range<std::size_t>("max-outbound-bytes", c.max_outbound_bytes, 4096, std::size_t{1} << 34);
  in_range<std::size_t>("max-subscriptions", c.max_subscriptions, 1, 1000000);
  // Pinged at half: a one-second timeout would ping on every sweep.
  in_range<long long>("idle-timeout", c.idle_timeout.count(), 2, 86400 * 7);
  in_range<std::size_t>("max-body-bytes", c.max_body_bytes, 1024, std::size_t{1} << 30);
  // 0 = unlimited; the ceiling is far above what one process's file descriptors allow.
  in_range<std::size_t>("max-connections", c.max_connections, 0, 100000000);
  in_range<std::size_t>("max-connections-per-user", c.max_connections_per_user, 0, 100000000);
  if (c.max_connections != 0 && c.max_connections_per_user > c.max_connections)
    throw std::invalid_argument("--max-connections-per-user: must not exceed --max-connections (" +
                                std::to_string(c.max_connections) + ")");
  // At least a second (a real client on a slow link sends its upgrade in one round trip); at most
  // an hour, or a slow-request attack holds sockets for as long as it likes.
  in_range<long long>("handshake-timeout", c.handshake_timeout.count(), 1, 3600);
  in_range<long long>("cluster-reply-timeout", c.cluster_reply_timeout.count(), 1, 60000);
  non_negative("commands-per-second", c.commands_per_second);
  non_negative("command-burst", c.command_burst);
  if (c.command_burst < 1) throw std::invalid_argument("--command-burst: expected at least 1");
  try {
    TopicPatterns patterns(c.publish_patterns);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--publish-patterns: ") + e.what());
  }
  if (auto policy = effective_subscribe_policy(c); !policy) throw std::invalid_argument(policy.error());
  if (!c.subscribe_proxy.empty())
    if (auto url = parse_http_url(c.subscribe_proxy); !url) throw std::invalid_argument("--subscribe-proxy: " + url.error());
  in_range<long long>("proxy-timeout", c.proxy_timeout.count(), 1, 60000);
  in_range<std::size_t>("proxy-max-in-flight", c.proxy_max_in_flight, 1, 100000);
  if (auto rules = parse_history_rules(c.history); !rules) throw std::invalid_argument(rules.error());
  // At least one message of the largest size fits; at most 64 GiB.
  in_range<std::size_t>("history-max-bytes", c.history_max_bytes, 65536, std::size_t{1} << 36);
  try {
    TopicPatterns patterns(c.presence);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("--presence: ") + e.what());
  }
  in_range<std::size_t>("presence-max-users", c.presence_max_users, 1, max_presence_max_users);
  if (c.pusher_apps.size() > pusher::max_apps) throw std::invalid_argument("--pusher-app: at most 1000 apps");
  std::vector<pusher::App> apps;
  for (const auto& spec : c.pusher_apps) {
    auto app = pusher::parse_app(spec);
    if (!app) throw std::invalid_argument("--pusher-app: " + app.error());
    apps.push_back(std::move(*app));
  }
  if (auto clash = pusher::check_apps(apps)) throw std::invalid_argument("--pusher-app: " + *clash);
  if (!c.node_id.empty() && !valid_node_id(c.node_id))
    throw std::invalid_argument("--node-id: 1 to 64 characters of letters, digits, '.', '_' and '-'");
  if (!valid_redis_prefix(c.redis_prefix))
    throw std::invalid_argument("--redis-prefix: 1 to 64 characters of letters, digits, '.', '_', '-', ':' and '/'");
  if (c.redis_url.empty()) return;
  auto target = parse_redis_target(c.redis_url);
  if (!target) throw std::invalid_argument("--redis: " + target.error());
  if (!target->tls && !(c.redis_tls_ca.empty() && c.redis_tls_cert.empty() && c.redis_tls_key.empty()))
    throw std::invalid_argument("--redis-tls-ca, --redis-tls-cert and --redis-tls-key need a rediss:// URL");
  if (!target->user.empty() && target->password.empty() && c.redis_password.empty())
    throw std::invalid_argument(
        "--redis: the user '" + target->user + "' needs a password (in the URL, --redis-password-file or REALTIME_REDIS_PASSWORD)");
  if (c.redis_tls_cert.empty() != c.redis_tls_key.empty())
    throw std::invalid_argument("--redis-tls-cert and --redis-tls-key go together");
}

}  // namespace boundary::realtime::core
