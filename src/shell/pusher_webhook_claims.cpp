#include "shell/pusher_webhook_claims.hpp"

#include <chrono>
#include <optional>

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

struct Claimed {
  std::size_t app;
  pusher::WebhookEvent event;
};

// The webhook a claim of `topic` (a member: `user`) would send, if its app has one.
std::optional<Claimed> webhook_for(const std::vector<pusher::App>& apps, const PusherWebhooks& hooks,
                                   std::string_view topic, const std::string_view* user, bool join) {
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

}  // namespace

WebhookClaims::WebhookClaims(boost::asio::io_context& io, BrokerRedis& redis, PusherWebhooks& hooks,
                             const std::vector<pusher::App>& apps, std::string prefix)
    : timer_(io),
      redis_(redis),
      hooks_(hooks),
      apps_(apps),
      prefix_(std::move(prefix)),
      instances_key_(pusher::webhook_instances_key(prefix_)),
      instance_(random_hex(8)) {}

WebhookClaims::~WebhookClaims() { *alive_ = false; }

void WebhookClaims::start() { beat(true); }

void WebhookClaims::occupancy(std::string_view topic, bool occupied) {
  if (!webhook_for(apps_, hooks_, topic, nullptr, occupied)) return;
  std::lock_guard lock(mutex_);  // held while claiming: the claims keep this order
  if (occupied ? !occupied_.emplace(topic).second : occupied_.erase(std::string(topic)) == 0) return;
  claim(std::string(topic), nullptr, occupied);
}

void WebhookClaims::membership(std::string_view topic, std::string_view user, bool joined) {
  if (!webhook_for(apps_, hooks_, topic, &user, joined)) return;
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(std::string(topic), std::string(user));
  auto it = members_.find(key);
  if (joined) {
    if (it != members_.end()) return void(++it->second);
    it = members_.emplace(std::move(key), 1).first;
  } else {
    if (it == members_.end() || --it->second > 0) return;
    members_.erase(it);
  }
  const std::string name(user);
  claim(std::string(topic), &name, joined);
}

void WebhookClaims::claim(const std::string& topic, const std::string* user, bool join) {
  const std::string_view who = user ? std::string_view(*user) : std::string_view();
  auto hook = webhook_for(apps_, hooks_, topic, user ? &who : nullptr, join);
  if (!hook) return;
  // The instance is registered before it holds anything: a node killed right after its first
  // claim is still swept.
  if (fresh_ && !registering_) send_beat(false);
  const auto index = pusher::webhook_index_key(prefix_, instance_);
  auto entry = user ? pusher::member_entry(topic, *user) : pusher::occupancy_entry(topic);
  auto key = user ? pusher::member_key(prefix_, topic, *user) : pusher::occupancy_key(prefix_, topic);
  auto alive = alive_;
  // Indexed before the claim is made, unindexed after it is released: an instance that dies has
  // every claim it holds in its index (at worst an entry more, whose release changes nothing).
  if (join)
    redis_.key_command(index, {"SADD", index, entry}, [this, alive](const core::RespValue* r) {
      if (*alive && !answered(r)) failed();
    });
  redis_.presence_script(
      topic, pusher::webhook_claim_script, {std::move(key)}, {instance_, join ? "1" : "0"},
      [this, alive, join, index, entry = std::move(entry), hook = std::move(*hook)](const core::RespValue* r) mutable {
        if (!*alive) return;
        if (!answered(r)) return failed();
        // Only the node whose change was the cluster's first join or last leave.
        if (r->kind == Kind::integer && r->integer == 1) hooks_.emit(hook.app, std::move(hook.event));
        if (!join) redis_.key_command(index, {"SREM", index, std::move(entry)}, [](const core::RespValue*) {});
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
  std::vector<std::string> argv{"EVAL", pusher::webhook_beat_script, "1", instances_key_};
  argv.insert(argv.end(), {instance_, fresh_ ? "1" : "0", std::to_string(pusher::webhook_instance_ttl_ms),
                           std::to_string(pusher::webhook_sweep_lease_ms)});
  argv.insert(argv.end(), retiring_.begin(), retiring_.end());
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
  std::vector<std::string> dead;
  {
    std::lock_guard lock(mutex_);
    if (!ok) {
      if (instance == instance_) registering_ = false;
      // Before the first beat landed nothing is held in Redis: nothing to start over from.
      if (!fresh_ || !occupied_.empty() || !members_.empty()) failed_ = true;
      return;
    }
    if (instance == instance_) {
      fresh_ = false;
      retiring_.clear();
      if (r->elements[0].integer == 1) failed_ = true;  // declared dead: its claims are being swept
    }
    if (failed_) start_over();
    for (const auto& d : r->elements[1].elements)
      if (d.str != instance_) dead.push_back(d.str);
  }
  for (const auto& d : dead) sweep(d);
}

void WebhookClaims::start_over() {
  spdlog::warn("pusher webhooks: claims in Redis may have missed changes; claiming this node's channels "
               "and members again as a new instance");
  retiring_.push_back(instance_);
  instance_ = random_hex(8);
  fresh_ = true;
  failed_ = false;
  send_beat(false);  // registers the new instance (and retires the old) before its claims
  for (const auto& topic : occupied_) claim(topic, nullptr, true);
  for (const auto& [member, n] : members_) claim(member.first, &member.second, true);
}

void WebhookClaims::sweep(const std::string& dead) {
  const auto index = pusher::webhook_index_key(prefix_, dead);
  redis_.key_command(index, {"SMEMBERS", index}, [this, alive = alive_, dead, index](const core::RespValue* r) {
    // Unanswered: the lease runs out and a node sweeps again.
    if (!*alive || !r || r->kind != Kind::array) return;
    spdlog::info("pusher webhooks: releasing the {} claims of a node instance that stopped beating", r->elements.size());
    struct Progress {
      std::size_t waiting = 1;
      bool ok = true;
    };
    auto progress = std::make_shared<Progress>();
    auto done = [this, alive, progress, dead, index] {
      if (--progress->waiting > 0 || !progress->ok || !*alive) return;
      redis_.key_command(index, {"DEL", index}, [](const core::RespValue*) {});
      redis_.key_command(instances_key_, {"ZREM", instances_key_, dead}, [](const core::RespValue*) {});
    };
    for (const auto& e : r->elements) {
      auto entry = pusher::parse_index_entry(e.str);
      if (!entry) continue;
      auto hook = webhook_for(apps_, hooks_, entry->topic, entry->member ? &entry->user : nullptr, false);
      auto key = entry->member ? pusher::member_key(prefix_, entry->topic, entry->user)
                               : pusher::occupancy_key(prefix_, entry->topic);
      ++progress->waiting;
      redis_.presence_script(std::string(entry->topic), pusher::webhook_claim_script, {std::move(key)}, {dead, "0"},
                             [this, alive, progress, done, hook = std::move(hook)](const core::RespValue* c) mutable {
                               if (!*alive) return;
                               if (!answered(c)) progress->ok = false;
                               else if (hook && c->kind == Kind::integer && c->integer == 1)
                                 hooks_.emit(hook->app, std::move(hook->event));
                               done();
                             });
    }
    done();
  });
}

}  // namespace boundary::realtime::shell
