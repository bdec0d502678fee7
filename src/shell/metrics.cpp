#include "shell/metrics.hpp"

#include <fmt/format.h>

namespace boundary::realtime::shell {
namespace {

enum class Format { prometheus, openmetrics };

struct Family {
  const char* name;  // a counter's name without its `_total` suffix
  bool counter;
  const char* help;
};

// Text format 0.0.4 names a counter's family with the suffix; OpenMetrics names it without and
// keeps the suffix on the sample only.
template <class T>
void emit(std::string& out, Format format, const Family& f, const std::atomic<T>& v) {
  const char* type = f.counter ? "counter" : "gauge";
  const char* sample_suffix = f.counter ? "_total" : "";
  const char* family_suffix = format == Format::prometheus ? sample_suffix : "";
  fmt::format_to(std::back_inserter(out), "# HELP {0}{1} {2}\n# TYPE {0}{1} {3}\n{0}{4} {5}\n", f.name,
                 family_suffix, f.help, type, sample_suffix, v.load(std::memory_order_relaxed));
}

// One counter family with a `reason` label, a sample per reason (zeros included, so a rate() has
// a series from the start).
void emit_refusals(std::string& out, Format format, const Metrics& m) {
  const char* family_suffix = format == Format::prometheus ? "_total" : "";
  fmt::format_to(std::back_inserter(out),
                 "# HELP realtime_upgrades_refused{0} WebSocket upgrades refused, by reason.\n"
                 "# TYPE realtime_upgrades_refused{0} counter\n",
                 family_suffix);
  for (std::size_t i = 0; i < core::refusal_reason_count; ++i)
    fmt::format_to(std::back_inserter(out), "realtime_upgrades_refused_total{{reason=\"{}\"}} {}\n",
                   core::to_string(static_cast<core::RefusalReason>(i)),
                   m.upgrades_refused[i].load(std::memory_order_relaxed));
}

// JWKS fetches by outcome: `ok` published a set, `error` kept the last good one.
void emit_jwks_refreshes(std::string& out, Format format, const Metrics& m) {
  const char* family_suffix = format == Format::prometheus ? "_total" : "";
  fmt::format_to(std::back_inserter(out),
                 "# HELP realtime_jwks_refreshes{0} JWKS fetches, by result (error: the last good set stays).\n"
                 "# TYPE realtime_jwks_refreshes{0} counter\n"
                 "realtime_jwks_refreshes_total{{result=\"ok\"}} {1}\n"
                 "realtime_jwks_refreshes_total{{result=\"error\"}} {2}\n",
                 family_suffix, m.jwks_refreshes_ok.load(std::memory_order_relaxed),
                 m.jwks_refreshes_error.load(std::memory_order_relaxed));
}

std::string render(const Metrics& m, Format format) {
  std::string out;
  out.reserve(4096);
  auto counter = [&](const char* name, const char* help, const auto& v) { emit(out, format, {name, true, help}, v); };
  auto gauge = [&](const char* name, const char* help, const auto& v) { emit(out, format, {name, false, help}, v); };
  gauge("realtime_connections", "Open WebSocket connections.", m.connections);
  counter("realtime_connections_accepted", "WebSocket connections accepted.", m.connections_total);
  counter("realtime_messages_received", "Text messages received from clients.", m.messages_received);
  counter("realtime_messages_sent", "Messages handed to connections (one per recipient).", m.messages_sent);
  counter("realtime_bytes_received", "WebSocket bytes received.", m.bytes_received);
  counter("realtime_bytes_sent", "WebSocket bytes written.", m.bytes_sent);
  counter("realtime_dropped_messages", "Queued messages discarded when a connection closed.", m.dropped_messages);
  counter("realtime_slow_consumer_disconnects", "Connections closed (1008) for exceeding the outbound buffer.",
          m.slow_consumer_disconnects);
  counter("realtime_idle_disconnects", "Connections closed after the idle timeout.", m.idle_disconnects);
  counter("realtime_token_expired_disconnects", "Connections closed (4001) when their token expired.",
          m.token_expired_disconnects);
  counter("realtime_token_refreshes", "Tokens replaced by a refresh command (refused ones count as command errors).",
          m.token_refreshes);
  counter("realtime_auth_failures", "Upgrade requests refused with 401.", m.auth_failures);
  emit_refusals(out, format, m);
  counter("realtime_handshake_timeouts", "HTTP requests (the upgrade or any other) not whole within --handshake-timeout.",
          m.handshake_timeouts);
  counter("realtime_protocol_errors", "Connections closed for protocol violations.", m.protocol_errors);
  counter("realtime_command_errors", "Error replies to client commands.", m.command_errors);
  counter("realtime_rate_limited", "Client commands refused by the rate limit.", m.rate_limited);
  counter("realtime_api_requests", "HTTP API requests.", m.api_requests);
  counter("realtime_api_errors", "HTTP API requests answered with an error status.", m.api_errors);
  counter("realtime_accept_errors", "Failed accepts (for example, out of file descriptors).", m.accept_errors);
  // Always present (zero without --subscribe-proxy), so dashboards and alerts need no special case.
  counter("realtime_subscribe_proxy_requests", "Client subscribes put to the subscribe proxy.", m.subscribe_proxy_requests);
  counter("realtime_subscribe_proxy_allowed", "Subscribes the proxy allowed.", m.subscribe_proxy_allowed);
  counter("realtime_subscribe_proxy_denied", "Subscribes the proxy answered without allowing.", m.subscribe_proxy_denied);
  counter("realtime_subscribe_proxy_errors", "Subscribe proxy requests that failed or timed out (refused).",
          m.subscribe_proxy_errors);
  counter("realtime_subscribe_proxy_overloaded",
          "Subscribes refused at once: --proxy-max-in-flight requests were pending.", m.subscribe_proxy_overloaded);
  if (m.cluster) {
    gauge("realtime_redis_up", "1 while this node reaches Redis and its subscriptions are in effect.", m.redis_up);
    counter("realtime_redis_reconnects", "Attempts to reconnect to Redis after a failure.", m.redis_reconnects);
    counter("realtime_cluster_reply_timeouts", "Cluster count waits that ended before every node answered.",
            m.cluster_reply_timeouts);
  }
  if (m.webhooks) {
    counter("realtime_pusher_webhook_requests_ok", "Pusher webhook requests answered 2xx.", m.webhook_requests_ok);
    counter("realtime_pusher_webhook_requests_failed", "Pusher webhook requests that failed (retried or given up).",
            m.webhook_requests_failed);
    counter("realtime_pusher_webhook_events_dropped",
            "Pusher webhook events dropped: the queue was full, or their batch failed every attempt.",
            m.webhook_events_dropped);
  }
  if (m.compression) {
    gauge("realtime_compressed_connections", "Open connections that negotiated permessage-deflate.",
          m.compressed_connections);
    gauge("realtime_inflate_memory_bytes",
          "Bytes held by inflate streams: one per loop, and one per connection whose client keeps its window.",
          m.inflate_memory_bytes);
  }
  if (m.history && m.history->delivers()) {
    counter("realtime_history_failures",
            "Stream messages, recoveries and history reads Redis did not answer (sent without offset, recovered:false).",
            m.history_failures);
  } else if (m.history) {
    const HistoryUsage u = m.history->usage();
    const std::atomic<std::uint64_t> streams{u.streams}, messages{u.messages}, bytes{u.bytes},
        evictions{u.evictions}, expirations{u.expirations};
    gauge("realtime_history_streams", "Topics with history kept (--history).", streams);
    gauge("realtime_history_messages", "Messages kept in history.", messages);
    gauge("realtime_history_bytes", "Bytes accounted to history (bounded by --history-max-bytes).", bytes);
    counter("realtime_history_evictions", "Streams dropped whole because --history-max-bytes was reached.", evictions);
    counter("realtime_history_expirations", "Streams dropped whole because their newest message's TTL passed.",
            expirations);
  }
  if (m.presence) {
    const PresenceUsage u = m.presence->usage();
    const std::atomic<std::uint64_t> topics{u.topics}, users{u.users};
    gauge("realtime_presence_topics", "Topics with presence (--presence) where anyone is present.", topics);
    gauge("realtime_presence_users", "Users present, summed over topics (a user on two topics counts twice).", users);
  }
  if (m.jwks) {
    gauge("realtime_jwks_keys", "Keys in the JWKS in use (--jwt-jwks-url); 0 until the first good fetch.", m.jwks_keys);
    emit_jwks_refreshes(out, format, m);
  }
  if (format == Format::openmetrics) out += "# EOF\n";
  return out;
}

}  // namespace

std::string Metrics::render_prometheus() const { return render(*this, Format::prometheus); }

std::string Metrics::render_openmetrics() const { return render(*this, Format::openmetrics); }

}  // namespace boundary::realtime::shell
