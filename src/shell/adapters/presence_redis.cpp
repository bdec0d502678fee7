#include "shell/adapters/presence_redis.hpp"

#include <optional>

#include <spdlog/spdlog.h>

#include "core/presence_redis.hpp"
#include "shell/adapters/broker_redis.hpp"
#include "shell/adapters/random.hpp"

namespace boundary::realtime::shell {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto beat_interval = std::chrono::milliseconds(1000);
// A listing waits at most this long for the events it reflects.
constexpr auto max_listing_wait = std::chrono::milliseconds(2000);

std::shared_ptr<const std::string> info_of(std::string_view text) {
  if (text.empty()) return nullptr;
  return std::make_shared<const std::string>(text);
}

}  // namespace

PresenceRedis::PresenceRedis(const std::vector<std::string>& patterns, BrokerRedis& broker, std::string prefix,
                             std::chrono::milliseconds interval, Schedule schedule, std::size_t max_batch_bytes)
    : patterns_(patterns),
      broker_(broker),
      prefix_(std::move(prefix)),
      instance_(random_hex(8)),
      coalescer_(interval, schedule, max_batch_bytes),
      schedule_(std::move(schedule)) {
  broker_.set_presence_tap([this](const Fanout& f) { on_event(f); });
  if (schedule_) schedule_(beat_interval, [this] { broker_.run([this] { beat(); }); });
}

std::vector<std::string> PresenceRedis::args(std::initializer_list<std::string> rest) const {
  std::vector<std::string> a{instance_, std::to_string(core::presence_entry_ttl_ms), std::to_string(core::presence_keep_ms)};
  a.insert(a.end(), rest.begin(), rest.end());
  return a;
}

void PresenceRedis::joined(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info) {
  broker_.run([this, topic = std::string(topic), user = std::string(user_id), info = std::move(info)]() mutable {
    change(topic, user, true, std::move(info));
  });
}

void PresenceRedis::left(std::string_view topic, std::string_view user_id) {
  broker_.run([this, topic = std::string(topic), user = std::string(user_id)] { change(topic, user, false, nullptr); });
}

void PresenceRedis::change(const std::string& topic, const std::string& user, bool join,
                           std::shared_ptr<const std::string> info) {
  if (closed_) return;
  auto it = topics_.find(topic);
  if (it == topics_.end()) {
    if (!join) return;
    it = topics_.try_emplace(topic).first;
  }
  Topic& t = it->second;
  auto u = t.users.find(user);
  if (u == t.users.end()) {
    if (!join) return;
    count_users(1, t.users.empty() ? 1 : 0);
    u = t.users.try_emplace(user).first;
    u->second.info = std::move(info);
  }
  if (join) ++u->second.connections;
  else --u->second.connections;
  const std::uint32_t count = u->second.connections;
  const std::string info_text = u->second.info ? *u->second.info : std::string();
  if (count == 0) {
    t.users.erase(u);
    count_users(-1, t.users.empty() ? -1 : 0);
  }
  if (t.sync_pending) return;  // the sync sends the latest counts
  if (!t.registered) {
    if (!t.users.empty()) schedule_sync(topic, t);
    else forget_if_idle(topic);
    return;
  }
  const auto keys = core::presence_keys(prefix_, topic);
  broker_.presence_script(topic, core::presence_set_script, keys.all(),
                          args({user, std::to_string(count), info_text}), [this, topic](const core::RespValue* r) {
                            auto it = topics_.find(topic);
                            if (it == topics_.end()) return;
                            const bool ok = r && r->kind == core::RespValue::Kind::integer && r->integer == 0;
                            // Not known to Redis (or unknown fate): send everything again.
                            if (!ok) it->second.registered = false;
                            if (r && r->kind == core::RespValue::Kind::integer && r->integer == -1) {
                              it->second.heard = false;  // Redis lost the topic: versions start again
                              it->second.seen = 0;
                            }
                            if (!ok && !it->second.users.empty() && !it->second.sync_pending)
                              schedule_sync(topic, it->second);
                          });
  if (t.users.empty()) {
    // The set removes the instance from the topic; the node stops hearing its events.
    t.registered = false;
    t.heard = false;
    forget_if_idle(topic);
  }
}

void PresenceRedis::schedule_sync(const std::string& topic, Topic& t) {
  t.sync_pending = true;
  // Once this node's subscription to the topic's channel is in effect, so that it hears the
  // events from the sync's mark on.
  broker_.when_ready([this, topic] { send_sync(topic); });
}

void PresenceRedis::send_sync(const std::string& topic) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return;
  Topic& t = it->second;
  t.sync_pending = false;
  if (closed_) return;
  std::vector<std::string> a = args({});
  a.reserve(a.size() + 3 * t.users.size());
  for (const auto& [user, local] : t.users) {
    a.push_back(user);
    a.push_back(std::to_string(local.connections));
    a.push_back(local.info ? *local.info : std::string());
  }
  t.registered = !t.users.empty();
  const auto keys = core::presence_keys(prefix_, topic);
  broker_.presence_script(topic, core::presence_sync_script, keys.all(), std::move(a), [this, topic](const core::RespValue* r) {
    if (r && r->kind == core::RespValue::Kind::integer) return;
    auto it = topics_.find(topic);
    if (it != topics_.end()) it->second.registered = false;  // the next beat tries again
  });
  if (t.users.empty()) forget_if_idle(topic);
}

void PresenceRedis::on_event(const Fanout& f) {
  auto body = core::decode_presence_body(f.body);
  if (!body) {
    spdlog::warn("presence: ignoring a malformed event on topic {}", f.target);
    return;
  }
  std::optional<PresenceEvent> event;
  if (body->kind != 'm') {
    const auto kind = body->kind == 'j' ? PresenceEvent::Kind::join : PresenceEvent::Kind::leave;
    event = PresenceEvent{kind, f.target, std::string(body->user), info_of(body->info)};
  }
  auto it = topics_.find(f.target);
  if (it == topics_.end()) {
    if (event) coalescer_.change(std::move(*event));
    return;
  }
  Topic& t = it->second;
  if (!t.users.empty()) {
    t.heard = true;
    if (body->version > t.seen) t.seen = body->version;
  }
  if (t.listings.empty()) {
    if (event) coalescer_.change(std::move(*event));
    return;
  }
  if (event) t.held.push_back(Held{body->version, std::move(*event)});
  process(f.target, t, false);
}

void PresenceRedis::announce_held(Topic& t, std::uint64_t up_to) {
  std::size_t n = 0;
  while (n < t.held.size() && t.held[n].version <= up_to) ++n;  // held in version order
  for (std::size_t i = 0; i < n; ++i) coalescer_.change(std::move(t.held[i].event));
  t.held.erase(t.held.begin(), t.held.begin() + static_cast<std::ptrdiff_t>(n));
}

// Answers the topic's listings that can be answered, in order, each after the events up to its
// version and before the later ones (force: every replied one, now).
void PresenceRedis::process(const std::string& topic, Topic& t, bool force) {
  while (!t.listings.empty()) {
    Listing& l = t.listings.front();
    if (!l.replied) break;
    const bool in_order = t.heard && t.seen >= l.version;
    const bool late = Clock::now() - l.since >= max_listing_wait;
    if (!force && !t.users.empty() && l.listing.available && !in_order && !late) break;
    if (l.listing.available) announce_held(t, l.version);
    coalescer_.flush(topic);
    auto answer = std::move(l.answer);
    auto listing = std::move(l.listing);
    t.listings.pop_front();
    answer(std::move(listing));
  }
  if (t.listings.empty()) announce_held(t, ~std::uint64_t{0});
}

void PresenceRedis::list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) {
  broker_.run([this, topic = std::string(topic), max_users, answer = std::move(answer)]() mutable {
    // Ordered against the events only where this node has users (and so subscribers) on it.
    std::uint64_t id = 0;
    std::function<void(PresenceListing)> direct;
    if (auto it = topics_.find(topic); it != topics_.end() && !it->second.users.empty()) {
      id = ++next_listing_;
      it->second.listings.push_back(Listing{id, false, 0, {}, std::move(answer), Clock::now()});
    } else {
      direct = std::move(answer);
    }
    const auto keys = core::presence_keys(prefix_, topic);
    broker_.presence_script(
        topic, core::presence_list_script, keys.all(), {std::to_string(max_users)},
        [this, topic, max_users, id, direct = std::move(direct)](const core::RespValue* r) mutable {
          auto read = r ? core::parse_presence_list(*r, max_users) : std::nullopt;
          PresenceListing listing;
          if (read) listing = std::move(read->listing);
          else listing.available = false;
          if (id == 0) {
            coalescer_.flush(topic);
            return direct(std::move(listing));
          }
          auto it = topics_.find(topic);
          if (it == topics_.end()) return;
          Topic& t = it->second;
          for (auto& l : t.listings)
            if (l.id == id) {
              l.replied = true;
              l.version = read ? read->version : 0;
              l.listing = std::move(listing);
              break;
            }
          process(topic, t, closed_);
          if (t.users.empty()) forget_if_idle(topic);
        });
  });
}

void PresenceRedis::stats(std::string_view topic, std::function<void(PresenceStats)> answer) {
  const auto keys = core::presence_keys(prefix_, topic);
  broker_.presence_script(std::string(topic), core::presence_list_script, keys.all(), {"0"},
                          [answer = std::move(answer)](const core::RespValue* r) {
                            auto read = r ? core::parse_presence_list(*r, 0) : std::nullopt;
                            if (!read) {
                              PresenceStats none;
                              none.available = false;
                              return answer(none);
                            }
                            answer(read->stats);
                          });
}

void PresenceRedis::beat() {
  for (auto& [topic, t] : topics_) {
    process(topic, t, closed_);  // listings waiting too long
    if (closed_ || t.users.empty() || t.sync_pending) continue;
    if (!t.registered) {
      schedule_sync(topic, t);
      continue;
    }
    const auto keys = core::presence_keys(prefix_, topic);
    broker_.presence_script(topic, core::presence_beat_script, keys.all(), args({}), [this, topic](const core::RespValue* r) {
      using K = core::RespValue::Kind;
      if (!r || r->kind != K::array || r->elements.empty() || r->elements[0].kind != K::integer) return;
      if (r->elements[0].integer != 1) return;
      // Redis no longer knows this instance here (it lost the keys, or declared the node dead
      // after missed beats): announce everything again, from a fresh version count.
      auto it = topics_.find(topic);
      if (it == topics_.end() || it->second.users.empty() || it->second.sync_pending) return;
      spdlog::warn("presence: redis no longer had this node's users on topic {}; sending them again", topic);
      it->second.registered = false;
      it->second.heard = false;
      it->second.seen = 0;
      schedule_sync(topic, it->second);
    });
  }
  schedule_(beat_interval, [this] { broker_.run([this] { beat(); }); });
}

void PresenceRedis::forget_if_idle(const std::string& topic) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return;
  Topic& t = it->second;
  if (!t.users.empty() || t.sync_pending || t.registered) return;
  process(topic, t, true);
  if (t.listings.empty()) topics_.erase(it);  // else once the replies are in
}

void PresenceRedis::count_users(std::ptrdiff_t users, std::ptrdiff_t topics) {
  usage_users_.fetch_add(static_cast<std::size_t>(users), std::memory_order_relaxed);
  usage_topics_.fetch_add(static_cast<std::size_t>(topics), std::memory_order_relaxed);
}

PresenceUsage PresenceRedis::usage() const {
  return PresenceUsage{usage_topics_.load(std::memory_order_relaxed), usage_users_.load(std::memory_order_relaxed)};
}

void PresenceRedis::close(std::chrono::milliseconds max_wait) {
  struct Wait {
    std::mutex mutex;
    std::condition_variable cv;
    std::size_t outstanding = 0;
    bool sent = false;
  };
  auto w = std::make_shared<Wait>();
  broker_.run([this, w] {
    closed_ = true;
    std::size_t n = 0;
    for (auto& [topic, t] : topics_) {
      process(topic, t, true);  // nothing waits for events any more
      if (t.users.empty() && !t.registered && !t.sync_pending) continue;
      ++n;
      const auto keys = core::presence_keys(prefix_, topic);
      broker_.presence_script(topic, core::presence_sync_script, keys.all(), args({}), [w](const core::RespValue*) {
        std::lock_guard lock(w->mutex);
        --w->outstanding;
        w->cv.notify_all();
      });
    }
    std::lock_guard lock(w->mutex);
    w->outstanding += n;
    w->sent = true;
    w->cv.notify_all();
  });
  std::unique_lock lock(w->mutex);
  w->cv.wait_for(lock, max_wait, [&] { return w->sent && w->outstanding == 0; });
}

}  // namespace boundary::realtime::shell
