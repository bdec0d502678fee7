#pragma once
// Pusher webhooks (docs/pusher.md "Webhooks"): the events an app's backend is told of, the
// batch's body and signature, and how retries are spaced. Pure: the shell (PusherWebhooks) keeps
// the queues, the timers and the HTTP requests.

#include <chrono>
#include <cstdint>
#include <optional>
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
// header (unused; BrokerRedis::presence_script's convention), then instance, "1" join / "0" leave,
// and "1" when an earlier attempt of the same change failed without an answer (it may have run):
// then the answer is 1 whenever the set is left with this instance alone (join) or empty (leave),
// so a webhook lost with that answer is sent, at least once.
extern const std::string webhook_claim_script;
std::string occupancy_key(std::string_view prefix, std::string_view topic);
std::string member_key(std::string_view prefix, std::string_view topic, std::string_view user);

// Cluster mode, surviving a node that dies without leaving (SIGKILL, a lost machine). Every node
// with webhooks is an instance in the sorted set <prefix>:wn (instance -> deadline, Redis time in
// ms), renewed by webhook_beat_script every second, and keeps the index <prefix>:wx:<instance>
// of the claims it holds (an entry per occupied channel and per present member). An instance
// whose deadline passed webhook_sweep_grace_ms ago is dead: the next beat of any live node leases
// it (its score becomes minus the lease's end, webhook_sweep_lease_ms ahead: one node takes it,
// and a leased instance never passes for live again), and that node
// sweeps it: a leave claim for every entry of its index as that instance, sending the webhooks of
// the claims that were the cluster's last leave, then deletes the index and the instance. A
// sweeper that dies mid-way leaves the lease to run out, and another node sweeps again (leave
// claims are idempotent). The member "last" holds the time of the last beat of any node: after a
// gap longer than a deadline (Redis was away for everyone), every instance gets a new deadline
// rather than being swept for the outage.
//
// A node whose claim or beat failed reconciles when Redis answers again: it claims what it holds
// and releases what its index has that it no longer holds, as the same instance. A node whose
// beat says it was taken by a sweeper (or is unknown: Redis lost its data) starts over as a new
// instance, claims what it holds under it, then releases the old instance's claims itself.
inline constexpr std::int64_t webhook_instance_ttl_ms = 5000;
inline constexpr std::int64_t webhook_sweep_grace_ms = 5000;
inline constexpr std::int64_t webhook_sweep_lease_ms = 30000;
inline constexpr std::size_t webhook_sweeps_per_beat = 16;
std::string webhook_instances_key(std::string_view prefix);                         // <prefix>:wn
std::string webhook_index_key(std::string_view prefix, std::string_view instance);  // <prefix>:wx:<instance>
// KEYS: <prefix>:wn. ARGV: instance, "1" for its first beat (register) else "0", ttl ms, grace
// ms, lease ms, most instances to lease. Returns {lost (1: this instance was taken by a sweeper
// or is unknown; start over as a new one), dead instances now leased to this node}.
extern const std::string webhook_beat_script;
// An index entry: "o<topic>" for a channel's occupancy, "m<topic>\n<user>" for a member (topics
// hold no control characters, so the user cannot move the boundary).
std::string occupancy_entry(std::string_view topic);
std::string member_entry(std::string_view topic, std::string_view user);
struct IndexEntry {
  bool member = false;
  std::string_view topic;
  std::string_view user;
};
std::optional<IndexEntry> parse_index_entry(std::string_view entry) noexcept;

}  // namespace boundary::realtime::core::pusher
