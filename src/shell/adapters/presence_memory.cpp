#include "shell/adapters/presence_memory.hpp"

namespace boundary::realtime::shell {

PresenceMemory::PresenceMemory(const std::vector<std::string>& patterns, std::chrono::milliseconds interval,
                               Schedule schedule)
    : patterns_(patterns), interval_(schedule ? interval : std::chrono::milliseconds{}), schedule_(std::move(schedule)) {}

void PresenceMemory::set_announce(Announce announce) {
  std::lock_guard lock(mutex_);
  announce_ = std::move(announce);
}

void PresenceMemory::joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) {
  std::lock_guard lock(mutex_);
  if (table_.join(topic, user_id, info) != core::PresenceChange::joined) return;
  change(PresenceEvent{PresenceEvent::Kind::join, std::string(topic), std::string(user_id), std::move(info)});
}

void PresenceMemory::left(std::string_view topic, std::string_view user_id) {
  std::lock_guard lock(mutex_);
  if (table_.leave(topic, user_id) != core::PresenceChange::left) return;
  change(PresenceEvent{PresenceEvent::Kind::leave, std::string(topic), std::string(user_id), nullptr});
}

void PresenceMemory::change(PresenceEvent event) {
  if (!announce_) return;
  if (interval_.count() <= 0) return announce_({std::move(event)});
  auto it = windows_.find(event.topic);
  if (it == windows_.end()) {
    // A quiet topic: announced at once, and the window opens.
    const std::string topic = event.topic;
    announce_({std::move(event)});
    windows_.try_emplace(topic);
    schedule_(interval_, [this, topic] { close_window(topic); });
    return;
  }
  Window& w = it->second;
  if (auto last = w.last.find(event.user_id); last != w.last.end()) {
    // The user's previous change is still pending: this one undoes it (a join follows a leave
    // and the other way round), so neither is announced.
    w.events[last->second].user_id.clear();
    w.last.erase(last);
    return;
  }
  w.last.emplace(event.user_id, w.events.size());
  w.events.push_back(std::move(event));
}

void PresenceMemory::announce_pending(Window& w) {
  std::vector<PresenceEvent> out;
  out.reserve(w.last.size());  // the events not cancelled
  for (auto& e : w.events)
    if (!e.user_id.empty()) out.push_back(std::move(e));
  w.events.clear();
  w.last.clear();
  if (!out.empty()) announce_(out);
}

void PresenceMemory::close_window(const std::string& topic) {
  std::lock_guard lock(mutex_);
  auto it = windows_.find(topic);
  if (it == windows_.end()) return;
  if (it->second.events.empty()) {
    windows_.erase(it);  // nothing happened during it: the topic is quiet again
    return;
  }
  // Changes arrived during the window: announce them and keep coalescing for another interval.
  announce_pending(it->second);
  schedule_(interval_, [this, topic] { close_window(topic); });
}

void PresenceMemory::list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) {
  std::lock_guard lock(mutex_);
  if (auto it = windows_.find(topic); it != windows_.end()) announce_pending(it->second);
  answer(table_.list(topic, max_users));
}

void PresenceMemory::stats(std::string_view topic, std::function<void(PresenceStats)> answer) {
  std::lock_guard lock(mutex_);
  answer(table_.stats(topic));
}

PresenceUsage PresenceMemory::usage() const {
  std::lock_guard lock(mutex_);
  return PresenceUsage{table_.topic_count(), table_.entry_count()};
}

}  // namespace boundary::realtime::shell
