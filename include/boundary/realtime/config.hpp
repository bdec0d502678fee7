#pragma once
// Server configuration. Every field has a flag, an environment variable and a TOML key
// (docs/protocol.md, README "Configuration"); app/config_loader.cpp fills it.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace boundary::realtime {

struct Config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 3000;
  // PEM files: both set, the port serves wss:// and https:// only (TLS 1.2+, ALPN http/1.1);
  // Server::reload_tls() re-reads them. Both empty: plain ws:// and http://.
  std::string tls_cert_file;                 // certificate chain, leaf first
  std::string tls_key_file;                  // its private key, unencrypted
  unsigned threads = 0;                      // 0 = number of cores
  std::string jwt_secret;                    // HS256/384/512
  std::string jwt_public_key_file;           // PEM: RS*/PS*/ES*/EdDSA
  // A JSON Web Key Set fetched over http:// or https:// (keys by `kid`, RS*/PS*/ES*/EdDSA). When
  // set, the server builds its own verifier: pass no TokenVerifier to Server.
  std::string jwt_jwks_url;
  std::string jwt_jwks_ca_file;              // PEM CA(s) for an https JWKS URL; empty = system store
  std::string api_key;
  // Cluster mode (docs/cluster.md): redis://[user:password@]host[:port][/db], rediss://... (TLS),
  // redis-cluster://host[:port][,...] or rediss-cluster://... (Redis Cluster).
  std::string redis_url;
  std::string redis_prefix = "rt";           // namespaces every Redis channel and key; [A-Za-z0-9._:/-]{1,64}
  std::string redis_password_file;           // the password's file (one trailing newline dropped)
  // The Redis password from --redis-password-file or REALTIME_REDIS_PASSWORD; when set it
  // replaces the URL's password. Never logged.
  std::string redis_password;
  std::string redis_tls_ca;                  // rediss: PEM CA bundle; empty = the system's trust store
  std::string redis_tls_cert;                // rediss: client certificate (PEM), with redis_tls_key
  std::string redis_tls_key;
  std::string node_id;                       // random when empty; [A-Za-z0-9._-]{1,64}
  std::chrono::milliseconds cluster_reply_timeout{1000};  // longest wait for other nodes' counts
  std::vector<std::string> allowed_origins;  // empty = any
  std::vector<std::string> publish_patterns; // empty = clients may not publish
  // Client subscribe authorization (docs/protocol.md "Topics"): "open", "claims" or "proxy";
  // empty = "proxy" when subscribe_proxy is set, else "open".
  std::string subscribe_policy;
  std::string subscribe_proxy;               // http[s]://host[:port]/path the backend answers on
  std::chrono::milliseconds proxy_timeout{2000};  // per backend request, then forbidden
  std::size_t proxy_max_in_flight = 64;      // backend requests per node; past it, forbidden at once
  std::size_t max_message_bytes = 65536;     // largest inbound WebSocket message (inflated size)
  // permessage-deflate (RFC 7692) for clients that offer it (docs/protocol.md "Compression").
  bool compression = false;
  std::size_t max_outbound_bytes = 1048576;  // per-connection send queue before closing with 1008
  std::size_t max_subscriptions = 1000;      // topics per connection
  // History (docs/history.md): `PATTERN=SIZE[/TTL]` rules, first match wins; topics matching one
  // keep their last SIZE messages for TTL seconds (default 300). In Redis with redis_url.
  std::vector<std::string> history;
  std::size_t history_max_bytes = 64 * 1024 * 1024;  // all history of the node; oldest streams dropped past it
  // Presence (docs/presence.md): topic patterns whose subscribers are tracked per user, and how
  // many users a presence answer lists at most. Cluster-wide with redis_url (kept in Redis).
  std::vector<std::string> presence;
  std::size_t presence_max_users = 1000;
  // Pusher protocol apps (docs/pusher.md): "id:key:secret" each; the first is the default app,
  // whose channels are topics of the same name. Empty: /app/<key> and /apps/<id>/... answer 404.
  std::vector<std::string> pusher_apps;
  std::chrono::seconds idle_timeout{60};     // silence before close; a ping goes out at half
  std::size_t max_body_bytes = 1048576;      // HTTP API request body
  // Per node (not cluster-wide), checked at the upgrade before the 101: 503 past
  // max_connections, 429 past max_connections_per_user. 0 = unlimited.
  std::size_t max_connections = 0;
  std::size_t max_connections_per_user = 0;
  // Longest wait for a whole HTTP request (the upgrade, or any request, including the wait on a
  // kept-alive connection), however slowly its bytes trickle in; then the socket is closed.
  std::chrono::seconds handshake_timeout{10};
  double commands_per_second = 100;          // per connection, token bucket; 0 = unlimited
  double command_burst = 200;
  std::string log_level = "info";
  bool dev_mode = false;                     // set when secret and key were generated
  std::string dev_token;                     // dev mode: the sample token the page at / uses
};

}  // namespace boundary::realtime
