#include "core/pusher_webhook.hpp"

#include <algorithm>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

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

std::chrono::milliseconds webhook_retry_delay(unsigned failures) noexcept {
  const unsigned shift = std::min(failures == 0 ? 0u : failures - 1, 6u);  // 1, 2, 4, ... 64 s
  return std::min(std::chrono::milliseconds(1000) * (1u << shift), std::chrono::milliseconds(60000));
}

}  // namespace boundary::realtime::core::pusher
