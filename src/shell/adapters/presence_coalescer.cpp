#include "shell/adapters/presence_coalescer.hpp"

namespace boundary::realtime::shell {

bool same_info(const std::shared_ptr<const std::string>& a, const std::shared_ptr<const std::string>& b) noexcept {
  if (a == b) return true;
  if (!a || !b) return false;
  return *a == *b;
}

PresenceCoalescer::PresenceCoalescer(std::chrono::milliseconds interval, Schedule schedule, std::size_t max_batch_bytes)
    : interval_(schedule ? interval : std::chrono::milliseconds{}),
      schedule_(std::move(schedule)),
      max_batch_bytes_(max_batch_bytes) {}

namespace {
// An event's frame: the envelope's fixed text, the topic, the user id, the info and a timestamp.
std::size_t estimated_bytes(const PresenceEvent& e) {
  return 128 + e.topic.size() + e.user_id.size() + (e.kind == PresenceEvent::Kind::join && e.info ? e.info->size() : 2);
}
}  // namespace

void PresenceCoalescer::set_announce(PresenceStore::Announce announce) {
  std::lock_guard lock(mutex_);
  announce_ = std::move(announce);
}

void PresenceCoalescer::change(PresenceEvent event) {
  std::lock_guard lock(mutex_);
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
    PresenceEvent& pending = w.events[last->second];
    // The user's previous change is still pending and this one undoes it (a join follows a
    // leave or the other way round), so neither is announced. A rejoin with other info is
    // announced after the leave: the subscribers must learn the new info.
    if (pending.kind == event.kind) {
      // Changes alternate per user; a repeated join (a node sending its users again after Redis
      // lost them) can only bring newer info.
      if (event.kind == PresenceEvent::Kind::join) pending.info = std::move(event.info);
      return;
    }
    if (!(pending.kind == PresenceEvent::Kind::leave && !same_info(pending.info, event.info))) {
      pending.user_id.clear();
      w.last.erase(last);
      return;
    }
    last->second = w.events.size();
  } else {
    w.last.emplace(event.user_id, w.events.size());
  }
  w.bytes += estimated_bytes(event);
  w.events.push_back(std::move(event));
  // A batch too big for a subscriber's send queue would close it as a slow consumer.
  if (max_batch_bytes_ != 0 && w.bytes >= max_batch_bytes_) announce_pending(w);
}

void PresenceCoalescer::announce_pending(Window& w) {
  std::vector<PresenceEvent> out;
  out.reserve(w.events.size());
  for (auto& e : w.events)
    if (!e.user_id.empty()) out.push_back(std::move(e));
  w.events.clear();
  w.last.clear();
  w.bytes = 0;
  if (!out.empty()) announce_(out);
}

void PresenceCoalescer::flush(std::string_view topic) {
  std::lock_guard lock(mutex_);
  if (auto it = windows_.find(topic); it != windows_.end()) announce_pending(it->second);
}

void PresenceCoalescer::close_window(const std::string& topic) {
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

}  // namespace boundary::realtime::shell
