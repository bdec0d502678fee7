#pragma once
// Port: the history of topics (--history). A topic matching a history rule is a stream: its
// messages get offsets 1, 2, 3, ... without gaps, and the stream has an epoch (a string) that
// changes whenever its history was lost. The store assigns offsets, keeps the last messages and
// answers recoveries.
//
// Guarantees every adapter gives:
// - Offsets: for one topic, append() hands out consecutive offsets and calls `publish` in offset
//   order; two publishes of one topic never overlap.
// - Atomic join: attach() calls `join` once, at a point between two appends of the topic, with
//   the stream's last offset at that point and (for a recovery) exactly the kept messages after
//   the client's offset up to it. Every append after that point calls `publish` after `join`
//   returned. The caller subscribes inside `join` and ignores deliveries with an offset <= the
//   snapshot's last (they may still be on their way to it): the subscriber then sees each
//   message once, in order.
// - Bounds: each stream keeps at most its rule's SIZE messages, each for its TTL, and all
//   streams together at most the byte cap; past it whole streams are dropped, least recently
//   published first, and start again at offset 1 with a new epoch.
// - Failure: a store that cannot answer reports recovered = false and offset 0 (the client
//   reloads); append() then still calls `publish` with offset 0 (delivery without history).
// - Threads: every member may be called from any thread; callbacks run on the caller's thread
//   (HistoryMemory) or on the store's own thread (a networked adapter) and must not block.
//
// HistoryMemory (src/shell/adapters) keeps streams in this process. HistoryRedis (cluster mode)
// keeps them in Redis and delivers() itself: one script assigns the offset, keeps the message
// and publishes it to every node (the publishing node too), so every node delivers a stream's
// messages in offset order, as Redis ordered them. Its `join` runs on the store's thread after
// the node's subscription to the topic is confirmed and the stream was read; messages that
// reached the node meanwhile are added to the snapshot. The caller must keep the node
// subscribed to the topic from before attach() until its connection is subscribed (Hub::pin),
// and must subscribe by posting to the connection's loop from inside `join`: later deliveries
// are posted after it.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/broker.hpp"

namespace boundary::realtime {

struct HistoryRecover {
  std::uint64_t offset = 0;
  std::string epoch;
};

struct HistorySnapshot {
  std::uint64_t last = 0;        // the stream's newest offset (0: no message kept)
  std::string epoch;             // empty when the stream does not exist
  bool recovered = false;        // attach with a recovery: the gap can be filled
  std::vector<Message> messages; // attach: the replay; read: the page asked for
  bool available = true;         // false: the store could not be asked (Redis unreachable)
};

// The enveloped JSON of a stream message around its offset's digits (delivers() stores).
struct HistoryTemplate {
  std::string head;
  std::string tail;
};

struct HistoryUsage {
  std::size_t streams = 0;
  std::size_t messages = 0;
  std::size_t bytes = 0;
  std::uint64_t evictions = 0;    // streams dropped for the byte cap
  std::uint64_t expirations = 0;  // streams dropped because their newest message expired
};

class HistoryStore {
 public:
  using Encode = std::function<Message(std::uint64_t offset)>;
  using Publish = std::function<void(const Message& message, std::uint64_t offset)>;
  using Join = std::function<void(const HistorySnapshot&)>;
  using Done = std::function<void(HistorySnapshot)>;

  virtual ~HistoryStore() = default;

  // Whether `topic` matches a history rule.
  virtual bool keeps(std::string_view topic) const noexcept = 0;
  // `encode(offset)` builds the message carrying its offset; it is kept and handed to `publish`.
  virtual void append(std::string_view topic, const Encode& encode, const Publish& publish) = 0;
  // Subscribing with (or without) a recovery; see "Atomic join".
  virtual void attach(std::string_view topic, const std::optional<HistoryRecover>& recover, const Join& join) = 0;
  // Kept messages after `since`, at most `limit`, oldest first.
  virtual void read(std::string_view topic, std::uint64_t since, std::size_t limit, Done done) = 0;
  // Stores that deliver through the cluster themselves (HistoryRedis): append_delivered() stores
  // head + offset + tail and sends it to every node interested in the topic, this one included;
  // `sent` gets the offset and the cluster-wide count (with `wait`, else once it was stored).
  // Offset 0: not stored. Then `uncertain` false means it was not sent anywhere either (the
  // caller may send it without history); true means the store lost its link after sending it,
  // so it may have been stored and delivered: the caller must not send it again.
  using Sent = std::function<void(std::uint64_t offset, FanoutResult result, bool uncertain)>;
  virtual bool delivers() const noexcept { return false; }
  virtual void append_delivered(std::string_view topic, HistoryTemplate message, bool wait, Sent sent) {
    (void)topic;
    (void)message;
    (void)wait;
    sent(0, FanoutResult{false, 0, false}, false);
  }
  // Runs `fn` once every attach() of `topic` begun before this call has called `join` (at once
  // when none is pending; on the store's thread otherwise). An unsubscribe goes through here so
  // that it cannot overtake a subscribe of the same topic still waiting for its join.
  virtual void after_attaches(std::string_view topic, std::function<void()> fn) {
    (void)topic;
    fn();
  }
  // Drops expired messages now (the memory adapter also does so lazily on every call).
  virtual void expire() = 0;
  virtual HistoryUsage usage() const = 0;
};

}  // namespace boundary::realtime
