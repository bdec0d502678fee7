#pragma once
// Chooses and builds the broker from the --redis setting (docs/cluster.md): none is a single
// node (BrokerMemory), redis://host[:port][/db] one Redis, redis-cluster://host[:port],... a
// Redis Cluster (both BrokerRedis, with the matching topology).

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
};

// Throws std::invalid_argument ("--redis: ...") for a malformed URL. `io` runs the broker;
// `local_connections` feeds the heartbeat; `metrics` may be null.
std::unique_ptr<Broker> make_broker(const BrokerSettings& settings, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics);

}  // namespace boundary::realtime::shell
