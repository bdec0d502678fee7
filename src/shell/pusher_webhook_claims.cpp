#include "shell/pusher_webhook_claims.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/pusher_webhook.hpp"
#include "core/redis_cluster.hpp"
#include "shell/adapters/broker_redis.hpp"
#include "shell/adapters/random.hpp"
#include "shell/pusher_webhooks.hpp"

namespace boundary::realtime::shell {
namespace pusher = core::pusher;
using Kind = core::RespValue::Kind;

namespace {

constexpr std::chrono::seconds beat_interval{1};
constexpr std::chrono::seconds max_settle_backoff{60};

struct Claimed {
  std::size_t app;
  pusher::WebhookEvent event;
};

// The webhook a claim of `topic` (a member: `user`) would send, if its app has one.
std::optional<Claimed> webhook_for(const std::vector<pusher::App>& apps, const PusherWebhooks& hooks,
                                   std::string_view topic, const std::optional<std::string>& user, bool join) {
  auto where = pusher::app_channel(topic, apps);
  if (!where || !hooks.wants(where->app)) return std::nullopt;
  if (!user) return Claimed{where->app, {join ? "channel_occupied" : "channel_vacated", std::string(where->channel), {}, {}, {}, {}}};
  // Presence channels only: --presence patterns may also track public channels' topics.
  if (pusher::channel_kind(where->channel) != pusher::ChannelKind::presence) return std::nullopt;
  return Claimed{where->app,
                 {join ? "member_added" : "member_removed", std::string(where->channel),
                  std::string(pusher::pusher_user(*user)), {}, {}, {}}};
}

bool answered(const core::RespValue* r) { return r && r->kind != Kind::error; }
void ignore(const core::RespValue*) {}

// Steps that each send a command and call `done` on its answer, at most max_in_flight at a time,
// then `finished`. On the broker's thread. A step may call `done` at once (nothing to send).
struct Pacer : std::enable_shared_from_this<Pacer> {
  using Step = std::function<void(std::function<void()> done)>;
  std::deque<Step> steps;
  std::size_t running = 0;
  bool pumping = false;
  std::function<void()> finished;

  void pump() {
    if (pumping) return;  // a step answered at once: the loop below goes on
    pumping = true;
    while (running < WebhookClaims::max_in_flight && !steps.empty()) {
      auto step = std::move(steps.front());
      steps.pop_front();
      ++running;
      step([self = shared_from_this()] {
        --self->running;
        self->pump();
      });
    }
    pumping = false;
    if (running == 0 && steps.empty() && finished) std::exchange(finished, {})();
  }
};

}  // namespace

WebhookClaims::WebhookClaims(BrokerRedis& redis, PusherWebhooks& hooks, const std::vector<pusher::App>& apps,
                             std::string prefix)
    : timer_(redis.io()),
      redis_(redis),
      hooks_(hooks),
      apps_(apps),
      prefix_(std::move(prefix)),
      instances_key_(pusher::webhook_instances_key(prefix_)),
      instance_(random_hex(8)) {}

WebhookClaims::~WebhookClaims() { *alive_ = false; }

void WebhookClaims::start() { beat(true); }

void WebhookClaims::occupancy(std::string_view topic, bool occupied) {
  if (!webhook_for(apps_, hooks_, topic, std::nullopt, occupied)) return;
  std::lock_guard lock(mutex_);  // held while claiming: the claims keep this order
  if (occupied ? !occupied_.emplace(topic).second : occupied_.erase(std::string(topic)) == 0) return;
  claim(Entry{std::string(topic), std::nullopt}, occupied);
}

void WebhookClaims::membership(std::string_view topic, std::string_view user, bool joined) {
  Entry e{std::string(topic), std::string(user)};
  if (!webhook_for(apps_, hooks_, e.topic, e.user, joined)) return;
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(e.topic, *e.user);
  auto it = members_.find(key);
  if (joined) {
    if (it != members_.end()) return void(++it->second);
    members_.emplace(std::move(key), 1);
  } else {
    if (it == members_.end() || --it->second > 0) return;
    members_.erase(it);
  }
  claim(e, joined);
}

bool WebhookClaims::held(const Entry& e) const {
  return e.user ? members_.contains({e.topic, *e.user}) : occupied_.contains(e.topic);
}

void WebhookClaims::claim(const Entry& e, bool join, std::function<void()> done) {
  // The instance is registered before it holds anything: a node killed right after its first
  // claim is still swept.
  if (fresh_ && !registering_) send_beat(false);
  const auto index = pusher::webhook_index_key(prefix_, instance_);
  auto entry = e.user ? pusher::member_entry(e.topic, *e.user) : pusher::occupancy_entry(e.topic);
  auto key = e.user ? pusher::member_key(prefix_, e.topic, *e.user) : pusher::occupancy_key(prefix_, e.topic);
  auto alive = alive_;
  // Indexed before the claim is made, unindexed after it is released (unless held again by
  // then): an instance that dies has every claim it holds in its index.
  if (join)
    redis_.key_command(index, {"SADD", index, entry}, [this, alive](const core::RespValue* r) {
      if (*alive && !answered(r)) failed();
    });
  // An earlier attempt of the same change that got no answer may have run: this one then answers
  // for it too.
  const auto earlier = uncertain_.find(entry);
  const bool again = earlier != uncertain_.end() && earlier->second == join;
  redis_.presence_script(
      e.topic, pusher::webhook_claim_script, {std::move(key)}, {instance_, join ? "1" : "0", again ? "1" : "0"},
      [this, alive, e, join, index, entry = std::move(entry), instance = instance_,
       hook = webhook_for(apps_, hooks_, e.topic, e.user, join), done = std::move(done)](const core::RespValue* r) mutable {
        if (!*alive) return;
        if (!answered(r)) {
          std::lock_guard lock(mutex_);
          failed_ = true;
          if (uncertain_.size() < max_uncertain || uncertain_.contains(entry)) uncertain_[std::move(entry)] = join;
        } else {
          // Only the node whose change was the cluster's first join or last leave.
          if (hook && r->kind == Kind::integer && r->integer == 1) hooks_.emit(hook->app, std::move(hook->event));
          std::lock_guard lock(mutex_);  // ordered with a later claim's SADD
          uncertain_.erase(entry);
          if (!join && instance == instance_ && !held(e)) redis_.key_command(index, {"SREM", index, std::move(entry)}, ignore);
        }
        if (done) done();
      });
}

void WebhookClaims::failed() {
  std::lock_guard lock(mutex_);
  failed_ = true;
}

void WebhookClaims::beat(bool scheduled) {
  std::lock_guard lock(mutex_);
  send_beat(scheduled);
}

void WebhookClaims::send_beat(bool scheduled) {
  if (fresh_) registering_ = true;
  std::vector<std::string> argv{"EVAL",
                                pusher::webhook_beat_script,
                                "1",
                                instances_key_,
                                instance_,
                                fresh_ ? "1" : "0",
                                std::to_string(pusher::webhook_instance_ttl_ms),
                                std::to_string(pusher::webhook_sweep_grace_ms),
                                std::to_string(pusher::webhook_sweep_lease_ms),
                                std::to_string(pusher::webhook_sweeps_per_beat)};
  redis_.key_command(instances_key_, std::move(argv),
                     [this, alive = alive_, instance = instance_, scheduled](const core::RespValue* r) {
                       if (*alive) on_beat(r, instance, scheduled);
                     });
}

void WebhookClaims::on_beat(const core::RespValue* r, const std::string& instance, bool scheduled) {
  if (scheduled) {
    timer_.expires_after(beat_interval);
    timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
      if (!ec && *alive) beat(true);
    });
  }
  const bool ok = r && r->kind == Kind::array && r->elements.size() == 2 && r->elements[0].kind == Kind::integer &&
                  r->elements[1].kind == Kind::array;
  // Leased to this node in Redis, whichever instance's beat it was: swept now, not in 30 s.
  if (ok)
    for (const auto& d : r->elements[1].elements) sweep(d.str, {}, true);
  enum class Act { nothing, reconcile, start_over } act = Act::nothing;
  {
    std::lock_guard lock(mutex_);
    if (instance != instance_) return;  // an earlier instance's beat
    if (!ok) {
      registering_ = false;
      // Before the first beat landed nothing is held in Redis: nothing to reconcile.
      if (!fresh_ || !occupied_.empty() || !members_.empty()) failed_ = true;
      return;
    }
    fresh_ = false;
    const auto now = std::chrono::steady_clock::now();
    if (r->elements[0].integer == 1) {
      act = Act::start_over;  // at once: until then the loops claim as a lost instance
      failed_ = false;
    } else if (failed_ && settling_ == 0 && now >= next_settle_) {
      act = Act::reconcile;
      failed_ = false;
      next_settle_ = now + settle_backoff_;
      settle_backoff_ = std::min(settle_backoff_ * 2, max_settle_backoff);
    } else if (!failed_ && settling_ == 0) {
      settle_backoff_ = std::chrono::seconds(1);
    }
    if (act != Act::nothing) ++settling_;
  }
  if (act == Act::reconcile) reconcile();
  if (act == Act::start_over) start_over();
}

void WebhookClaims::reconcile() {
  std::string instance;
  {
    std::lock_guard lock(mutex_);
    instance = instance_;
  }
  spdlog::warn("pusher webhooks: a claim in Redis failed; reconciling this node's channels and members");
  const auto index = pusher::webhook_index_key(prefix_, instance);
  redis_.key_command(index, {"SMEMBERS", index}, [this, alive = alive_, instance](const core::RespValue* r) {
    if (!*alive) return;
    std::vector<Entry> entries;
    std::set<std::string, std::less<>> seen;
    {
      std::lock_guard lock(mutex_);
      if (!r || r->kind != Kind::array) {
        failed_ = true;
        --settling_;
        return;
      }
      for (const auto& t : occupied_)
        if (seen.insert(pusher::occupancy_entry(t)).second) entries.push_back({t, std::nullopt});
      for (const auto& [m, n] : members_)
        if (seen.insert(pusher::member_entry(m.first, m.second)).second) entries.push_back({m.first, m.second});
    }
    for (const auto& element : r->elements) {
      auto e = pusher::parse_index_entry(element.str);
      if (!e || !seen.insert(element.str).second) continue;
      entries.push_back({std::string(e->topic), e->member ? std::optional<std::string>(std::string(e->user)) : std::nullopt});
    }
    settle(std::move(entries), instance, {});
  });
}

void WebhookClaims::start_over() {
  std::vector<Entry> entries;
  std::string instance;
  std::string old;
  {
    std::lock_guard lock(mutex_);
    spdlog::warn("pusher webhooks: this node was taken for gone in Redis; claiming its channels and members again "
                 "as a new instance");
    old = instance_;
    instance_ = random_hex(8);
    uncertain_.clear();  // the new instance's claims are all first attempts
    fresh_ = true;
    registering_ = false;
    send_beat(false);  // registers the new instance before its claims
    instance = instance_;
    for (const auto& t : occupied_) entries.push_back({t, std::nullopt});
    for (const auto& [m, n] : members_) entries.push_back({m.first, m.second});
  }
  // Once what is held is claimed as the new instance, the old one is released: claims it made
  // after a sweeper read its index (or after Redis lost it) are not left behind. Released as a
  // plain leave: a sweeper that leased it answers for the rest.
  auto held_entries = entries;
  settle(std::move(entries), instance, [this, old = std::move(old), held_entries = std::move(held_entries)]() mutable {
    sweep(old, std::move(held_entries), false);
  });
}

// Each entry claimed if held, released if not, as `instance` (idempotent both ways), decided
// when its turn comes: claims made meanwhile by the loops stay in order with these.
void WebhookClaims::settle(std::vector<Entry> entries, const std::string& instance, std::function<void()> then) {
  auto pacer = std::make_shared<Pacer>();
  for (auto& e : entries)
    pacer->steps.push_back([this, alive = alive_, e = std::move(e), instance](std::function<void()> done) {
      if (!*alive) return;
      std::lock_guard lock(mutex_);
      if (instance != instance_) return done();  // started over meanwhile
      claim(e, held(e), std::move(done));
    });
  pacer->finished = [this, alive = alive_, then = std::move(then)] {
    if (!*alive) return;
    {
      std::lock_guard lock(mutex_);
      --settling_;
    }
    if (then) then();
  };
  pacer->pump();
}

void WebhookClaims::sweep(const std::string& dead, std::vector<Entry> also, bool again) {
  const auto index = pusher::webhook_index_key(prefix_, dead);
  redis_.key_command(index, {"SMEMBERS", index}, [this, alive = alive_, dead, index, also = std::move(also),
                                                  again](const core::RespValue* r) mutable {
    // Unanswered: the lease runs out and a node sweeps again.
    if (!*alive || !r || r->kind != Kind::array) return;
    if (!r->elements.empty())
      spdlog::info("pusher webhooks: releasing the {} claims of a node instance that stopped beating",
                   r->elements.size());
    for (const auto& element : r->elements)
      if (auto e = pusher::parse_index_entry(element.str))
        also.push_back({std::string(e->topic), e->member ? std::optional<std::string>(std::string(e->user)) : std::nullopt});
    auto pacer = std::make_shared<Pacer>();
    auto ok = std::make_shared<bool>(true);
    for (auto& entry : also) {
      pacer->steps.push_back([this, alive, ok, dead, again, entry = std::move(entry)](std::function<void()> done) {
        if (!*alive) return;
        auto key = entry.user ? pusher::member_key(prefix_, entry.topic, *entry.user)
                              : pusher::occupancy_key(prefix_, entry.topic);
        // A lease sweep answers for a release that may have run without its answer reaching
        // anyone (the dead node's own, or an earlier sweeper's): at least once.
        redis_.presence_script(
            entry.topic, pusher::webhook_claim_script, {std::move(key)}, {dead, "0", again ? "1" : "0"},
            [this, alive, ok, hook = webhook_for(apps_, hooks_, entry.topic, entry.user, false),
             done = std::move(done)](const core::RespValue* c) mutable {
              if (!*alive) return;
              if (!answered(c)) *ok = false;
              else if (hook && c->kind == Kind::integer && c->integer == 1) hooks_.emit(hook->app, std::move(hook->event));
              done();
            });
      });
    }
    // Released everywhere: the index goes, then the instance (never the other way round).
    pacer->finished = [this, alive, ok, dead, index] {
      if (!*alive || !*ok) return;
      redis_.key_command(index, {"DEL", index}, [this, alive, dead](const core::RespValue* d) {
        if (*alive && answered(d)) redis_.key_command(instances_key_, {"ZREM", instances_key_, dead}, ignore);
      });
    };
    pacer->pump();
  });
}

}  // namespace boundary::realtime::shell
