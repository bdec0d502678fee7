// realtime-server: runs the server, or mints a token (`realtime-server token ...`).

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/rand.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "boundary/realtime/jwt_verifier.hpp"
#include "boundary/realtime/server.hpp"
#include "config_loader.hpp"
#include "core/redis_target.hpp"
#include "core/topic.hpp"

namespace rt = boundary::realtime;
namespace json = boost::json;

namespace {

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("no randomness available");
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += hex[c >> 4];
    s += hex[c & 0xF];
  }
  return s;
}

std::string mint(const std::string& secret, const std::string& user_id, const std::string& roles, long ttl) {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  json::array role_list;
  for (const auto& r : rt::core::split_list(roles)) role_list.emplace_back(r);
  json::object claims{{"user-id", user_id}, {"roles", std::move(role_list)}, {"iat", now}, {"exp", now + ttl}};
  return rt::sign_hs256(secret, json::serialize(claims));
}

// host:port as it goes in a URL: an IPv6 literal is bracketed (RFC 3986), `::1` -> `[::1]:3000`.
std::string url_authority(const std::string& host, std::uint16_t port) {
  const bool ipv6_literal = host.find(':') != std::string::npos && !host.starts_with('[');
  return (ipv6_literal ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

void print_dev_mode(const rt::Config& c, std::uint16_t port) {
  const std::string& token = c.dev_token;
  const std::string authority = url_authority(c.host, port);
  const bool tls = !c.tls_cert_file.empty();
  const std::string base = (tls ? "https://" : "http://") + authority;
  std::string patterns;
  for (const auto& p : c.publish_patterns) patterns += (patterns.empty() ? "" : ",") + p;
  std::string presence;
  for (const auto& p : c.presence) presence += (presence.empty() ? "" : ",") + p;
  presence = presence.empty() ? "off" : "who subscribes to " + presence + " is listed and announced";
  std::printf(
      "\n"
      "  ************************************************************************\n"
      "  *  DEV MODE: no --jwt-secret and no --api-key were given, so a random  *\n"
      "  *  secret and API key were generated for this run only. Do not use    *\n"
      "  *  dev mode in production.                                            *\n"
      "  ************************************************************************\n\n"
      "  JWT secret : %s\n"
      "  API key    : %s\n"
      "  Sample token (user-id dev-user, roles admin,user, valid 24 h):\n    %s\n\n"
      "  Connect    : %s://%s/ws?token=<token>\n"
      "  Publish    : clients may publish to %s (--publish-patterns)\n"
      "  Presence   : %s (--presence)\n"
      "  Send       : curl -s -X POST %s/api/broadcast -H 'Authorization: Bearer %s' \\\n"
      "                 -H 'Content-Type: application/json' -d '{\"message\":{\"type\":\"hello\",\"text\":\"hi\"}}'\n"
      "  Health     : %s/health/realtime\n"
      "  Try it     : open %s/ in a browser (dev page: live messages, subscribe, curl line)\n\n",
      c.jwt_secret.c_str(), c.api_key.c_str(), token.c_str(), tls ? "wss" : "ws", authority.c_str(), patterns.c_str(), presence.c_str(), base.c_str(),
      c.api_key.c_str(), base.c_str(), base.c_str());
  std::fflush(stdout);
}

std::string join(const std::vector<std::string>& items, const char* when_empty) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out.empty() ? when_empty : out;
}

std::string limit(std::size_t n) { return n == 0 ? "unlimited" : std::to_string(n); }

// cluster=off, or the Redis URL with its password replaced, the prefix, how the node
// authenticates and whether TLS verifies against a given CA or the system's store.
std::string cluster_settings(const rt::Config& c) {
  if (c.redis_url.empty()) return "off";
  const auto target = rt::core::parse_redis_target(c.redis_url);  // checked by validate_config
  const bool password = !c.redis_password.empty() || (target && !target->password.empty());
  const std::string auth = !password ? "none" : target && !target->user.empty() ? "user+password" : "password";
  const std::string source = !c.redis_password_file.empty() ? " (file)"
                             : !c.redis_password.empty()    ? " (env)"
                                                            : "";
  const std::string tls = !target || !target->tls     ? "off"
                          : c.redis_tls_ca.empty()      ? "verify (system CAs)"
                                                        : "verify (" + c.redis_tls_ca + ")";
  return rt::core::redact_redis_url(c.redis_url) + " redis-prefix=" + c.redis_prefix + " redis-auth=" + auth +
         source + " redis-tls=" + tls;
}

std::string auth_kind(const rt::Config& c) {
  if (!c.jwt_jwks_url.empty()) {
    // The query is left out: it might carry a credential.
    const std::string url = c.jwt_jwks_url.substr(0, c.jwt_jwks_url.find('?'));
    return "JWKS (" + url + (c.jwt_jwks_ca_file.empty() ? "" : ", CA " + c.jwt_jwks_ca_file) + ")";
  }
  return c.jwt_public_key_file.empty() ? "HMAC" : "public key (" + c.jwt_public_key_file + ")";
}

// The Pusher apps' ids (never their keys or secrets).
std::string pusher_app_ids(const rt::Config& c) {
  std::vector<std::string> ids;
  for (const auto& spec : c.pusher_apps) ids.push_back(spec.substr(0, spec.find(':')));
  return join(ids, "none");
}

// One line with every security-relevant setting in force, for whoever audits a deployment from its
// logs. Names secrets' kinds, never their values.
void log_security_settings(const rt::Config& c) {
  spdlog::info(
      "security: auth={} api-key=set allowed-origins={} publish-patterns={} max-connections={} "
      "max-connections-per-user={} max-message-bytes={} max-outbound-bytes={} max-body-bytes={} "
      "max-subscriptions={} commands-per-second={} idle-timeout={}s handshake-timeout={}s compression={} history={} presence={} pusher-apps={} cluster={} tls={}{}",
      auth_kind(c),
      join(c.allowed_origins, "any"), join(c.publish_patterns, "none"), limit(c.max_connections),
      limit(c.max_connections_per_user), c.max_message_bytes, c.max_outbound_bytes, c.max_body_bytes,
      c.max_subscriptions, c.commands_per_second == 0 ? std::string("unlimited") : fmt::format("{}", c.commands_per_second),
      c.idle_timeout.count(), c.handshake_timeout.count(), c.compression ? "on" : "off",
      c.history.empty()        ? std::string("off")
      : c.redis_url.empty()    ? fmt::format("{} max-bytes={}", join(c.history, "none"), c.history_max_bytes)
                               : fmt::format("{} store=redis", join(c.history, "none")),
      c.presence.empty() ? std::string("off") : fmt::format("{} max-users={}", join(c.presence, "none"), c.presence_max_users),
      pusher_app_ids(c), cluster_settings(c),
      c.tls_cert_file.empty() ? "off" : "on (" + c.tls_cert_file + ")", c.dev_mode ? " DEV MODE" : "");
}

// Null with --jwt-jwks-url: the server builds the JWKS verifier itself.
std::unique_ptr<rt::TokenVerifier> make_verifier(const rt::app::LoadedConfig& loaded) {
  const auto& c = loaded.config;
  if (!c.jwt_secret.empty() + !c.jwt_public_key_file.empty() + !c.jwt_jwks_url.empty() > 1)
    throw std::invalid_argument("give only one of --jwt-secret, --jwt-public-key and --jwt-jwks-url");
  if (!c.jwt_jwks_url.empty()) return nullptr;
  if (!c.jwt_public_key_file.empty()) return rt::make_public_key_verifier(loaded.jwt_public_key_pem);
  return rt::make_hmac_verifier(c.jwt_secret);
}

int run_server(rt::app::LoadedConfig loaded) {
  auto& c = loaded.config;
  spdlog::set_level(spdlog::level::from_str(c.log_level));
  const bool has_key_source = !c.jwt_secret.empty() || !c.jwt_public_key_file.empty() || !c.jwt_jwks_url.empty();
  if (!has_key_source && c.api_key.empty()) {
    c.dev_mode = true;
    c.jwt_secret = random_hex(32);
    c.api_key = random_hex(24);
    c.dev_token = mint(c.jwt_secret, "dev-user", "admin,user", 86400);
    // The client quick starts publish from the client: allow it on demo topics unless told otherwise.
    if (c.publish_patterns.empty()) c.publish_patterns = {"demo:**"};
    // And the dev page shows who is on them (presence is single-node for now).
    if (c.presence.empty() && c.redis_url.empty()) c.presence = {"demo:**"};
  }
  if (c.api_key.empty()) throw std::invalid_argument("--api-key is required when a JWT secret, public key or JWKS URL is given");
  if (!c.dev_mode && !has_key_source)
    throw std::invalid_argument("--jwt-secret, --jwt-public-key or --jwt-jwks-url is required when --api-key is given");

  // Signals are taken synchronously by this thread; block them before any loop thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // re-read the TLS files
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto verifier = make_verifier(loaded);
  const bool dev = c.dev_mode;
  rt::Config config = c;
  rt::Server server(std::move(c), std::move(verifier));
  const auto port = server.start();
  spdlog::info("realtime-server listening on {} ({} threads{})", url_authority(config.host, port),
               config.threads ? config.threads : std::thread::hardware_concurrency(), dev ? ", DEV MODE" : "");
  log_security_settings(config);
  if (dev) print_dev_mode(config, port);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    if (config.tls_cert_file.empty()) spdlog::info("received SIGHUP: no TLS files to re-read");
    else server.reload_tls();  // logs the outcome; a failure keeps the previous certificate
  }
  spdlog::info("received {}, shutting down gracefully", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  server.shutdown();
  spdlog::info("stopped");
  return 0;
}

// Every command-line mistake exits with status 2, as bad option values do; CLI11's own codes
// (105, 106, 109, ...) differ per error and are not part of the documented interface.
// Returns the exit status when parsing ends the program (--help, --version, a mistake).
std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::fprintf(stderr, "realtime-server: %s\nRun with --help for more information.\n", e.what());
    return 2;
  }
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  CLI::App app{"Boundary Realtime: WebSocket server for real-time messaging"};
  app.set_version_flag("--version", std::string("realtime-server ") + BR_VERSION, "print the version and exit");
  std::string config_file;
  app.add_option("--config", config_file, "TOML configuration file");
  std::map<std::string, std::string> values;
  std::map<std::string, CLI::Option*> given;
  std::vector<std::string> pusher_apps;  // the one repeatable option
  for (const auto& name : rt::app::option_names()) {
    const auto help = rt::app::describe(name) + " [env " + rt::app::env_name(name) + "]";
    if (name == "pusher-app") given[name] = app.add_option("--" + name, pusher_apps, help);
    else given[name] = app.add_option("--" + name, values[name], help);
  }

  auto* token_cmd = app.add_subcommand("token", "print a signed HS256 token for trying things out and tests");
  std::string secret, user_id, roles;
  long ttl = 3600;
  token_cmd->add_option("--secret", secret, "HMAC secret, at least 32 bytes [env REALTIME_JWT_SECRET]");
  token_cmd->add_option("--user-id", user_id, "user id claim (not empty)")->required();
  token_cmd->add_option("--roles", roles, "comma list of roles");
  token_cmd->add_option("--ttl", ttl, "seconds until the token expires (1 to 31536000)")->check(CLI::Range(1L, 31536000L));

  if (const auto code = parse_command_line(app, argc, argv)) return *code;
  try {
    if (*token_cmd) {
      if (secret.empty())
        if (const char* env = std::getenv("REALTIME_JWT_SECRET")) secret = env;
      if (secret.empty()) throw std::invalid_argument("token: --secret or REALTIME_JWT_SECRET is required");
      if (secret.size() < 32) throw std::invalid_argument("token: the secret must be at least 32 bytes");
      if (user_id.empty()) throw std::invalid_argument("token: --user-id must not be empty");
      std::cout << mint(secret, user_id, roles, ttl) << '\n';
      return 0;
    }
    std::vector<std::pair<std::string, std::string>> flags;
    for (const auto& p : pusher_apps)
      if (p.find(',') != std::string::npos) throw std::invalid_argument("--pusher-app: one id:key:secret per flag");
    values["pusher-app"] = fmt::format("{}", fmt::join(pusher_apps, ","));
    for (const auto& [name, opt] : given)
      if (opt->count() > 0) flags.emplace_back(name, values[name]);
    return run_server(rt::app::load_config(flags, config_file));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "realtime-server: %s\n", e.what());
    return 2;
  }
}
