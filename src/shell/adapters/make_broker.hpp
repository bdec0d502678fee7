#pragma once
// Builds the Broker adapter a configuration asks for: none (single node, BrokerMemory),
// redis://... (one Redis) or redis-cluster://... (a Redis Cluster).

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
  std::string node_id;    // valid (the caller checked or generated it)
  std::chrono::milliseconds reply_timeout{1000};
};

// Throws std::invalid_argument ("--redis: ...") for an unusable URL. The broker runs on `io`.
std::unique_ptr<Broker> make_broker(const BrokerSettings& settings, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics);

}  // namespace boundary::realtime::shell
