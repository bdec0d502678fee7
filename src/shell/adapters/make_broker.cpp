#include "shell/adapters/make_broker.hpp"

#include <stdexcept>

#include "core/cluster_codec.hpp"
#include "core/redis_cluster.hpp"
#include "shell/adapters/broker_memory.hpp"
#include "shell/adapters/broker_redis.hpp"

namespace boundary::realtime::shell {

namespace {
RedisTopology topology_of(const std::string& url) {
  if (core::is_cluster_url(url)) {
    auto seeds = core::parse_cluster_url(url);
    if (!seeds) throw std::invalid_argument("--redis: " + seeds.error());
    return RedisTopology::redis_cluster(std::move(*seeds));
  }
  auto parsed = core::parse_redis_url(url);
  if (!parsed) throw std::invalid_argument("--redis: " + parsed.error());
  return RedisTopology::single(*parsed);
}
}  // namespace

std::unique_ptr<Broker> make_broker(const BrokerSettings& settings, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics) {
  if (settings.redis_url.empty()) return std::make_unique<BrokerMemory>();
  return std::make_unique<BrokerRedis>(
      io, BrokerRedis::Options{topology_of(settings.redis_url), settings.node_id, settings.reply_timeout,
                               std::move(local_connections), metrics});
}

}  // namespace boundary::realtime::shell
