#pragma once
// Pusher webhooks (docs/pusher.md "Webhooks"): per app, events gather for a moment and leave as
// one signed POST; a failed request is retried with the same bytes after a growing delay, and the
// queue is bounded (the oldest events are dropped past it, and counted). Runs on one loop's
// io_context; emit() may be called from any thread.

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "core/pusher.hpp"
#include "core/pusher_webhook.hpp"

namespace boost::asio {
class io_context;
}  // namespace boost::asio

namespace boundary::realtime::shell {

struct Metrics;
class HttpClientTls;

class PusherWebhooks {
 public:
  // `apps`: every app (those without a webhook URL are skipped). `node_id` starts batch ids.
  PusherWebhooks(boost::asio::io_context& io, const std::vector<core::pusher::App>& apps, std::string node_id,
                 Metrics& metrics);
  ~PusherWebhooks();
  PusherWebhooks(const PusherWebhooks&) = delete;
  PusherWebhooks& operator=(const PusherWebhooks&) = delete;

  // Whether app `app` has a webhook (emit() is then worth calling).
  bool wants(std::size_t app) const noexcept { return app < queues_.size() && queues_[app] != nullptr; }
  void emit(std::size_t app, core::pusher::WebhookEvent event);

 private:
  struct Queue;
  void add(Queue& q, core::pusher::WebhookEvent event);
  void arm(Queue& q, std::chrono::milliseconds delay);
  void send(Queue& q);
  void answered(Queue& q, bool ok);
  void dropped(Queue& q, std::size_t events);
  static std::size_t event_bytes(const core::pusher::WebhookEvent& e) noexcept;

  boost::asio::io_context& io_;
  std::shared_ptr<const HttpClientTls> tls_;
  std::string batch_prefix_;  // "<node id>-<random>-"
  std::atomic<std::size_t> posted_bytes_{0};  // events posted to the loop, not yet queued
  Metrics& metrics_;
  std::uint64_t batches_ = 0;
  std::vector<std::unique_ptr<Queue>> queues_;  // by app index; null: no webhook
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace boundary::realtime::shell
