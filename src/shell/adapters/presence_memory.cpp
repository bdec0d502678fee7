#include "shell/adapters/presence_memory.hpp"

namespace boundary::realtime::shell {

PresenceMemory::PresenceMemory(const std::vector<std::string>& patterns, std::chrono::milliseconds interval,
                               Schedule schedule, std::size_t max_batch_bytes)
    : patterns_(patterns), coalescer_(interval, std::move(schedule), max_batch_bytes) {}

void PresenceMemory::joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) {
  std::lock_guard lock(mutex_);
  if (table_.join(topic, user_id, info) != core::PresenceChange::joined) return;
  coalescer_.change(PresenceEvent{PresenceEvent::Kind::join, std::string(topic), std::string(user_id), std::move(info)});
}

void PresenceMemory::left(std::string_view topic, std::string_view user_id) {
  std::lock_guard lock(mutex_);
  std::shared_ptr<const std::string> info;
  if (table_.leave(topic, user_id, &info) != core::PresenceChange::left) return;
  coalescer_.change(PresenceEvent{PresenceEvent::Kind::leave, std::string(topic), std::string(user_id), std::move(info)});
}

void PresenceMemory::list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) {
  std::lock_guard lock(mutex_);
  coalescer_.flush(topic);
  answer(table_.list(topic, max_users));
}

void PresenceMemory::stats(std::string_view topic, std::function<void(PresenceStats)> answer) {
  PresenceStats s;
  {
    std::lock_guard lock(mutex_);
    s = table_.stats(topic);
  }
  answer(s);
}

PresenceUsage PresenceMemory::usage() const {
  std::lock_guard lock(mutex_);
  return PresenceUsage{table_.topic_count(), table_.entry_count()};
}

}  // namespace boundary::realtime::shell
