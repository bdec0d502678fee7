#include "core/presence_redis.hpp"

#include <unordered_set>

#include "core/cluster_codec.hpp"
#include "core/history_redis.hpp"
#include "core/parse_util.hpp"

namespace boundary::realtime::core {
PresenceKeys presence_keys(std::string_view prefix, std::string_view topic) {
  auto k = topic_keys(prefix, topic, {"pc", "pi", "pv", "pn", "pm"});
  PresenceKeys keys{std::move(k[0]), std::move(k[1]), std::move(k[2]), std::move(k[3]), std::move(k[4])};
  keys.entries += ':';
  return keys;
}

// Shared by every script. add(): a user's connections change by d (info: shown for a join);
// announces the user's first connection and last one. reap(): removes the instances whose
// deadline passed, with their connections.
#define REALTIME_PRESENCE_LUA_PRELUDE                                                                   \
  "if redis.replicate_commands then redis.replicate_commands() end\n"                                   \
  "local pc, pi, pv, pn, pm = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n"                            \
  "local channel, pub, header = ARGV[1], ARGV[2], ARGV[3]\n"                                            \
  "local t = redis.call('TIME')\n"                                                                      \
  "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                             \
  "local function emit(kind, user, info)\n"                                                             \
  "  local v = redis.call('HINCRBY', pv, 'v', 1)\n"                                                     \
  "  redis.call(pub, channel, header .. string.format('%d', v) .. '\\n' .. kind .. '\\n' ..\n"          \
  "             string.format('%d', #user) .. '\\n' .. user .. info)\n"                                 \
  "  return v\n"                                                                                        \
  "end\n"                                                                                               \
  "local function add(user, d, info)\n"                                                                 \
  "  if d == 0 then return end\n"                                                                       \
  "  local c = redis.call('HINCRBY', pc, user, d)\n"                                                    \
  "  local fix = 0\n"                                                                                   \
  "  if c < 0 then fix = -c end\n"                                                                      \
  "  if redis.call('HINCRBY', pv, 'c', d + fix) < 0 then redis.call('HSET', pv, 'c', 0) end\n"          \
  "  if c <= 0 then\n"                                                                                  \
  "    local old = redis.call('HGET', pi, user) or ''\n"                                                \
  "    redis.call('HDEL', pc, user)\n"                                                                  \
  "    redis.call('HDEL', pi, user)\n"                                                                  \
  "    if c - d > 0 then emit('l', user, old) end\n"                                                    \
  "  elseif c == d then\n"                                                                              \
  "    redis.call('HSET', pi, user, info)\n"                                                            \
  "    emit('j', user, info)\n"                                                                         \
  "  end\n"                                                                                             \
  "end\n"                                                                                               \
  "local function reap()\n"                                                                             \
  "  local dead = redis.call('ZRANGEBYSCORE', pn, '-inf', now)\n"                                       \
  "  for i = 1, #dead do\n"                                                                             \
  "    local flat = redis.call('HGETALL', pm .. dead[i])\n"                                             \
  "    for j = 1, #flat, 2 do add(flat[j], -tonumber(flat[j + 1]), '') end\n"                           \
  "    redis.call('DEL', pm .. dead[i])\n"                                                              \
  "    redis.call('ZREM', pn, dead[i])\n"                                                               \
  "  end\n"                                                                                             \
  "  return #dead\n"                                                                                    \
  "end\n"                                                                                               \
  "local function keep(ms)\n"                                                                           \
  "  for _, k in ipairs({pc, pi, pv, pn}) do redis.call('PEXPIRE', k, ms) end\n"                        \
  "  local runs = redis.call('ZRANGE', pn, 0, -1)\n"                                                    \
  "  for i = 1, #runs do redis.call('PEXPIRE', pm .. runs[i], ms) end\n"                               \
  "end\n"                                                                                               \
  "local function register(inst, ttl, ms)\n"                                                            \
  "  if redis.call('EXISTS', pm .. inst) == 1 then\n"                                                   \
  "    redis.call('ZADD', pn, now + ttl, inst)\n"                                                       \
  "    redis.call('PEXPIRE', pm .. inst, ms)\n"                                                         \
  "  else\n"                                                                                            \
  "    redis.call('ZREM', pn, inst)\n"                                                                  \
  "  end\n"                                                                                             \
  "end\n"

const std::string presence_sync_script =
    REALTIME_PRESENCE_LUA_PRELUDE
    "local inst, ttl, ms = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "reap()\n"
    "local key = pm .. inst\n"
    "local old = {}\n"
    "local flat = redis.call('HGETALL', key)\n"
    "for i = 1, #flat, 2 do old[flat[i]] = tonumber(flat[i + 1]) end\n"
    "redis.call('DEL', key)\n"
    "for i = 7, #ARGV - 2, 3 do\n"
    "  local user, n, info = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]\n"
    "  if n > 0 then\n"
    "    add(user, n - (old[user] or 0), info)\n"
    "    old[user] = nil\n"
    "    redis.call('HSET', key, user, n)\n"
    "  end\n"
    "end\n"
    "for user, n in pairs(old) do add(user, -n, '') end\n"
    "register(inst, ttl, ms)\n"
    "local v = emit('m', '', '')\n"
    "keep(ms)\n"
    "return v\n";

const std::string presence_set_script =
    REALTIME_PRESENCE_LUA_PRELUDE
    "local inst, ttl, ms = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local user, n, info = ARGV[7], tonumber(ARGV[8]), ARGV[9]\n"
    "if not redis.call('ZSCORE', pn, inst) then return -1 end\n"
    "local key = pm .. inst\n"
    "local old = tonumber(redis.call('HGET', key, user) or '0')\n"
    "add(user, n - old, info)\n"
    "if n > 0 then redis.call('HSET', key, user, n) else redis.call('HDEL', key, user) end\n"
    "register(inst, ttl, ms)\n"
    "keep(ms)\n"
    "return 0\n";

const std::string presence_beat_script =
    REALTIME_PRESENCE_LUA_PRELUDE
    "local inst, ttl, ms = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local lost = 0\n"
    "if redis.call('ZSCORE', pn, inst) then register(inst, ttl, ms) else lost = 1 end\n"
    "local reaped = reap()\n"
    "if redis.call('EXISTS', pv) == 1 then keep(ms) end\n"
    "return {lost, reaped}\n";

const std::string presence_list_script =
    REALTIME_PRESENCE_LUA_PRELUDE
    "local max = tonumber(ARGV[4])\n"
    "reap()\n"
    "local out = {redis.call('HGET', pv, 'v') or '0', redis.call('HLEN', pc), redis.call('HGET', pv, 'c') or '0'}\n"
    "if max == 0 then return out end\n"
    "local seen, n, cursor = {}, 0, '0'\n"
    "repeat\n"
    "  local r = redis.call('HSCAN', pc, cursor, 'COUNT', math.min(math.max(max, 10), 1000))\n"
    "  cursor = r[1]\n"
    "  local f = r[2]\n"
    "  for i = 1, #f, 2 do\n"
    "    if n >= max then break end\n"
    "    if not seen[f[i]] then\n"
    "      seen[f[i]] = true\n"
    "      n = n + 1\n"
    "      out[#out + 1] = f[i]\n"
    "      out[#out + 1] = f[i + 1]\n"
    "      out[#out + 1] = redis.call('HGET', pi, f[i]) or ''\n"
    "    end\n"
    "  end\n"
    "until cursor == '0' or n >= max\n"
    "return out\n";

#undef REALTIME_PRESENCE_LUA_PRELUDE

std::optional<PresenceEventBody> decode_presence_body(std::string_view body) {
  auto line = [&body]() -> std::optional<std::string_view> {
    const auto nl = body.find('\n');
    if (nl == std::string_view::npos) return std::nullopt;
    auto out = body.substr(0, nl);
    body.remove_prefix(nl + 1);
    return out;
  };
  auto version_text = line();
  auto kind = line();
  auto length_text = line();
  if (!version_text || !kind || !length_text || kind->size() != 1) return std::nullopt;
  auto version = parse_number<std::uint64_t>(*version_text);
  auto length = parse_number<std::size_t>(*length_text);
  if (!version || *version == 0 || !length || *length > body.size()) return std::nullopt;
  PresenceEventBody b{*version, kind->front(), body.substr(0, *length), body.substr(*length)};
  switch (b.kind) {
    case 'j':
    case 'l':
      if (b.user.empty()) return std::nullopt;
      return b;
    case 'm':
      if (!b.user.empty()) return std::nullopt;
      return b;
    default:
      return std::nullopt;
  }
}

std::optional<PresenceRead> parse_presence_list(const RespValue& reply, std::size_t max_users) {
  if (reply.kind != RespValue::Kind::array || reply.elements.size() < 3 || (reply.elements.size() - 3) % 3 != 0)
    return std::nullopt;
  auto version = integer_of(reply.elements[0]);
  auto users = integer_of(reply.elements[1]);
  auto connections = integer_of(reply.elements[2]);
  if (!version || !users || !connections) return std::nullopt;
  PresenceRead r;
  r.version = *version;
  r.stats = PresenceStats{static_cast<std::size_t>(*users), static_cast<std::size_t>(*connections), true};
  const std::size_t listed = (reply.elements.size() - 3) / 3;
  if (listed > max_users) return std::nullopt;
  r.listing.users.reserve(listed);
  std::unordered_set<std::string_view> seen;
  for (std::size_t i = 3; i < reply.elements.size(); i += 3) {
    const auto& user = reply.elements[i];
    const auto& info = reply.elements[i + 2];
    auto n = integer_of(reply.elements[i + 1]);
    if (user.kind != RespValue::Kind::string || user.str.empty() || !n || *n == 0) return std::nullopt;
    if (info.kind != RespValue::Kind::string) return std::nullopt;
    if (!seen.insert(user.str).second) continue;
    PresenceUser u{user.str, static_cast<std::size_t>(*n), nullptr};
    if (!info.str.empty()) u.info = std::make_shared<const std::string>(info.str);
    r.listing.users.push_back(std::move(u));
  }
  r.listing.truncated = r.listing.users.size() < r.stats.users;
  return r;
}

}  // namespace boundary::realtime::core
