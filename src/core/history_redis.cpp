#include "core/history_redis.hpp"

#include <array>

#include <boost/json/serialize.hpp>

#include "core/cluster_codec.hpp"
#include "core/envelope.hpp"
#include "core/parse_util.hpp"

namespace boundary::realtime::core {
namespace {

const std::array<std::string, cluster_slots>& slot_tags() {
  static const auto tags = [] {
    std::array<std::string, cluster_slots> t;
    std::size_t filled = 0;
    for (std::uint64_t n = 0; filled < cluster_slots; ++n) {
      auto s = std::to_string(n);
      auto& slot = t[key_slot(s)];
      if (slot.empty()) {
        slot = std::move(s);
        ++filled;
      }
    }
    return t;
  }();
  return tags;
}

// Placeholders for the offset: 19 digits, above any offset a stream reaches.
constexpr std::string_view placeholders[] = {"9007199254740993317", "8118608165839882209"};

}  // namespace

std::string_view slot_tag(std::uint16_t slot) { return slot_tags()[slot % cluster_slots]; }

std::optional<std::uint64_t> integer_of(const RespValue& v) {
  if (v.kind == RespValue::Kind::integer) {
    if (v.integer < 0) return std::nullopt;
    return static_cast<std::uint64_t>(v.integer);
  }
  if (v.kind == RespValue::Kind::string) return parse_number<std::uint64_t>(v.str);
  return std::nullopt;
}

std::vector<std::string> topic_keys(std::string_view prefix, std::string_view topic,
                                    std::initializer_list<std::string_view> kinds) {
  const auto tag = slot_tag(key_slot(channel_for(prefix, Route::topic, topic)));
  std::vector<std::string> keys;
  keys.reserve(kinds.size());
  for (auto kind : kinds) {
    std::string& k = keys.emplace_back();
    k.reserve(prefix.size() + kind.size() + tag.size() + topic.size() + 4);
    k += prefix;
    k += ':';
    k += kind;
    k += ":{";
    k += tag;
    k += '}';
    k += topic;
  }
  return keys;
}

StreamKeys stream_keys(std::string_view prefix, std::string_view topic) {
  auto k = topic_keys(prefix, topic, {"h", "hl"});
  return {std::move(k[0]), std::move(k[1])};
}

std::optional<HistoryTemplate> stream_template(boost::json::object message, std::chrono::system_clock::time_point now,
                                              std::string_view topic) {
  if (!message.contains("timestamp")) message["timestamp"] = format_timestamp(now);
  if (!topic.empty() && !message.contains("topic")) message["topic"] = topic;
  for (auto placeholder : placeholders) {
    message["offset"] = parse_number<std::uint64_t>(placeholder).value();
    const std::string json = boost::json::serialize(message);
    const auto at = json.find(placeholder);
    if (at == std::string::npos || json.find(placeholder, at + 1) != std::string::npos) continue;
    return HistoryTemplate{json.substr(0, at), json.substr(at + placeholder.size())};
  }
  return std::nullopt;
}

std::optional<StreamBody> decode_stream_body(std::string_view body) {
  const auto nl = body.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  auto offset = parse_number<std::uint64_t>(body.substr(0, nl));
  if (!offset || *offset == 0) return std::nullopt;
  return StreamBody{*offset, body.substr(nl + 1)};
}

std::optional<StreamRead> parse_stream_read(const RespValue& reply, std::uint64_t from) {
  using K = RespValue::Kind;
  if (reply.kind != K::array || reply.elements.size() < 3 || reply.elements[0].kind != K::string) return std::nullopt;
  auto last = integer_of(reply.elements[1]);
  auto first = integer_of(reply.elements[2]);
  if (!last || !first || *first > *last) return std::nullopt;
  StreamRead r;
  r.epoch = reply.elements[0].str;
  r.last = *last;
  r.first_kept = *first;
  const std::size_t n = reply.elements.size() - 3;
  if (n == 0) return r;
  // Entries are offsets max(from + 1, first) onwards, contiguous.
  const std::uint64_t start = from >= r.first_kept ? from + 1 : r.first_kept;
  if (r.first_kept == 0 || start > r.last || n > r.last - start + 1) return std::nullopt;
  r.entries.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& e = reply.elements[3 + i];
    if (e.kind != K::string) return std::nullopt;
    const auto sp = e.str.find(' ');
    if (sp == std::string::npos) return std::nullopt;
    r.entries.push_back({start + i, std::string_view(e.str).substr(sp + 1)});
  }
  return r;
}

// Redis 5 and 6 need effects replication declared before TIME; Redis 7 replicates effects
// always (and keeps the call as a no-op).
#define REALTIME_HISTORY_LUA_PRELUDE                                                     \
  "if redis.replicate_commands then redis.replicate_commands() end\n"                   \
  "local meta, list = KEYS[1], KEYS[2]\n"                                               \
  "local t = redis.call('TIME')\n"                                                      \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"             \
  "local function drop_expired(ttl)\n"                                                  \
  "  while true do\n"                                                                   \
  "    local oldest = redis.call('LINDEX', list, 0)\n"                                  \
  "    if not oldest then return end\n"                                                 \
  "    local ms = tonumber(string.match(oldest, '^(%d+) '))\n"                         \
  "    if ms and ms + ttl > now then return end\n"                                      \
  "    redis.call('LPOP', list)\n"                                                      \
  "  end\n"                                                                             \
  "end\n"

const std::string history_append_script =
    REALTIME_HISTORY_LUA_PRELUDE
    "local size, ttl = tonumber(ARGV[6]), tonumber(ARGV[7])\n"
    "if redis.call('HEXISTS', meta, 'epoch') == 0 then\n"
    "  redis.call('DEL', list)\n"
    "  redis.call('HSET', meta, 'epoch', ARGV[8], 'last', 0)\n"
    "end\n"
    "local offset = redis.call('HINCRBY', meta, 'last', 1)\n"
    "local digits = string.format('%d', offset)\n"
    "local json = ARGV[4] .. digits .. ARGV[5]\n"
    "redis.call('RPUSH', list, string.format('%d', now) .. ' ' .. json)\n"
    "redis.call('LTRIM', list, -size, -1)\n"
    "drop_expired(ttl)\n"
    "redis.call('PEXPIRE', meta, ttl)\n"
    "redis.call('PEXPIRE', list, ttl)\n"
    "local n = redis.call(ARGV[2], ARGV[1], ARGV[3] .. digits .. '\\n' .. json)\n"
    "return {offset, n}\n";

const std::string history_read_script =
    REALTIME_HISTORY_LUA_PRELUDE
    "local ttl, from, limit, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]\n"
    "local epoch = redis.call('HGET', meta, 'epoch')\n"
    "if not epoch then\n"
    "  if ARGV[1] ~= 'open' then return {'', 0, 0} end\n"
    "  redis.call('DEL', list)\n"
    "  redis.call('HSET', meta, 'epoch', ARGV[2], 'last', 0)\n"
    "  epoch = ARGV[2]\n"
    "end\n"
    "if ARGV[1] == 'open' then redis.call('PEXPIRE', meta, ttl) end\n"
    "local last = tonumber(redis.call('HGET', meta, 'last'))\n"
    "drop_expired(ttl)\n"
    "local len = redis.call('LLEN', list)\n"
    "local first = 0\n"
    "if len > 0 then first = last - len + 1 end\n"
    "local out = {epoch, string.format('%d', last), string.format('%d', first)}\n"
    "if len == 0 or from >= last then return out end\n"
    "if want ~= '' and (want ~= epoch or from + 1 < first or (limit > 0 and last - from > limit)) then return out end\n"
    "local lo = math.max(from + 1, first)\n"
    "local hi = last\n"
    "if limit > 0 and hi - lo + 1 > limit then hi = lo + limit - 1 end\n"
    "local items = redis.call('LRANGE', list, lo - first, hi - first)\n"
    "for i = 1, #items do out[#out + 1] = items[i] end\n"
    "return out\n";

#undef REALTIME_HISTORY_LUA_PRELUDE

}  // namespace boundary::realtime::core
