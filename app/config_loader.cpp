#include "config_loader.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>

#include <toml++/toml.h>

#include "core/topic.hpp"

namespace boundary::realtime::app {
namespace {

struct OptionInfo {
  std::string name;
  std::string help;
};

const std::vector<OptionInfo>& options() {
  static const std::vector<OptionInfo> all = {
      {"host", "listen address (default 127.0.0.1)"},
      {"port", "port for WebSocket, HTTP API, health and metrics (default 3000)"},
      {"tls-cert", "PEM certificate chain: serve wss:// and https:// on the port (with --tls-key; re-read on SIGHUP)"},
      {"tls-key", "PEM private key of --tls-cert (unencrypted; re-read on SIGHUP)"},
      {"threads", "event-loop threads (default: number of cores)"},
      {"jwt-secret", "HS256/384/512 secret, at least 32 bytes"},
      {"jwt-public-key", "PEM file with the public key (RS*/PS*/ES*/EdDSA)"},
      {"jwt-jwks-url", "http[s]:// URL of a JSON Web Key Set: keys by kid (RS*/PS*/ES*/EdDSA), refreshed every 5 min (or the reply's max-age) and on an unknown kid, at most once per 10 s"},
      {"jwt-jwks-ca", "PEM file of the CA(s) that sign an https --jwt-jwks-url (default: the system trust store)"},
      {"api-key", "bearer key for /api/*"},
      {"redis", "redis://[user:password@]host:port[/db], or redis-cluster://host:port[,host:port...] for a Redis Cluster (cluster mode); rediss:// and rediss-cluster:// for TLS"},
      {"redis-prefix", "prefix of every Redis channel and key, so several clusters can share one Redis (default rt)"},
      {"redis-password-file", "file holding the Redis password (trailing newline dropped); replaces REALTIME_REDIS_PASSWORD and the URL's password"},
      {"redis-tls-ca", "rediss: PEM CA bundle the Redis certificate must chain to (default: the system's trust store)"},
      {"redis-tls-cert", "rediss: client certificate (PEM), with --redis-tls-key"},
      {"redis-tls-key", "rediss: client private key (PEM), with --redis-tls-cert"},
      {"node-id", "name of this node in a cluster (default: random; unused on a single node)"},
      {"cluster-reply-timeout", "milliseconds to wait for other nodes' delivery counts (default 1000)"},
      {"allowed-origins", "comma list checked against Origin (default: any)"},
      {"publish-patterns", "comma list of topic patterns clients may publish to (default: none)"},
      {"subscribe-policy", "who may subscribe: open, claims (the token's topics claim) or proxy (ask --subscribe-proxy) (default: open, or proxy when --subscribe-proxy is set)"},
      {"subscribe-proxy", "http[s]://host[:port]/path the backend answers subscribe questions on (policy proxy)"},
      {"proxy-timeout", "milliseconds to wait for the subscribe proxy before refusing (default 2000)"},
      {"proxy-max-in-flight", "subscribe proxy requests in flight per node before refusing at once (default 64)"},
      {"max-message-bytes", "largest inbound WebSocket message, after decompression (default 65536)"},
      {"compression", "permessage-deflate (RFC 7692) for clients that offer it: off or on (default off)"},
      {"max-outbound-bytes", "per-connection send buffer before a slow consumer is closed (default 1048576)"},
      {"max-subscriptions", "topics per connection (default 1000)"},
      {"history", "comma list of PATTERN=SIZE[/TTL]: topics matching PATTERN keep their last SIZE messages for TTL seconds (default 300) for recovery and the history action (default: none)"},
      {"history-max-bytes", "memory all history of this node may take; past it the least recently published streams are dropped (default 67108864)"},
      {"presence", "comma list of topic patterns whose subscribers are tracked: presence-join/leave events, the presence action and GET /api/presence (default: none)"},
      {"pusher-app", "id:key:secret[:webhook-url] of a Pusher protocol app (repeatable; comma list in the environment; [[pusher-app]] tables with id, key, secret and webhook in a config file); the first is the default app (default: none)"},
      {"presence-max-users", "most users a presence answer lists; past it \"truncated\" is true (default 1000)"},
      {"idle-timeout", "seconds of silence before a connection is closed, pinged at half (default 60)"},
      {"max-body-bytes", "largest HTTP API request body (default 1048576)"},
      {"max-connections", "WebSocket connections on this node, past it an upgrade gets 503; 0 = unlimited (default 0)"},
      {"max-connections-per-user", "WebSocket connections of one user on this node, past it 429; 0 = unlimited (default 0)"},
      {"handshake-timeout", "seconds a whole HTTP request (the upgrade, or any request) may take to arrive (default 10)"},
      {"commands-per-second", "client commands per connection per second, 0 = unlimited (default 100)"},
      {"command-burst", "client commands a connection may send at once before the rate applies (default 200)"},
      {"log-level", "trace, debug, info, warn, error or off (default info)"},
  };
  return all;
}

std::string fmt_double(double v) {
  std::ostringstream ss;
  ss.precision(17);
  ss << v;
  return ss.str();
}

std::optional<std::string> toml_value(const toml::table& t, const std::string& key) {
  const toml::node* n = t.get(key);
  if (!n) return std::nullopt;
  if (auto s = n->value<std::string>()) return *s;
  if (n->is_integer()) return std::to_string(*n->value<std::int64_t>());
  if (n->is_floating_point()) return fmt_double(*n->value<double>());
  if (auto b = n->value<bool>()) return *b ? "true" : "false";
  // A table of PATTERN = "SIZE[/TTL]" (or SIZE): `[history]` with `"chat:**" = "100/60"`.
  if (auto* tab = n->as_table()) {
    std::string joined;
    for (const auto& [k, item] : *tab) {
      std::string spec;
      if (auto s = item.value<std::string>()) spec = *s;
      else if (item.is_integer()) spec = std::to_string(*item.value<std::int64_t>());
      else throw std::invalid_argument("config file: '" + key + "' entries must be \"SIZE[/TTL]\" strings or numbers");
      if (!joined.empty()) joined += ',';
      joined += std::string(k.str()) + "=" + spec;
    }
    return joined;
  }
  if (auto* arr = n->as_array()) {
    std::string joined;
    for (const auto& item : *arr) {
      // [[pusher-app]] tables: id, key, secret and webhook become "id:key:secret[:webhook]".
      if (auto* t = item.as_table(); t && key == "pusher-app") {
        std::string spec;
        for (const char* field : {"id", "key", "secret"}) {
          auto v = (*t)[field].value<std::string>();
          if (!v) throw std::invalid_argument("config file: every [[pusher-app]] needs string id, key and secret");
          spec += (spec.empty() ? "" : ":") + *v;
        }
        std::size_t fields = 3;
        if (t->contains("webhook")) {
          auto v = (*t)["webhook"].value<std::string>();
          if (!v) throw std::invalid_argument("config file: a [[pusher-app]] webhook must be a URL string");
          spec += ":" + *v;
          ++fields;
        }
        if (t->size() != fields)
          throw std::invalid_argument("config file: [[pusher-app]] takes only id, key, secret and webhook");
        joined += (joined.empty() ? "" : ",") + spec;
        continue;
      }
      auto s = item.value<std::string>();
      if (!s) throw std::invalid_argument("config file: '" + key + "' must be an array of strings");
      if (!joined.empty()) joined += ',';
      joined += *s;
    }
    return joined;
  }
  throw std::invalid_argument("config file: '" + key + "' has an unsupported type");
}

// Syntax only: the allowed ranges are core::validate_config's (one place for every rule).
template <class T>
T parse_number(const std::string& name, const std::string& text, T min = std::numeric_limits<T>::min(),
               T max = std::numeric_limits<T>::max()) {
  T value{};
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value < min || value > max)
    throw std::invalid_argument("--" + name + ": expected a whole number from " + std::to_string(min) + " to " +
                                std::to_string(max) + ", got '" + text + "'");
  return value;
}

double parse_double(const std::string& name, const std::string& text) {
  try {
    std::size_t used = 0;
    double v = std::stod(text, &used);
    if (used == text.size() && v >= 0) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("--" + name + ": expected a non-negative number, got '" + text + "'");
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument(what + ": cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void apply(LoadedConfig& out, const std::string& name, const std::string& v) {
  Config& c = out.config;
  if (name == "host") c.host = v;
  else if (name == "port") c.port = parse_number<std::uint16_t>(name, v, 0, 65535);
  else if (name == "tls-cert") c.tls_cert_file = v;
  else if (name == "tls-key") c.tls_key_file = v;
  else if (name == "threads") c.threads = parse_number<unsigned>(name, v, 1, 256);  // 0 (one per core) is the default, not a choice
  else if (name == "jwt-secret") c.jwt_secret = v;
  else if (name == "jwt-public-key") { c.jwt_public_key_file = v; out.jwt_public_key_pem = read_file(v, "--jwt-public-key"); }
  else if (name == "jwt-jwks-url") c.jwt_jwks_url = v;
  else if (name == "jwt-jwks-ca") c.jwt_jwks_ca_file = v;
  else if (name == "api-key") c.api_key = v;
  else if (name == "redis") c.redis_url = v;
  else if (name == "redis-prefix") c.redis_prefix = v;
  else if (name == "redis-password-file") {
    c.redis_password_file = v;
    c.redis_password = read_file(v, "--redis-password-file");
    if (c.redis_password.ends_with('\n')) c.redis_password.pop_back();
    if (c.redis_password.ends_with('\r')) c.redis_password.pop_back();
    if (c.redis_password.empty()) throw std::invalid_argument("--redis-password-file: '" + v + "' is empty");
  }
  else if (name == "redis-tls-ca") c.redis_tls_ca = v;
  else if (name == "redis-tls-cert") c.redis_tls_cert = v;
  else if (name == "redis-tls-key") c.redis_tls_key = v;
  else if (name == "node-id") c.node_id = v;
  else if (name == "cluster-reply-timeout") c.cluster_reply_timeout = std::chrono::milliseconds(parse_number<long>(name, v));
  else if (name == "allowed-origins") c.allowed_origins = core::split_list(v);
  else if (name == "publish-patterns") c.publish_patterns = core::split_list(v);
  else if (name == "subscribe-policy") c.subscribe_policy = v;
  else if (name == "subscribe-proxy") c.subscribe_proxy = v;
  else if (name == "proxy-timeout") c.proxy_timeout = std::chrono::milliseconds(parse_number<long>(name, v));
  else if (name == "proxy-max-in-flight") c.proxy_max_in_flight = parse_number<std::size_t>(name, v);
  else if (name == "max-message-bytes") c.max_message_bytes = parse_number<std::size_t>(name, v);
  else if (name == "compression") {
    // TOML may also say `compression = true`.
    if (v != "off" && v != "on" && v != "false" && v != "true")
      throw std::invalid_argument("--compression: expected off or on, got '" + v + "'");
    c.compression = v == "on" || v == "true";
  }
  else if (name == "max-outbound-bytes") c.max_outbound_bytes = parse_number<std::size_t>(name, v);
  else if (name == "history") c.history = core::split_list(v);
  else if (name == "presence") c.presence = core::split_list(v);
  else if (name == "pusher-app") c.pusher_apps = core::split_list(v);
  else if (name == "presence-max-users") c.presence_max_users = parse_number<std::size_t>(name, v);
  else if (name == "history-max-bytes") c.history_max_bytes = parse_number<std::size_t>(name, v);
  else if (name == "max-subscriptions") c.max_subscriptions = parse_number<std::size_t>(name, v);
  else if (name == "idle-timeout") c.idle_timeout = std::chrono::seconds(parse_number<long>(name, v));
  else if (name == "max-body-bytes") c.max_body_bytes = parse_number<std::size_t>(name, v);
  else if (name == "max-connections") c.max_connections = parse_number<std::size_t>(name, v);
  else if (name == "max-connections-per-user") c.max_connections_per_user = parse_number<std::size_t>(name, v);
  else if (name == "handshake-timeout") c.handshake_timeout = std::chrono::seconds(parse_number<long>(name, v));
  else if (name == "commands-per-second") c.commands_per_second = parse_double(name, v);
  else if (name == "log-level") {
    static const std::vector<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (std::find(levels.begin(), levels.end(), v) == levels.end())
      throw std::invalid_argument("--log-level: expected one of trace, debug, info, warn, error, critical, off; got '" + v + "'");
    c.log_level = v;
  }
  else if (name == "command-burst") c.command_burst = std::max(1.0, parse_double(name, v));
}

}  // namespace

const std::vector<std::string>& option_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& o : options()) n.push_back(o.name);
    return n;
  }();
  return names;
}

std::string describe(const std::string& option) {
  for (const auto& o : options())
    if (o.name == option) return o.help;
  return {};
}

std::string env_name(const std::string& option) {
  std::string e = "REALTIME_";
  for (char ch : option) e += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (option == "redis") e = "REALTIME_REDIS_URL";  // the name deployments use for a Redis URL
  return e;
}

LoadedConfig load_config(const std::vector<std::pair<std::string, std::string>>& flag_values,
                         const std::string& config_file) {
  std::optional<toml::table> file;
  if (!config_file.empty()) {
    try {
      file = toml::parse_file(config_file);
    } catch (const toml::parse_error& e) {
      throw std::invalid_argument("config file '" + config_file + "': " + std::string(e.description()));
    }
    for (const auto& [key, node] : *file)
      if (describe(std::string(key.str())).empty())
        throw std::invalid_argument("config file '" + config_file + "': unknown key '" + std::string(key.str()) + "'");
  }
  std::map<std::string, std::string> flags(flag_values.begin(), flag_values.end());
  LoadedConfig out;
  for (const auto& name : option_names()) {
    std::optional<std::string> value;
    if (auto it = flags.find(name); it != flags.end()) value = it->second;
    else if (const char* env = std::getenv(env_name(name).c_str())) value = std::string(env);
    else if (file) value = toml_value(*file, name);
    if (value) apply(out, name, *value);
  }
  // The password has no flag (a flag would show it in `ps`): the file beats the variable, and
  // either beats a password in the URL.
  if (out.config.redis_password.empty())
    if (const char* env = std::getenv("REALTIME_REDIS_PASSWORD")) out.config.redis_password = env;
  return out;
}

}  // namespace boundary::realtime::app
