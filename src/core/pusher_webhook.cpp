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
    "local key, instance, join, again = KEYS[1], ARGV[4], ARGV[5], ARGV[6]\n"
    "if join == '1' then\n"
    "  local added = redis.call('SADD', key, instance)\n"
    "  if (added == 1 or again == '1') and redis.call('SCARD', key) == 1 then return 1 end\n"
    "  return 0\n"
    "end\n"
    "local removed = redis.call('SREM', key, instance)\n"
    "if (removed == 1 or again == '1') and redis.call('EXISTS', key) == 0 then return 1 end\n"
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

std::string webhook_instances_key(std::string_view prefix) {
  std::string key(prefix);
  key += ":wn";
  return key;
}

std::string webhook_index_key(std::string_view prefix, std::string_view instance) {
  std::string key(prefix);
  key += ":wx:";
  key += instance;
  return key;
}

// Scores: a live instance's deadline (> 0); a leased instance: minus the end of its lease (< 0),
// so an instance once leased never passes for live again.
const std::string webhook_beat_script =
    "local key, me, fresh = KEYS[1], ARGV[1], ARGV[2]\n"
    "local ttl, grace, lease, most = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    // No node beat for longer than a deadline: Redis (or every node's link to it) was away.
    // Every live instance gets a new deadline instead of being declared dead for the outage.
    "local last = redis.call('ZSCORE', key, 'last')\n"
    "if last and now - tonumber(last) > ttl then\n"
    "  local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')\n"
    "  for i = 1, #all, 2 do\n"
    "    local s = tonumber(all[i + 1])\n"
    "    if all[i] ~= 'last' and s > 0 and s < now + ttl then redis.call('ZADD', key, now + ttl, all[i]) end\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', key, now, 'last')\n"
    // Alive, or past its deadline but never leased: renewed. Leased or gone: lost.
    "local score = redis.call('ZSCORE', key, me)\n"
    "if fresh ~= '1' and not (score and tonumber(score) > 0) then return {1, {}} end\n"
    "redis.call('ZADD', key, now + ttl, me)\n"
    // Dead: past its deadline by more than the grace, or leased to a sweeper whose lease ran out.
    "local dead = {}\n"
    "local function take(found)\n"
    "  for _, d in ipairs(found) do\n"
    "    if d ~= 'last' and #dead < most then\n"
    "      redis.call('ZADD', key, -(now + lease), d)\n"
    "      dead[#dead + 1] = d\n"
    "    end\n"
    "  end\n"
    "end\n"
    "take(redis.call('ZRANGEBYSCORE', key, '(0', now - grace, 'LIMIT', 0, most))\n"
    "take(redis.call('ZRANGEBYSCORE', key, '(' .. string.format('%.0f', -now), '(0', 'LIMIT', 0, most))\n"
    "return {0, dead}\n";

std::string occupancy_entry(std::string_view topic) {
  std::string entry = "o";
  entry += topic;
  return entry;
}

std::string member_entry(std::string_view topic, std::string_view user) {
  std::string entry = "m";
  entry += topic;
  entry += '\n';
  entry += user;
  return entry;
}

std::optional<IndexEntry> parse_index_entry(std::string_view entry) noexcept {
  if (entry.size() < 2) return std::nullopt;
  if (entry[0] == 'o') return IndexEntry{false, entry.substr(1), {}};
  if (entry[0] != 'm') return std::nullopt;
  const auto nl = entry.find('\n');
  if (nl == std::string_view::npos || nl == 1 || nl + 1 == entry.size()) return std::nullopt;
  return IndexEntry{true, entry.substr(1, nl - 1), entry.substr(nl + 1)};
}

std::chrono::milliseconds webhook_retry_delay(unsigned failures) noexcept {
  const unsigned shift = std::min(failures == 0 ? 0u : failures - 1, 6u);  // 1, 2, 4, ... 64 s
  return std::min(std::chrono::milliseconds(1000) * (1u << shift), std::chrono::milliseconds(60000));
}

}  // namespace boundary::realtime::core::pusher
