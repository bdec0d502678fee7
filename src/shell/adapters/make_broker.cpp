#include "shell/adapters/make_broker.hpp"

#include <stdexcept>

#include "core/cluster_codec.hpp"
#include "core/redis_cluster.hpp"
#include "core/redis_target.hpp"
#include "shell/adapters/broker_memory.hpp"
#include "shell/adapters/broker_redis.hpp"

namespace boundary::realtime::shell {

std::unique_ptr<Broker> make_broker(const BrokerSettings& settings, boost::asio::io_context& io,
                                    std::function<std::size_t()> local_connections, Metrics* metrics) {
  if (settings.redis_url.empty()) return std::make_unique<BrokerMemory>();
  auto target = core::parse_redis_target(settings.redis_url);
  if (!target) throw std::invalid_argument("--redis: " + target.error());
  if (!target->tls && !(settings.tls_ca_file.empty() && settings.tls_cert_file.empty()))
    throw std::invalid_argument("--redis-tls-*: only with a rediss:// or rediss-cluster:// URL");
  auto link = std::make_shared<RedisLinkSettings>();
  link->user = target->user;
  link->password = settings.password.empty() ? target->password : settings.password;
  if (target->tls) link->tls = make_redis_tls({settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file});
  BrokerRedis::Options options;
  options.topology = target->cluster ? RedisTopology::redis_cluster(std::move(target->nodes))
                                     : RedisTopology{false, std::move(target->nodes), target->db};
  options.node_id = settings.node_id;
  options.prefix = settings.prefix;
  options.link = std::move(link);
  options.reply_timeout = settings.reply_timeout;
  options.local_connections = std::move(local_connections);
  options.metrics = metrics;
  return std::make_unique<BrokerRedis>(io, std::move(options));
}

}  // namespace boundary::realtime::shell
