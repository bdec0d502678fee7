#pragma once
// History of topics (--history): which topics keep messages and for how long, the in-memory
// book of streams, and the recovery decision. Pure: time is passed in, epochs are made by the
// caller, no locks (the shell's adapter holds one).
//
// A stream is a topic with history: its messages carry offsets 1, 2, 3, ... without gaps and the
// stream has an epoch that names this run of offsets. A stream is created with a fresh epoch (at
// its first message after the process started, after it was evicted, after it expired), so a
// client holding an offset of a history that is gone can tell: the epoch differs.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/system/result.hpp>

#include "boundary/realtime/message.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {

using HistoryClock = std::chrono::steady_clock;

inline constexpr std::chrono::seconds default_history_ttl{300};
inline constexpr std::size_t max_history_size = 1'000'000;
inline constexpr std::chrono::seconds max_history_ttl{30 * 24 * 3600};

struct TopicHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// One `PATTERN=SIZE[/TTL]` of --history.
struct HistoryRule {
  std::string pattern;
  std::size_t size = 0;                        // messages kept, 1..max_history_size
  std::chrono::seconds ttl = default_history_ttl;  // each message, from its publish
};

// Parses every spec (already split at commas); the error names the spec and what is wrong.
boost::system::result<std::vector<HistoryRule>, std::string> parse_history_rules(const std::vector<std::string>& specs);

// The first rule whose pattern matches a topic wins (patterns as for --publish-patterns).
class HistoryRules {
 public:
  HistoryRules() = default;
  explicit HistoryRules(std::vector<HistoryRule> rules) : rules_(std::move(rules)) {}
  const HistoryRule* find(std::string_view topic) const noexcept;
  bool empty() const noexcept { return rules_.empty(); }

 private:
  std::vector<HistoryRule> rules_;
};

// What a client says it has seen: the last offset it got and the epoch it came from.
struct RecoverFrom {
  std::uint64_t offset = 0;
  std::string epoch;
};

// A stream as the recovery decision sees it. first_kept is 0 when no message is kept.
struct StreamState {
  std::uint64_t first_kept = 0;
  std::uint64_t last = 0;
  std::string_view epoch;
};

// Offsets [from, to] to send; empty when from > to.
struct OffsetRange {
  std::uint64_t from = 1;
  std::uint64_t to = 0;
  bool empty() const noexcept { return from > to; }
  std::uint64_t size() const noexcept { return empty() ? 0 : to - from + 1; }
};

struct Recovery {
  bool recovered = false;
  OffsetRange replay;  // empty unless recovered
};

// Recovered exactly when the epoch is the stream's, the client is not ahead of the stream, and
// every message after its offset is still kept (nothing after it, or first_kept <= offset + 1).
Recovery decide_recovery(const StreamState& stream, const RecoverFrom& from) noexcept;

// A subscribe on a stream answered with offset `last`: deliveries of the topic up to `last` still
// queued on the connection's loop are skipped through the returned offset (0: none skipped). A new
// subscriber skips them all: it was not subscribed when they were published, and the reply
// promises offsets above `last`. A connection already subscribed was, so it gets them, unless a
// recovery replayed them (they would arrive twice).
constexpr std::uint64_t subscribe_skip_through(bool already_subscribed, bool replayed, std::uint64_t last) noexcept {
  return already_subscribed && !replayed ? 0 : last;
}

// The `history` action: kept messages after `since`, at most `limit` of them, oldest first.
OffsetRange history_range(const StreamState& stream, std::uint64_t since, std::size_t limit) noexcept;

// Bytes accounted per kept message besides its JSON, and per stream besides its topic name:
// the entry, the shared frame's allocation and control block, the map and list nodes. Measured
// against the process's resident memory (docs/history.md: 262 - 268 bytes per 141-byte message, of
// which this accounts 145 + 128), so the byte cap errs on the safe side.
inline constexpr std::size_t history_message_overhead = 128;
inline constexpr std::size_t history_stream_overhead = 256;

// The streams of one node, bounded by each rule's SIZE and TTL and by a global byte cap past
// which the least recently published streams are dropped whole.
class HistoryBook {
 public:
  using NewEpoch = std::function<std::string()>;
  explicit HistoryBook(std::size_t max_bytes, NewEpoch new_epoch)
      : max_bytes_(max_bytes), new_epoch_(std::move(new_epoch)) {}

  struct Appended {
    std::uint64_t offset = 0;
    const Message* message = nullptr;  // valid until the book changes
  };
  // Gives the topic's next offset to `encode`, keeps what it returns, trims the stream to its
  // rule and then the book to its byte cap (this stream is dropped last: only when it alone is
  // over the cap is it emptied of all but its newest message).
  template <class Encode>
  Appended append(std::string_view topic, const HistoryRule& rule, HistoryClock::time_point now, Encode&& encode) {
    Stream& s = stream_for(topic, rule, now);
    const std::uint64_t offset = s.last + 1;
    Message m = encode(offset);
    return commit(s, offset, std::move(m), now);
  }

  // The stream's state after dropping expired messages. A stream lives while it keeps a message
  // and at least TTL after it was created or opened; then it is dropped whole (its epoch is
  // gone). No stream: nullopt.
  std::optional<StreamState> state(std::string_view topic, HistoryClock::time_point now);
  // state(), creating the stream (offset 0, a new epoch) when there is none, and keeping it
  // alive for another TTL: a subscriber to a quiet topic holds an epoch it can recover with.
  StreamState open(std::string_view topic, const HistoryRule& rule, HistoryClock::time_point now);
  // Kept messages in `range` (which state() bounded).
  std::vector<Message> messages(std::string_view topic, OffsetRange range) const;

  // Drops every expired message and every stream left empty; returns the streams dropped.
  std::size_t expire(HistoryClock::time_point now);

  std::size_t bytes() const noexcept { return bytes_; }
  std::size_t stream_count() const noexcept { return streams_.size(); }
  std::size_t message_count() const noexcept { return messages_; }
  std::uint64_t evictions() const noexcept { return evictions_; }  // streams dropped for the byte cap
  std::uint64_t expirations() const noexcept { return expirations_; }  // streams dropped for TTL

 private:
  struct Kept {
    Message message;
    HistoryClock::time_point expires;
  };
  struct Stream {
    std::string epoch;
    std::uint64_t last = 0;
    std::size_t size = 0;
    std::chrono::seconds ttl{};
    std::deque<Kept> kept;  // offsets last - kept.size() + 1 .. last
    HistoryClock::time_point alive_until;
    std::list<std::string>::iterator lru;
  };
  using Map = std::unordered_map<std::string, Stream, TopicHash, std::equal_to<>>;

  Stream& stream_for(std::string_view topic, const HistoryRule& rule, HistoryClock::time_point now);
  Appended commit(Stream& s, std::uint64_t offset, Message m, HistoryClock::time_point now);
  void pop_front(Stream& s);
  void drop(Map::iterator it);
  // Drops expired messages; true when the stream itself has expired.
  bool trim_expired(Stream& s, HistoryClock::time_point now);
  static StreamState state_of(const Stream& s) noexcept;
  static std::size_t cost(const Message& m) noexcept { return m.frame_bytes() + history_message_overhead; }

  std::size_t max_bytes_;
  NewEpoch new_epoch_;
  Map streams_;
  std::list<std::string> lru_;  // least recently published first
  std::size_t bytes_ = 0;
  std::size_t messages_ = 0;
  std::uint64_t evictions_ = 0;
  std::uint64_t expirations_ = 0;
};

}  // namespace boundary::realtime::core
