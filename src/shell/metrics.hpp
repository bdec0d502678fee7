#pragma once
// Process-wide counters, rendered at /metrics in Prometheus text format 0.0.4 or, when the scraper
// asks for it, OpenMetrics 1.0. Relaxed atomics: each counter is updated by the loop that owns the
// event, read only for reporting.

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "boundary/realtime/ports/history_store.hpp"
#include "boundary/realtime/ports/presence_store.hpp"
#include "core/admission.hpp"

namespace boundary::realtime::shell {

struct Metrics {
  std::atomic<std::int64_t> connections{0};             // gauge: open WebSocket connections
  std::atomic<std::uint64_t> connections_total{0};      // accepted upgrades (realtime_connections_accepted_total)
  std::atomic<std::uint64_t> messages_received{0};      // client text messages
  std::atomic<std::uint64_t> messages_sent{0};          // deliveries (one per recipient)
  std::atomic<std::uint64_t> bytes_received{0};
  std::atomic<std::uint64_t> bytes_sent{0};
  std::atomic<std::uint64_t> dropped_messages{0};       // queued messages discarded on close
  std::atomic<std::uint64_t> slow_consumer_disconnects{0};
  std::atomic<std::uint64_t> idle_disconnects{0};
  std::atomic<std::uint64_t> token_expired_disconnects{0};  // closes with 4001
  std::atomic<std::uint64_t> token_refreshes{0};        // accepted `refresh` commands
  std::atomic<std::uint64_t> auth_failures{0};
  // Upgrades answered with an error instead of 101, by core::RefusalReason
  // (realtime_upgrades_refused_total{reason="..."}).
  std::array<std::atomic<std::uint64_t>, core::refusal_reason_count> upgrades_refused{};
  void count_refusal(core::RefusalReason r) noexcept {
    upgrades_refused[static_cast<std::size_t>(r)].fetch_add(1, std::memory_order_relaxed);
  }
  std::atomic<std::uint64_t> handshake_timeouts{0};     // requests not whole within --handshake-timeout
  std::atomic<std::uint64_t> protocol_errors{0};        // closes with 1002/1003/1007/1009
  std::atomic<std::uint64_t> command_errors{0};         // error replies to client commands
  std::atomic<std::uint64_t> rate_limited{0};
  std::atomic<std::uint64_t> api_requests{0};
  std::atomic<std::uint64_t> api_errors{0};             // 4xx/5xx answers on /api/*
  std::atomic<std::uint64_t> accept_errors{0};          // e.g. out of file descriptors
  // --subscribe-policy proxy (always rendered; zero without it).
  std::atomic<std::uint64_t> subscribe_proxy_requests{0};    // questions asked, overloaded included
  std::atomic<std::uint64_t> subscribe_proxy_allowed{0};
  std::atomic<std::uint64_t> subscribe_proxy_denied{0};      // answered, but not 200 {"allow":true}
  std::atomic<std::uint64_t> subscribe_proxy_errors{0};      // unreachable, timed out, unreadable reply
  std::atomic<std::uint64_t> subscribe_proxy_overloaded{0};  // refused at once: --proxy-max-in-flight
  // Cluster mode only (rendered when `cluster` is set, before the loops start).
  bool cluster = false;
  std::atomic<std::int64_t> redis_up{0};                // gauge: 1 while the cluster is reachable
  std::atomic<std::uint64_t> redis_reconnects{0};       // connection attempts after a failure
  std::atomic<std::uint64_t> cluster_reply_timeouts{0}; // waits that ended before every node answered

  // --compression on only (rendered when `compression` is set, before the loops start).
  bool compression = false;
  std::atomic<std::int64_t> compressed_connections{0};  // gauge: open connections that negotiated it
  std::atomic<std::int64_t> inflate_memory_bytes{0};    // gauge: bytes zlib holds for inbound streams

  // --jwt-jwks-url only (rendered when `jwks` is set, before the loops start).
  bool jwks = false;
  std::atomic<std::int64_t> jwks_keys{0};               // gauge: keys in the set in use
  std::atomic<std::uint64_t> jwks_refreshes_ok{0};      // fetches that published a set
  std::atomic<std::uint64_t> jwks_refreshes_error{0};   // failed fetches (the last good set stays)

  // --history only (rendered when set, before the loops start): the store's usage, read at render.
  const HistoryStore* history = nullptr;
  // Cluster mode: stream messages the Redis script did not store (sent without an offset), and
  // attaches / reads Redis did not answer.
  std::atomic<std::uint64_t> history_failures{0};

  // A Pusher app with a webhook (rendered when set): requests answered 2xx, requests that failed
  // (retried or given up), events dropped (queue full, or a batch given up).
  bool webhooks = false;
  std::atomic<std::uint64_t> webhook_requests_ok{0};
  std::atomic<std::uint64_t> webhook_requests_failed{0};
  std::atomic<std::uint64_t> webhook_events_dropped{0};

  // --presence only (rendered when set, before the loops start): the store's usage, read at render.
  const PresenceStore* presence = nullptr;

  std::string render_prometheus() const;
  // Same samples; ends with `# EOF`. A counter's family is named without `_total`, so no family
  // may be another's name plus `_total` (hence realtime_connections_accepted_total).
  std::string render_openmetrics() const;
};

}  // namespace boundary::realtime::shell
