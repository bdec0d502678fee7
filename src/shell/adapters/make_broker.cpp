#include "shell/adapters/make_broker.hpp"

#include <stdexcept>

#include "core/cluster_codec.hpp"
#include "core/redis_cluster.hpp"
#include "shell/adapters/broker_memory.hpp"
#include "shell/adapters/broker_redis.hpp"
#include "shell/adapters/broker_redis_cluster.hpp"

namespace boundary::realtime::shell {

std::unique_ptr<Broker> make_broker(const BrokerSettings& s, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics) {
  if (s.redis_url.empty()) return std::make_unique<BrokerMemory>();
  if (core::is_cluster_url(s.redis_url)) {
    auto seeds = core::parse_cluster_url(s.redis_url);
    if (!seeds) throw std::invalid_argument("--redis: " + seeds.error());
    return std::make_unique<BrokerRedisCluster>(
        io, BrokerRedisCluster::Options{std::move(*seeds), s.node_id, s.reply_timeout, std::move(local_connections), metrics});
  }
  auto url = core::parse_redis_url(s.redis_url);
  if (!url) throw std::invalid_argument("--redis: " + url.error());
  return std::make_unique<BrokerRedis>(
      io, BrokerRedis::Options{std::move(*url), s.node_id, s.reply_timeout, std::move(local_connections), metrics});
}

}  // namespace boundary::realtime::shell
