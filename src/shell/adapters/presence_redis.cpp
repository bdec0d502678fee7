#include "shell/adapters/presence_redis.hpp"

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
    u = t.users.try_emplace(user).first;
    u->second.info = std::move(info);
  }
  if (join) ++u->second.connections;
  else --u->second.connections;
  const std::uint32_t count = u->second.connections;
  const std::string info_text = u->second.info ? *u->second.info : std::string();
  if (count == 0) t.users.erase(u);
  update_usage();
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
  if (body->kind != 'm') {
    const auto kind = body->kind == 'j' ? PresenceEvent::Kind::join : PresenceEvent::Kind::leave;
    coalescer_.change(PresenceEvent{kind, f.target, std::string(body->user), info_of(body->info)});
  }
  auto it = topics_.find(f.target);
  if (it == topics_.end() || it->second.users.empty()) return;
  Topic& t = it->second;
  t.heard = true;
  if (body->version > t.seen) t.seen = body->version;
  release(f.target, t, false);
}

// Answers the listings waiting on `topic` that can be answered (all: every one).
void PresenceRedis::release(const std::string& topic, Topic& t, bool all) {
  if (t.waiting.empty()) return;
  std::vector<Waiting> ready;
  std::vector<Waiting> still;
  const auto now = Clock::now();
  for (auto& w : t.waiting) {
    if (all || (t.heard && w.version <= t.seen) || now - w.since >= max_listing_wait) ready.push_back(std::move(w));
    else still.push_back(std::move(w));
  }
  t.waiting = std::move(still);
  if (ready.empty()) return;
  coalescer_.flush(topic);
  for (auto& w : ready) w.answer(std::move(w.listing));
}

void PresenceRedis::list(std::string_view topic, std::size_t max_users, std::function<void(PresenceListing)> answer) {
  const auto keys = core::presence_keys(prefix_, topic);
  broker_.presence_script(
      std::string(topic), core::presence_list_script, keys.all(), {std::to_string(max_users)},
      [this, topic = std::string(topic), max_users, answer = std::move(answer)](const core::RespValue* r) mutable {
        auto read = r ? core::parse_presence_list(*r, max_users) : std::nullopt;
        if (!read) {
          PresenceListing none;
          none.available = false;
          return answer(std::move(none));
        }
        auto it = topics_.find(topic);
        Topic* t = it == topics_.end() || it->second.users.empty() ? nullptr : &it->second;
        if (!t || (t->heard && read->version <= t->seen)) {
          // Every event up to the listing has reached this node (or it has no subscribers to
          // order against): announce what is pending, then answer.
          coalescer_.flush(topic);
          return answer(std::move(read->listing));
        }
        t->waiting.push_back(Waiting{read->version, std::move(read->listing), std::move(answer), Clock::now()});
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
  if (closed_) return;
  for (auto& [topic, t] : topics_) {
    release(topic, t, false);  // listings waiting too long
    if (t.users.empty() || t.sync_pending) continue;
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
  release(topic, t, true);
  topics_.erase(it);
}

void PresenceRedis::update_usage() {
  std::size_t topics = 0, users = 0;
  for (const auto& [topic, t] : topics_)
    if (!t.users.empty()) {
      ++topics;
      users += t.users.size();
    }
  usage_topics_.store(topics, std::memory_order_relaxed);
  usage_users_.store(users, std::memory_order_relaxed);
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
      if (!t.registered && !t.sync_pending) continue;
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
