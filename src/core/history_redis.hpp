#pragma once
// Pure parts of history kept in Redis (cluster mode, shell::HistoryRedis; docs/history.md,
// "Cluster mode"): the keys of a stream, the two scripts that append and read, the message
// template the append script completes with its offset, the stream fan-out's body, and reading
// the read script's reply.
//
// A stream T is two keys:
//   <prefix>:h:{N}T   hash: "epoch" (random hex, drawn when the hash is created) and "last"
//                     (the newest offset)
//   <prefix>:hl:{N}T  list: the kept messages, "<publish time in ms> <json>", oldest first,
//                     always a contiguous run of offsets ending at "last"
// N is a short decimal number whose Redis Cluster hash slot is the slot of the topic's channel
// <prefix>:t:T, so the keys and the channel live on one shard: one script there assigns the
// offset, keeps the message and publishes it, atomically.

#include <chrono>
#include <initializer_list>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "boundary/realtime/ports/history_store.hpp"
#include "core/history.hpp"
#include "core/redis_cluster.hpp"

namespace boundary::realtime::core {

struct StreamKeys {
  std::string meta;  // <prefix>:h:{N}<topic>
  std::string list;  // <prefix>:hl:{N}<topic>
};
StreamKeys stream_keys(std::string_view prefix, std::string_view topic);
// The shortest decimal number whose hash slot is `slot` (no braces, so it makes a hash tag).
std::string_view slot_tag(std::uint16_t slot);
// <prefix>:<kind>:{N}<topic> for each kind, N the slot tag of the topic's channel
// <prefix>:t:<topic>: keys on the shard that carries the topic's messages.
std::vector<std::string> topic_keys(std::string_view prefix, std::string_view topic,
                                    std::initializer_list<std::string_view> kinds);
// A reply that is a non-negative integer (or its decimal text).
std::optional<std::uint64_t> integer_of(const RespValue& v);

// The enveloped JSON of a stream message, split where its offset's digits go: the script
// publishes head + offset + tail. Built by serializing the message once with a placeholder
// offset; nullopt only when the placeholder's digits occur elsewhere in the message too (then a
// second placeholder is tried).
std::optional<HistoryTemplate> stream_template(boost::json::object message, std::chrono::system_clock::time_point now,
                                              std::string_view topic);

// The body of a Route::stream fan-out: "<offset>\n<enveloped json>".
struct StreamBody {
  std::uint64_t offset = 0;
  std::string_view json;
};
std::optional<StreamBody> decode_stream_body(std::string_view body);

// KEYS: meta, list. ARGV: channel, publish command (PUBLISH or SPUBLISH), fan-out header, head,
// tail, SIZE, TTL in ms, a new epoch (used when the stream does not exist). Returns
// {offset, receivers of the publish}.
extern const std::string history_append_script;

// KEYS: meta, list. ARGV: mode ("open": create the stream when absent and keep it alive another
// TTL; "read": neither), a new epoch (open), TTL in ms, FROM, LIMIT (0: no limit), EPOCH
// (empty: any). Drops expired messages, then returns {epoch, last, first kept (0: none), ...}
// followed by the kept messages with offsets FROM+1 .. at most LIMIT of them; with EPOCH set
// (a recovery), none unless EPOCH is the stream's, FROM+1 is still kept and the whole gap fits in
// LIMIT. A missing stream in "read" mode is {"", 0, 0}.
extern const std::string history_read_script;

// The most messages one recovery replays in cluster mode: a longer gap answers recovered:false
// rather than making Redis and the node read and hold it in one piece.
inline constexpr std::size_t max_redis_replay = 10'000;

struct StreamRead {
  std::string epoch;  // empty: no stream
  std::uint64_t last = 0;
  std::uint64_t first_kept = 0;
  struct Entry {
    std::uint64_t offset;
    std::string_view json;  // into the reply
  };
  std::vector<Entry> entries;
  StreamState state() const noexcept { return {first_kept, last, epoch}; }
};
// nullopt: not a reply of history_read_script (an error, or malformed).
std::optional<StreamRead> parse_stream_read(const RespValue& reply, std::uint64_t from);

}  // namespace boundary::realtime::core
