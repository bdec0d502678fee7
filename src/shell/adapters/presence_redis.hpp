#pragma once
// Presence in Redis for cluster mode (docs/presence.md, "Cluster mode"; keys and scripts in
// core/presence_redis.hpp). Runs on the broker's links and thread:
// - This node's side: per topic, its users and their connection counts. The first of them
//   registers the node's instance with a `sync` script (sent once the node's subscription to the
//   topic's channel is in effect, so the node hears every event from then on); each later
//   change sends the user's new count with `set`. Counts are absolute, so a script repeated
//   after a failure does no harm, and whenever Redis does not know the instance (it lost the
//   keys, or the instance was declared dead) the next heartbeat syncs everything again.
// - Heartbeat (every second): for each topic this node has users on, a `beat` script keeps the
//   instance's entries alive and removes those of dead instances (their deadline passed: 5 s
//   after their last beat), publishing presence-leave for their users, once.
// - Events: the scripts publish them on the topic's channel; every node subscribed to it (the
//   publishing one too) receives them through the broker's presence tap, in version order, and
//   hands them to its PresenceCoalescer, which announces them to the local subscribers.
// - Listings: one script reads the topic's version and users. A node with subscribers on the
//   topic holds back the topic's events while listings are outstanding, and answers a listing
//   once it has received every event up to its version (or after 2 to 3 s at the latest):
//   events up to that version are announced first, then the answer, then the later events.
//   Another node answers at once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/pusher.hpp"
#include "boundary/realtime/ports/broker.hpp"
#include "boundary/realtime/ports/presence_store.hpp"
#include "core/topic.hpp"
#include "shell/adapters/presence_coalescer.hpp"

namespace boundary::realtime::shell {

class BrokerRedis;

class PresenceRedis final : public PresenceStore {
 public:
  using Schedule = PresenceCoalescer::Schedule;

  // Sets the broker's presence tap: construct before the broker starts. `schedule` times the
  // heartbeat (run on the broker's thread) and the coalescing windows. Throws
  // std::invalid_argument for a bad pattern.
  PresenceRedis(const std::vector<std::string>& patterns, BrokerRedis& broker, std::string prefix,
                std::chrono::milliseconds interval, Schedule schedule, std::size_t max_batch_bytes = 0);

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
  // This node's part: topics it has users on, and those users summed over the topics.
  PresenceUsage usage() const override;
  // Withdraws this node's entries (their users leave now rather than when the instance expires),
  // waiting at most `max_wait` for Redis. Any thread but the broker's.
  void close(std::chrono::milliseconds max_wait) override;

 private:
  struct Local {
    std::uint32_t connections = 0;
    std::shared_ptr<const std::string> info;
  };
  // A listing asked of Redis while this node has users on the topic, in the order asked (the
  // replies come in that order: one topic, one shard, one link).
  struct Listing {
    std::uint64_t id = 0;
    bool replied = false;
    std::uint64_t version = 0;  // of the reply
    PresenceListing listing;
    std::function<void(PresenceListing)> answer;
    std::chrono::steady_clock::time_point since;
  };
  // An event received while listings are outstanding: announced once the listings it must
  // follow are answered.
  struct Held {
    std::uint64_t version = 0;
    PresenceEvent event;
  };
  struct Topic {
    std::unordered_map<std::string, Local> users;  // this node's
    bool registered = false;    // Redis knows this instance on the topic (as far as we know)
    bool sync_pending = false;  // a sync waits for the subscription barrier
    bool heard = false;         // an event arrived since this node had users here
    std::uint64_t seen = 0;     // the newest version received
    std::deque<Listing> listings;
    std::vector<Held> held;
  };

  // Broker thread.
  void change(const std::string& topic, const std::string& user, bool join, std::shared_ptr<const std::string> info);
  void schedule_sync(const std::string& topic, Topic& t);
  void send_sync(const std::string& topic);
  void on_event(const Fanout& f);
  void process(const std::string& topic, Topic& t, bool force);
  void announce_held(Topic& t, std::uint64_t up_to);
  void beat();
  void forget_if_idle(const std::string& topic);
  void count_users(std::ptrdiff_t users, std::ptrdiff_t topics);
  std::vector<std::string> args(std::initializer_list<std::string> rest) const;

  const core::TopicPatterns patterns_;
  bool pusher_channels_ = false;
  BrokerRedis& broker_;
  const std::string prefix_;
  const std::string instance_;
  PresenceCoalescer coalescer_;
  Schedule schedule_;
  std::unordered_map<std::string, Topic> topics_;  // broker thread
  bool closed_ = false;                            // broker thread
  std::uint64_t next_listing_ = 0;                 // broker thread
  std::atomic<std::size_t> usage_topics_{0};
  std::atomic<std::size_t> usage_users_{0};
};

}  // namespace boundary::realtime::shell
