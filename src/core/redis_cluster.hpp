#pragma once
// Pure parts of running on a Redis Cluster (docs/cluster.md, "Running on Redis Cluster"): the
// redis-cluster:// URL, the hash slot of a key or shard channel (CRC16 as Redis computes it),
// the slot map from CLUSTER SLOTS, and MOVED / ASK redirects. Replies reach the core as
// RespValue, a plain copy of what hiredis parsed, so none of this needs a socket to test.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

namespace boundary::realtime::core {

constexpr std::uint16_t cluster_slots = 16384;

struct Endpoint {
  std::string host;
  std::uint16_t port = 6379;
  bool operator==(const Endpoint&) const = default;
  auto operator<=>(const Endpoint&) const = default;
};
std::string to_string(const Endpoint& e);  // host:port, [v6]:port

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0, no reflection), the checksum Redis
// Cluster hashes keys and shard channels with.
std::uint16_t crc16(std::string_view data) noexcept;
// The slot of a key or shard channel: CRC16 mod 16384 of the whole name, or of the part between
// the first '{' and the next '}' when that part is not empty (a hash tag).
std::uint16_t key_slot(std::string_view key) noexcept;

// redis-cluster://host[:port][,host[:port]...]: seed nodes (port 6379 by default), tried in
// turn to discover the slot map. No database number (a cluster has only database 0) and no
// credentials.
bool is_cluster_url(std::string_view url) noexcept;
boost::system::result<std::vector<Endpoint>, std::string> parse_cluster_url(std::string_view url);

// A reply as the RESP2 reader produced it.
struct RespValue {
  enum class Kind { nil, string, status, error, integer, array };
  Kind kind = Kind::nil;
  std::string str;           // string, status, error
  long long integer = 0;     // integer
  std::vector<RespValue> elements;  // array
};

// Which master serves each slot. Masters are listed once each, in the order first seen.
struct SlotMap {
  std::vector<Endpoint> masters;
  // Index into masters for every slot; -1 where no master serves it (the cluster is not ok).
  std::array<std::int16_t, cluster_slots> owner{};
  const Endpoint* master_for(std::uint16_t slot) const noexcept {
    const auto i = owner[slot % cluster_slots];
    return i < 0 ? nullptr : &masters[static_cast<std::size_t>(i)];
  }
  bool operator==(const SlotMap&) const = default;
};
// From a CLUSTER SLOTS reply: [[first, last, [host, port, id, ...], replicas...], ...]. A master
// whose host is "" or "?" (its address unknown to the node asked) gets `asked_host`, the host
// of the node that answered. Every slot must be served: a partial map is an error, because
// topics on unserved slots would silently reach nobody.
boost::system::result<SlotMap, std::string> parse_cluster_slots(const RespValue& reply, std::string_view asked_host);

// "MOVED <slot> <host>:<port>" and "ASK <slot> <host>:<port>" errors. An empty host (Redis
// sends one when the target's address is unknown) is returned empty: the caller uses the host
// of the node that answered.
struct Redirect {
  bool ask = false;  // ASK: this command only, prefixed by ASKING; MOVED: the slot moved for good
  std::uint16_t slot = 0;
  Endpoint to;
};
std::optional<Redirect> parse_redirect(std::string_view error);

}  // namespace boundary::realtime::core
