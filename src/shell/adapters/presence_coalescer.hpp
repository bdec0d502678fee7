#pragma once
// Coalescing of presence events per topic (docs/presence.md, "Big rooms"), shared by the store
// adapters. The first change of a topic is announced at once and opens a window of `interval`;
// the topic's changes during the window are announced together when it ends (one announcement,
// so one write per subscriber instead of one per event), and the window stays open while changes
// keep coming. A join and a leave of the same user inside a window cancel out, unless the join
// brings other `info` than the user had (then both go out, so clients see the new info).
//
// Thread-safe: one mutex; `announce` runs under it (it only posts to the loops, which orders a
// topic's events on every loop). An adapter calls change() in the order of its decisions and
// flush() before answering a listing, so the listing follows every event announced before it.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "boundary/realtime/ports/presence_store.hpp"

namespace boundary::realtime::shell {

class PresenceCoalescer {
 public:
  // Runs `work` once, `delay` from now, on some thread (the node: a timer on its first loop).
  using Schedule = std::function<void(std::chrono::milliseconds delay, std::function<void()> work)>;

  // Without `schedule` (or with a zero interval) every change is announced at once. The timers
  // refer to this object: it must outlive the loop that runs them. `max_batch_bytes` (0: no
  // bound) bounds an announcement: once a window's pending events come to that many bytes
  // (estimated: ids, info and the envelope), they are announced at once and the window goes on.
  PresenceCoalescer(std::chrono::milliseconds interval, Schedule schedule, std::size_t max_batch_bytes = 0);

  void set_announce(PresenceStore::Announce announce);
  // A user's first connection joined or last one left (event.info: the user's info, for a
  // leave the one it had).
  void change(PresenceEvent event);
  // Announces what `topic` has pending.
  void flush(std::string_view topic);

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Window {
    std::vector<PresenceEvent> events;  // cancelled ones have an empty user_id
    std::unordered_map<std::string, std::size_t, Hash, std::equal_to<>> last;  // user -> index in events
    std::size_t bytes = 0;  // estimated size of the pending events, framed
  };

  void announce_pending(Window& w);  // under the mutex
  void close_window(const std::string& topic);

  const std::chrono::milliseconds interval_;
  Schedule schedule_;
  const std::size_t max_batch_bytes_;
  std::mutex mutex_;
  PresenceStore::Announce announce_;
  std::unordered_map<std::string, Window, Hash, std::equal_to<>> windows_;  // topics in a window
};

// Whether two `info`s are the same (both absent, or equal text).
bool same_info(const std::shared_ptr<const std::string>& a, const std::shared_ptr<const std::string>& b) noexcept;

}  // namespace boundary::realtime::shell
