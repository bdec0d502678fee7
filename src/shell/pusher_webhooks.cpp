#include "shell/pusher_webhooks.hpp"

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "core/subscribe_proxy.hpp"
#include "shell/adapters/http_client.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace pusher = core::pusher;

struct PusherWebhooks::Queue {
  Queue(asio::io_context& io, const pusher::App& a) : app(a), url(*core::parse_http_url(a.webhook)), timer(io) {}
  const pusher::App& app;
  core::HttpUrl url;
  std::deque<pusher::WebhookEvent> pending;
  std::size_t in_flight_events = 0;  // events of `body`, while a batch is being sent or retried
  std::string body;                  // the batch being sent (kept for its retries)
  std::string signature;
  unsigned failures = 0;
  bool armed = false;                // a send is scheduled
  asio::steady_timer timer;
};

PusherWebhooks::PusherWebhooks(asio::io_context& io, const std::vector<pusher::App>& apps, std::string node_id,
                               Metrics& metrics)
    : io_(io), node_id_(std::move(node_id)), metrics_(metrics) {
  bool https = false;
  for (const auto& app : apps) {
    if (app.webhook.empty()) {
      queues_.push_back(nullptr);
      continue;
    }
    queues_.push_back(std::make_unique<Queue>(io, app));
    https = https || queues_.back()->url.tls;
  }
  if (https) tls_ = make_http_client_tls({});
}

PusherWebhooks::~PusherWebhooks() { *alive_ = false; }

void PusherWebhooks::emit(std::size_t app, pusher::WebhookEvent event) {
  if (!wants(app)) return;
  asio::post(io_, [this, alive = alive_, app, event = std::move(event)]() mutable {
    if (*alive) add(*queues_[app], std::move(event));
  });
}

void PusherWebhooks::add(Queue& q, pusher::WebhookEvent event) {
  if (q.pending.size() >= pusher::max_webhook_queue) {
    // Bounded: the oldest waiting event goes (the batch in flight is kept whole).
    q.pending.pop_front();
    if (metrics_.webhook_events_dropped.fetch_add(1, std::memory_order_relaxed) % 1000 == 0)
      spdlog::warn("pusher app {}: webhook queue full ({} events), dropping the oldest", q.app.id, q.pending.size());
  }
  q.pending.push_back(std::move(event));
  if (q.in_flight_events == 0 && !q.armed) arm(q, pusher::webhook_gather);
}

void PusherWebhooks::arm(Queue& q, std::chrono::milliseconds delay) {
  q.armed = true;
  q.timer.expires_after(delay);
  q.timer.async_wait([this, alive = alive_, &q](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    q.armed = false;
    send(q);
  });
}

void PusherWebhooks::send(Queue& q) {
  if (q.in_flight_events == 0) {
    if (q.pending.empty()) return;
    const std::size_t n = std::min(q.pending.size(), pusher::max_webhook_batch);
    std::vector<pusher::WebhookEvent> events(std::make_move_iterator(q.pending.begin()),
                                             std::make_move_iterator(q.pending.begin() + static_cast<std::ptrdiff_t>(n)));
    q.pending.erase(q.pending.begin(), q.pending.begin() + static_cast<std::ptrdiff_t>(n));
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    q.body = pusher::webhook_body(now, node_id_ + "-" + std::to_string(++batches_), events);
    q.signature = pusher::webhook_signature(q.app.secret, q.body);
    q.in_flight_events = n;
    q.failures = 0;
  }
  HttpCall call;
  call.url = q.url;
  call.post = true;
  call.body = q.body;
  call.headers = {{"X-Pusher-Key", q.app.key}, {"X-Pusher-Signature", q.signature}};
  call.timeout = std::chrono::milliseconds(5000);
  http_call(io_, tls_, std::move(call), [this, alive = alive_, &q](boost::system::result<HttpReply, std::string> r) {
    if (!*alive) return;
    const bool ok = r && r->status >= 200 && r->status < 300;
    if (!ok) spdlog::warn("pusher app {}: webhook request failed: {}", q.app.id, r ? "HTTP " + std::to_string(r->status) : r.error());
    answered(q, ok);
  });
}

void PusherWebhooks::answered(Queue& q, bool ok) {
  if (ok) {
    metrics_.webhook_requests_ok.fetch_add(1, std::memory_order_relaxed);
  } else {
    metrics_.webhook_requests_failed.fetch_add(1, std::memory_order_relaxed);
    if (++q.failures < pusher::max_webhook_attempts) return arm(q, pusher::webhook_retry_delay(q.failures));
    spdlog::error("pusher app {}: webhook batch given up after {} attempts ({} events dropped)", q.app.id, q.failures,
                  q.in_flight_events);
    metrics_.webhook_events_dropped.fetch_add(q.in_flight_events, std::memory_order_relaxed);
  }
  q.in_flight_events = 0;
  std::string().swap(q.body);
  if (!q.pending.empty()) arm(q, q.pending.size() >= pusher::max_webhook_batch ? std::chrono::milliseconds(0)
                                                                              : pusher::webhook_gather);
}

}  // namespace boundary::realtime::shell
