#pragma once
// Pure parts of presence kept in Redis (cluster mode, shell::PresenceRedis; docs/presence.md,
// "Cluster mode"): the keys of a topic's presence, the scripts that change and read it, the body
// of the presence fan-outs those scripts publish, and reading the scripts' replies.
//
// A topic T's presence is five keys, all in the slot of T's channel <prefix>:t:T (the same
// {N} hash tag as history, core/history_redis.hpp), so one script on that shard does everything
// atomically and publishes on the channel:
//   <prefix>:pc:{N}T          hash: user -> connections, summed over the nodes
//   <prefix>:pi:{N}T          hash: user -> the `info` object shown for the user ("": none)
//   <prefix>:pv:{N}T          hash: "v" -> the topic's event version, "c" -> all connections
//   <prefix>:pn:{N}T          sorted set: node instance -> deadline (Redis time, ms)
//   <prefix>:pm:{N}T:<inst>   hash: user -> that instance's connections
// An instance is one run of a node (random, drawn at start), so a node restarted under the same
// id never inherits the entries of its previous run. An instance whose deadline passed is dead:
// the next script on the topic (every live instance's heartbeat runs one each second) removes
// its entries and publishes presence-leave for each user that had no other connection. The
// removal and the publishing are one script, so exactly one node does them, once.
//
// Every script publishes its events itself: ARGV[1..3] are the channel, the publish command
// (PUBLISH, or SPUBLISH on a cluster) and the fan-out header (route presence, the node, no
// request), and each event is the header followed by its body (encode in Lua, decode here):
//   <version>\n<kind>\n<length of user>\n<user><info>
// kind: j (join), l (leave; info: the user's info before), m (mark: no user; published by
// `sync` so that the node learns that its subscription to the channel is in effect). Versions
// count the topic's events, so a node orders listings after the events they reflect.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boundary/realtime/ports/presence_store.hpp"
#include "core/redis_cluster.hpp"

namespace boundary::realtime::core {

struct PresenceKeys {
  std::string users;      // pc
  std::string info;       // pi
  std::string version;    // pv
  std::string instances;  // pn
  std::string entries;    // pm prefix: the instance's id follows
  std::vector<std::string> all() const { return {users, info, version, instances, entries}; }
};
PresenceKeys presence_keys(std::string_view prefix, std::string_view topic);

// A dead instance's entries are removed this long after its last heartbeat (beats: every
// second); the topic's keys expire this long after the last script on them.
inline constexpr std::uint64_t presence_entry_ttl_ms = 5000;
inline constexpr std::uint64_t presence_keep_ms = 60000;

// KEYS: the five above. ARGV after the three publishing ones: instance, entry TTL ms, keep ms,
// then (user, connections, info) for every user this instance has on the topic. Replaces the
// instance's entries with these (joins and leaves for what changed), registers the instance
// (or removes it when the list is empty), publishes a mark; returns the mark's version.
extern const std::string presence_sync_script;
// ARGV after the three: instance, entry TTL ms, keep ms, user, connections (absolute, 0: none),
// info. -1 (nothing done) when the instance is not registered: the node must sync.
extern const std::string presence_set_script;
// ARGV after the three: instance, entry TTL ms, keep ms. Keeps the instance alive and removes
// dead ones. Returns {lost (1: the instance is not registered: sync), reaped}.
extern const std::string presence_beat_script;
// ARGV after the three: the most users to list. Removes dead instances, then returns
// {version, users present, connections, then user, connections, info for at most that many}.
extern const std::string presence_list_script;

struct PresenceEventBody {
  std::uint64_t version = 0;
  char kind = 0;  // 'j', 'l', 'm'
  std::string_view user;
  std::string_view info;
};
std::optional<PresenceEventBody> decode_presence_body(std::string_view body);

struct PresenceRead {
  std::uint64_t version = 0;
  PresenceStats stats;
  PresenceListing listing;
};
// nullopt: not a reply of presence_list_script.
std::optional<PresenceRead> parse_presence_list(const RespValue& reply, std::size_t max_users);

}  // namespace boundary::realtime::core
