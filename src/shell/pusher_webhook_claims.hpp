#pragma once
// Cluster mode's Pusher webhooks (docs/pusher.md "Webhooks", core/pusher_webhook.hpp): one
// webhook per event for the whole cluster. This node claims in Redis each channel it gains the
// first local subscriber of and each presence member it gains the first local connection of, and
// releases them at the last; the claim says whether the change was the cluster's, and only then
// is the webhook sent. A beat every second keeps this node's instance alive in Redis and sweeps
// instances that died holding claims, so a node killed without leaving still has its channels
// vacated and its members removed, once. After a claim or a beat failed, the node reconciles what
// Redis holds for it with what it holds; taken for dead, it starts over as a new instance.
//
// Calls may come from any loop's thread; Redis answers arrive on the broker's thread, where the
// beats, sweeps and reconciliations run. Those send at most max_in_flight commands at a time.

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/steady_timer.hpp>

#include "core/pusher.hpp"

namespace boundary::realtime::core {
struct RespValue;
}  // namespace boundary::realtime::core

namespace boundary::realtime::shell {

class BrokerRedis;
class PusherWebhooks;

class WebhookClaims {
 public:
  // The references must outlive this object; the beats' timer runs on the broker's loop.
  WebhookClaims(BrokerRedis& redis, PusherWebhooks& hooks, const std::vector<core::pusher::App>& apps,
                std::string prefix);
  ~WebhookClaims();
  WebhookClaims(const WebhookClaims&) = delete;
  WebhookClaims& operator=(const WebhookClaims&) = delete;

  void start();  // the first beat now, then one a second
  // A topic's first local subscriber came (occupied) or its last one left (Hub's topic observer).
  void occupancy(std::string_view topic, bool occupied);
  // A user's connection subscribed to or left a topic (the registries' subscription observer):
  // presence channels of apps with a webhook count the user's local connections.
  void membership(std::string_view topic, std::string_view user, bool joined);

  static constexpr std::size_t max_in_flight = 256;  // per sweep or reconciliation

 private:
  // What a claim is about: a channel's occupancy (no user) or a member.
  struct Entry {
    std::string topic;
    std::optional<std::string> user;
  };
  bool held(const Entry& e) const;  // mutex_ held
  // With mutex_ held: claims (join) or releases `e` as instance_; `done` runs on its answer.
  void claim(const Entry& e, bool join, std::function<void()> done = {});
  void beat(bool scheduled);
  void send_beat(bool scheduled);  // mutex_ held
  void on_beat(const core::RespValue* reply, const std::string& instance, bool scheduled);
  void reconcile();   // claims what is held, releases what the index has besides
  void start_over();  // a new instance, claiming what is held
  // Each entry claimed if held, released if not, as `instance`; then `then`.
  void settle(std::vector<Entry> entries, const std::string& instance, std::function<void()> then);
  // Releases the claims of `dead`: its index's entries and `also`; `again`: the releases answer
  // for earlier unanswered ones (a lease sweep). Then deletes its index and its instance.
  void sweep(const std::string& dead, std::vector<Entry> also, bool again);
  void failed();

  boost::asio::steady_timer timer_;
  BrokerRedis& redis_;
  PusherWebhooks& hooks_;
  const std::vector<core::pusher::App>& apps_;
  const std::string prefix_;
  const std::string instances_key_;
  std::mutex mutex_;
  std::string instance_;        // this node in the claims (random; a new one when taken for dead)
  bool fresh_ = true;           // instance_ is not registered yet
  bool registering_ = false;    // a beat registering instance_ is on its way
  bool failed_ = false;         // a claim or a beat failed: reconcile when Redis answers again
  int settling_ = 0;            // reconciliations and start overs running
  // Repeated failures (a shard refusing, an ACL) reconcile at most this often, doubling to 60 s.
  std::chrono::seconds settle_backoff_{1};
  std::chrono::steady_clock::time_point next_settle_{};
  // Index entries whose last claim got no answer (it may or may not have run), up to
  // max_uncertain: their next claim asks Redis to answer for both.
  std::map<std::string, bool, std::less<>> uncertain_;  // entry -> was a join
  static constexpr std::size_t max_uncertain = 100000;
  std::set<std::string, std::less<>> occupied_;                      // topics with local subscribers
  std::map<std::pair<std::string, std::string>, std::size_t> members_;  // (topic, user) -> connections
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace boundary::realtime::shell
