#pragma once
// Chooses and builds the broker from the --redis setting (docs/cluster.md): none is a single
// node (BrokerMemory), redis://[user:password@]host[:port][/db] one Redis,
// redis-cluster://host[:port],... a Redis Cluster (both BrokerRedis, with the matching
// topology); rediss:// and rediss-cluster:// the same over TLS.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "boundary/realtime/ports/broker.hpp"

namespace boundary::realtime::shell {

struct Metrics;

struct BrokerSettings {
  std::string redis_url;  // empty: a single node
  std::string node_id;    // already validated (core::valid_node_id) by the caller
  std::chrono::milliseconds reply_timeout{1000};
  std::string prefix = "rt";    // already validated (core::valid_redis_prefix)
  std::string password;         // when not empty, replaces the URL's password
  std::string tls_ca_file;      // rediss: CA bundle; empty: the system's trust store
  std::string tls_cert_file;    // rediss: optional client certificate and key
  std::string tls_key_file;
};

// Throws std::invalid_argument ("--redis: ...", "--redis-tls-ca: ...") for a malformed URL or an
// unreadable TLS file; the message never contains the password. `io` runs the broker;
// `local_connections` feeds the heartbeat; `metrics` may be null.
std::unique_ptr<Broker> make_broker(const BrokerSettings& settings, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics);

}  // namespace boundary::realtime::shell
