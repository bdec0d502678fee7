#pragma once
// The single-node presence store: core::PresenceTable behind one mutex, its events coalesced
// per topic (PresenceCoalescer). Changes are decided and handed to the coalescer under the
// mutex, so a topic's events are announced in the order of the changes; list() first announces
// what its topic has pending, so the listing follows every event announced before it.

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/pusher.hpp"
#include "boundary/realtime/ports/presence_store.hpp"
#include "core/presence.hpp"
#include "core/topic.hpp"
#include "shell/adapters/presence_coalescer.hpp"

namespace boundary::realtime::shell {

class PresenceMemory final : public PresenceStore {
 public:
  using Schedule = PresenceCoalescer::Schedule;

  // Throws std::invalid_argument for a bad pattern (core::TopicPatterns). Without `schedule`
  // (or with a zero interval) every change is announced at once. `max_batch_bytes`: see
  // PresenceCoalescer.
  PresenceMemory(const std::vector<std::string>& patterns, std::chrono::milliseconds interval = {},
                 Schedule schedule = {}, std::size_t max_batch_bytes = 0);

  bool tracks(std::string_view topic) const override {
    return patterns_.allows(topic) || (pusher_channels_ && core::pusher::is_presence_topic(topic));
  }
  // Also tracks the Pusher apps' presence channels (--pusher-app). Before any change.
  void track_pusher_presence_channels() noexcept { pusher_channels_ = true; }
  void set_announce(Announce announce) override { coalescer_.set_announce(std::move(announce)); }
  void joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) override;
  void left(std::string_view topic, std::string_view user_id) override;
  void list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) override;
  void stats(std::string_view topic, std::function<void(PresenceStats)> answer) override;

  PresenceUsage usage() const override;

 private:
  const core::TopicPatterns patterns_;
  bool pusher_channels_ = false;
  PresenceCoalescer coalescer_;
  mutable std::mutex mutex_;
  core::PresenceTable table_;
};

}  // namespace boundary::realtime::shell
