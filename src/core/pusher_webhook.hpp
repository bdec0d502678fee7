#pragma once
// Pusher webhooks (docs/pusher.md "Webhooks"): the events an app's backend is told of, the
// batch's body and signature, and how retries are spaced. Pure: the shell (PusherWebhooks) keeps
// the queues, the timers and the HTTP requests.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace boundary::realtime::core::pusher {

// One event: channel_occupied / channel_vacated {channel}, member_added / member_removed
// {channel, user_id}, client_event {channel, event, data, socket_id[, user_id]}.
struct WebhookEvent {
  std::string name;
  std::string channel;
  std::string user_id;    // member_*; client_event on a presence channel
  std::string event;      // client_event
  std::string data;       // client_event: the data as the client sent it, serialized
  std::string socket_id;  // client_event
};

// {"time_ms":T,"batch_id":"...","events":[...]}: the body of one POST. A retried batch is the
// same bytes (the same batch_id and time_ms), so a receiver can drop a repeat.
std::string webhook_body(std::int64_t time_ms, std::string_view batch_id, const std::vector<WebhookEvent>& events);

// X-Pusher-Signature: the hex HMAC-SHA256 of the body with the app's secret.
std::string webhook_signature(std::string_view secret, std::string_view body);

// Events per request, events waiting per app (past it the oldest are dropped and counted), how
// long events gather before a request, and retries: 1 s after the first failure, doubling up to
// 60 s, at most max_webhook_attempts requests per batch.
inline constexpr std::size_t max_webhook_batch = 100;
inline constexpr std::size_t max_webhook_queue = 10000;
inline constexpr std::size_t max_webhook_queue_bytes = 16 << 20;  // per app, and for events in transit
inline constexpr std::chrono::milliseconds webhook_gather{100};
inline constexpr unsigned max_webhook_attempts = 8;
std::chrono::milliseconds webhook_retry_delay(unsigned failures) noexcept;

// Cluster mode: one webhook per event, not one per node. A channel's occupancy and a presence
// member are each a set of node instances in Redis (in the topic's hash slot); a node adds itself
// when it gains the channel's first local subscriber (the member's first local connection) and
// removes itself at the last. The script answers 1 when that change was the cluster's first join
// or last leave: only then does that node send the event. ARGV: channel, publish command and
// header (unused; BrokerRedis::presence_script's convention), then instance, "1" join / "0" leave.
extern const std::string webhook_claim_script;
std::string occupancy_key(std::string_view prefix, std::string_view topic);
std::string member_key(std::string_view prefix, std::string_view topic, std::string_view user);

}  // namespace boundary::realtime::core::pusher
