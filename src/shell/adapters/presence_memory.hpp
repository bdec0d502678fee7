#pragma once
// The single-node presence store: core::PresenceTable behind one mutex.
//
// Coalescing: the first change of a topic is announced at once and opens a window of
// `interval`; the topic's changes during the window are announced together when it ends (one
// announcement, so one write per subscriber instead of one per event), and a join and a leave
// of the same user inside it cancel out. A list() first announces what its topic has pending, so
// the listing follows every event announced before it. Announcing only posts to the loops
// (Hub), and happens under the mutex: that orders a topic's events on every loop.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "boundary/realtime/ports/presence_store.hpp"
#include "core/presence.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::shell {

class PresenceMemory final : public PresenceStore {
 public:
  // Runs `work` once, `delay` from now, on some thread (the node: a timer on its first loop).
  using Schedule = std::function<void(std::chrono::milliseconds delay, std::function<void()> work)>;

  // Throws std::invalid_argument for a bad pattern (core::TopicPatterns). Without `schedule`
  // (or with a zero interval) every change is announced at once.
  PresenceMemory(const std::vector<std::string>& patterns, std::chrono::milliseconds interval = {},
                 Schedule schedule = {});

  bool tracks(std::string_view topic) const override { return patterns_.allows(topic); }
  void set_announce(Announce announce) override;
  void joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) override;
  void left(std::string_view topic, std::string_view user_id) override;
  void list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) override;
  void stats(std::string_view topic, std::function<void(PresenceStats)> answer) override;

  PresenceUsage usage() const override;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  // A topic's window: open from its first announced change until `interval` later.
  struct Window {
    std::vector<PresenceEvent> events;  // cancelled ones have an empty user_id
    std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> last;  // user -> index in events
  };

  void change(PresenceEvent event);      // under the mutex
  void announce_pending(Window& w);      // under the mutex
  void close_window(const std::string& topic);

  const core::TopicPatterns patterns_;
  const std::chrono::milliseconds interval_;
  Schedule schedule_;
  mutable std::mutex mutex_;
  core::PresenceTable table_;
  Announce announce_;
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> windows_;  // topics in a window
};

}  // namespace boundary::realtime::shell
