#include "shell/pusher_webhooks.hpp"

#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "core/subscribe_proxy.hpp"
#include "shell/adapters/http_client.hpp"
#include "shell/adapters/random.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace pusher = core::pusher;

struct PusherWebhooks::Queue {
  Queue(asio::io_context& io, const pusher::App& a) : app(a), url(*core::parse_http_url(a.webhook)), timer(io) {}
  const pusher::App& app;
  core::HttpUrl url;
  std::deque<pusher::WebhookEvent> pending;
  std::size_t bytes = 0;             // event_bytes() of `pending`
  std::size_t in_flight_events = 0;  // events of `body`, while a batch is being sent or retried
  std::string body;                  // the batch being sent (kept for its retries)
  std::string signature;
  unsigned failures = 0;
  bool armed = false;                // a send is scheduled
  asio::steady_timer timer;
};

PusherWebhooks::PusherWebhooks(asio::io_context& io, const std::vector<pusher::App>& apps, std::string node_id,
                               Metrics& metrics)
    // A random part per start: a fixed --node-id must not repeat the batch ids of an earlier run.
    : io_(io), batch_prefix_(node_id + "-" + random_hex(4) + "-"), metrics_(metrics) {
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
  // Bounded before anything is posted: events on their way to the webhook loop count too.
  const std::size_t bytes = event_bytes(event);
  if (posted_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes > pusher::max_webhook_queue_bytes) {
    posted_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    return dropped(*queues_[app], 1);
  }
  asio::post(io_, [this, alive = alive_, app, bytes, event = std::move(event)]() mutable {
    if (!*alive) return;
    posted_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    add(*queues_[app], std::move(event));
  });
}

std::size_t PusherWebhooks::event_bytes(const pusher::WebhookEvent& e) noexcept {
  return sizeof(pusher::WebhookEvent) + e.channel.size() + e.user_id.size() + e.event.size() + e.data.size() +
         e.socket_id.size();
}

void PusherWebhooks::dropped(Queue& q, std::size_t events) {
  const auto before = metrics_.webhook_events_dropped.fetch_add(events, std::memory_order_relaxed);
  if (before / 1000 != (before + events) / 1000 || before == 0)
    spdlog::warn("pusher app {}: webhook events dropped (queue full, or a batch given up): {} so far", q.app.id,
                 before + events);
}

void PusherWebhooks::add(Queue& q, pusher::WebhookEvent event) {
  // Bounded by events and bytes: the oldest waiting events go (the batch in flight is kept whole).
  const std::size_t bytes = event_bytes(event);
  while (!q.pending.empty() &&
         (q.pending.size() >= pusher::max_webhook_queue || q.bytes + bytes > pusher::max_webhook_queue_bytes)) {
    q.bytes -= event_bytes(q.pending.front());
    q.pending.pop_front();
    dropped(q, 1);
  }
  q.bytes += bytes;
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
    for (const auto& e : events) q.bytes -= event_bytes(e);
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    q.body = pusher::webhook_body(now, batch_prefix_ + std::to_string(++batches_), events);
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
  call.max_body_bytes = 1 << 20;  // the status decides; a long reply body must not fail a delivered batch
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
    dropped(q, q.in_flight_events);
  }
  q.in_flight_events = 0;
  std::string().swap(q.body);
  if (!q.pending.empty()) arm(q, q.pending.size() >= pusher::max_webhook_batch ? std::chrono::milliseconds(0)
                                                                              : pusher::webhook_gather);
}

}  // namespace boundary::realtime::shell
