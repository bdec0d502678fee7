#include "core/pusher_webhook.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/history_redis.hpp"
#include "core/pusher.hpp"

namespace boundary::realtime::core::pusher {
namespace json = boost::json;

std::string webhook_body(std::int64_t time_ms, std::string_view batch_id, const std::vector<WebhookEvent>& events) {
  json::array list;
  list.reserve(events.size());
  for (const auto& e : events) {
    json::object o{{"name", e.name}, {"channel", e.channel}};
    if (!e.user_id.empty()) o["user_id"] = e.user_id;
    if (e.name == "client_event") {
      o["event"] = e.event;
      o["data"] = e.data;
      o["socket_id"] = e.socket_id;
    }
    list.emplace_back(std::move(o));
  }
  return json::serialize(json::object{{"time_ms", time_ms}, {"batch_id", batch_id}, {"events", std::move(list)}});
}

std::string webhook_signature(std::string_view secret, std::string_view body) { return hmac_sha256_hex(secret, body); }

const std::string webhook_claim_script =
    "local key, instance, join = KEYS[1], ARGV[4], ARGV[5]\n"
    "if join == '1' then\n"
    "  if redis.call('SADD', key, instance) == 1 and redis.call('SCARD', key) == 1 then return 1 end\n"
    "  return 0\n"
    "end\n"
    "if redis.call('SREM', key, instance) == 1 and redis.call('EXISTS', key) == 0 then return 1 end\n"
    "return 0\n";

std::string occupancy_key(std::string_view prefix, std::string_view topic) {
  return std::move(topic_keys(prefix, topic, {"wo"})[0]);
}

std::string member_key(std::string_view prefix, std::string_view topic, std::string_view user) {
  auto key = std::move(topic_keys(prefix, topic, {"wm"})[0]);
  key += '\n';  // topics hold no control characters: the user cannot move the boundary
  key += user;
  return key;
}

std::chrono::milliseconds webhook_retry_delay(unsigned failures) noexcept {
  const unsigned shift = std::min(failures == 0 ? 0u : failures - 1, 6u);  // 1, 2, 4, ... 64 s
  return std::min(std::chrono::milliseconds(1000) * (1u << shift), std::chrono::milliseconds(60000));
}

}  // namespace boundary::realtime::core::pusher
