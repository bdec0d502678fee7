#pragma once
// Pure parts of cluster mode (docs/cluster.md): Redis channel and key names, the fan-out payload
// codec, the reply codec, the --redis URL and node ids, and the gathering of counts from the
// other nodes' answers.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "boundary/realtime/ports/broker.hpp"

namespace boundary::realtime::core {

// Every name the broker uses in Redis starts with "<prefix>:" (--redis-prefix, default "rt";
// core::valid_redis_prefix), so clusters with different prefixes share one Redis without
// hearing each other, and an ACL user limited to "~<prefix>:* &<prefix>:*" is enough.
// <prefix>:u:<user> (sends and disconnects), <prefix>:r:<role>, <prefix>:t:<topic>; every other
// route goes to <prefix>:all. A target is appended byte for byte: channel names are RESP bulk
// strings, so spaces, CRLF, '*' or braces in a name cannot break the framing or reach another
// channel (braces in a topic only pick its hash slot on Redis Cluster, the same on every node).
std::string channel_for(std::string_view prefix, Route route, std::string_view target);
std::string all_channel(std::string_view prefix);                             // <prefix>:all
std::string reply_channel(std::string_view prefix, std::string_view node_id);  // <prefix>:reply:<node>
std::string node_key(std::string_view prefix, std::string_view node_id);       // <prefix>:node:<node>
// The PUBSUB CHANNELS / SHARDCHANNELS pattern matching every topic channel whose topic starts
// with `topic_prefix`, taken byte for byte: glob characters in it (* ? [ ] \) are escaped.
std::string topic_channel_pattern(std::string_view prefix, std::string_view topic_prefix);
// The topic of a topic channel's name (<prefix>:t:<topic>); nullopt for any other name.
std::optional<std::string_view> topic_of_channel(std::string_view prefix, std::string_view channel) noexcept;

// A fan-out as it travels between nodes: a compact header, then the body unchanged (the
// enveloped JSON, timestamped once at the origin).
//   <route letter><origin>\n<request id>\n<target bytes>\n<target><body>
// request id 0: the origin does not wait for answers.
struct WireFanout {
  Fanout fanout;
  std::string origin;
  std::uint64_t request_id = 0;
};
std::string encode_fanout(const Fanout& f, std::string_view origin, std::uint64_t request_id);
std::optional<WireFanout> decode_fanout(std::string_view payload);

// An answer on <prefix>:reply:<origin>: "<request id> <count>".
struct WireReply {
  std::uint64_t request_id = 0;
  std::size_t count = 0;
};
std::string encode_reply(std::uint64_t request_id, std::size_t count);
std::optional<WireReply> decode_reply(std::string_view payload);

struct RedisUrl {
  std::string host;
  std::uint16_t port = 6379;
  unsigned db = 0;
};
// redis://host[:port][/db] with the scheme, credentials and TLS already taken off by
// parse_redis_target (core/redis_target.hpp); the error says what is wrong.
boost::system::result<RedisUrl, std::string> parse_redis_url(std::string_view url);

// 1-64 characters of [A-Za-z0-9._-]: node ids appear in channel names and payload headers.
bool valid_node_id(std::string_view id) noexcept;

// Counts gathered for fan-outs that wait. A request completes when PUBLISH has said how many
// node subscriptions received it and that many answers arrived (answers may come first), or
// when its deadline passes (with what arrived). Requests expire in id order, which is also
// deadline order because every request gets the same timeout.
class ReplyGather {
 public:
  using Clock = std::chrono::steady_clock;
  struct Outcome {
    std::uint64_t request_id;
    std::size_t count;
    bool complete;
  };

  void start(std::uint64_t request_id, Clock::time_point deadline);
  std::optional<Outcome> published(std::uint64_t request_id, std::size_t receivers);
  std::optional<Outcome> answered(std::uint64_t request_id, std::size_t count);
  // Removes a request whose PUBLISH failed.
  std::optional<Outcome> failed(std::uint64_t request_id);
  std::vector<Outcome> expire(Clock::time_point now);
  std::vector<Outcome> drain();  // every pending request, incomplete
  std::size_t pending() const noexcept { return pending_.size(); }

 private:
  struct Pending {
    Clock::time_point deadline;
    std::optional<std::size_t> expected;
    std::size_t answers = 0;
    std::size_t total = 0;
  };
  std::optional<Outcome> finish_if_done(std::map<std::uint64_t, Pending>::iterator it);
  std::map<std::uint64_t, Pending> pending_;
};

}  // namespace boundary::realtime::core
