#pragma once
// Cluster mode's Pusher webhooks (docs/pusher.md "Webhooks", core/pusher_webhook.hpp): one
// webhook per event for the whole cluster. This node claims in Redis each channel it gains the
// first local subscriber of and each presence member it gains the first local connection of, and
// releases them at the last; the claim says whether the change was the cluster's, and only then
// is the webhook sent. A beat every second keeps this node's instance alive in Redis and sweeps
// instances that died holding claims, so a node killed without leaving still has its channels
// vacated and its members removed, once. After Redis was unreachable (a claim or a beat failed),
// the node starts over as a new instance and claims what it holds again.
//
// Calls may come from any loop's thread; Redis answers arrive on the broker's thread.

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
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
  // `io`: the broker's loop (the beats' timer). The references must outlive this object.
  WebhookClaims(boost::asio::io_context& io, BrokerRedis& redis, PusherWebhooks& hooks,
                const std::vector<core::pusher::App>& apps, std::string prefix);
  ~WebhookClaims();
  WebhookClaims(const WebhookClaims&) = delete;
  WebhookClaims& operator=(const WebhookClaims&) = delete;

  void start();  // the first beat now, then one a second
  // A topic's first local subscriber came (occupied) or its last one left (Hub's topic observer).
  void occupancy(std::string_view topic, bool occupied);
  // A user's connection subscribed to or left a topic (the registries' subscription observer):
  // presence channels of apps with a webhook count the user's local connections.
  void membership(std::string_view topic, std::string_view user, bool joined);

 private:
  // With mutex_ held: the claim of `topic` (member: `user`'s membership) as instance_.
  void claim(const std::string& topic, const std::string* user, bool join);
  void beat(bool scheduled);
  void send_beat(bool scheduled);  // mutex_ held
  void on_beat(const core::RespValue* reply, const std::string& instance, bool scheduled);
  void start_over();  // mutex_ held
  void sweep(const std::string& dead);
  void failed();

  boost::asio::steady_timer timer_;
  BrokerRedis& redis_;
  PusherWebhooks& hooks_;
  const std::vector<core::pusher::App>& apps_;
  const std::string prefix_;
  const std::string instances_key_;
  std::mutex mutex_;
  std::string instance_;               // this node in the claims (random; a new one after a failure)
  bool fresh_ = true;                  // instance_ is not registered yet: the next beat does it
  bool registering_ = false;           // a beat registering instance_ is on its way
  bool failed_ = false;                // a claim or a beat failed: start over at the next good beat
  std::vector<std::string> retiring_;  // earlier instances, retired by the next good beat
  std::set<std::string, std::less<>> occupied_;                      // topics with local subscribers
  std::map<std::pair<std::string, std::string>, std::size_t> members_;  // (topic, user) -> connections
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace boundary::realtime::shell
