#include "shell/metrics.hpp"

#include <fmt/format.h>

namespace boundary::realtime::shell {
namespace {

template <class T>
void emit(std::string& out, const char* name, const char* type, const char* help, const std::atomic<T>& v) {
  fmt::format_to(std::back_inserter(out), "# HELP {0} {1}\n# TYPE {0} {2}\n{0} {3}\n", name, help, type,
                 v.load(std::memory_order_relaxed));
}

}  // namespace

std::string Metrics::render_prometheus() const {
  std::string out;
  out.reserve(4096);
  emit(out, "realtime_connections", "gauge", "Open WebSocket connections.", connections);
  emit(out, "realtime_connections_total", "counter", "WebSocket connections accepted.", connections_total);
  emit(out, "realtime_messages_received_total", "counter", "Text messages received from clients.", messages_received);
  emit(out, "realtime_messages_sent_total", "counter", "Messages handed to connections (one per recipient).", messages_sent);
  emit(out, "realtime_bytes_received_total", "counter", "WebSocket bytes received.", bytes_received);
  emit(out, "realtime_bytes_sent_total", "counter", "WebSocket bytes written.", bytes_sent);
  emit(out, "realtime_dropped_messages_total", "counter", "Queued messages discarded when a connection closed.", dropped_messages);
  emit(out, "realtime_slow_consumer_disconnects_total", "counter", "Connections closed (1008) for exceeding the outbound buffer.", slow_consumer_disconnects);
  emit(out, "realtime_idle_disconnects_total", "counter", "Connections closed after the idle timeout.", idle_disconnects);
  emit(out, "realtime_auth_failures_total", "counter", "Upgrade requests refused with 401.", auth_failures);
  emit(out, "realtime_protocol_errors_total", "counter", "Connections closed for protocol violations.", protocol_errors);
  emit(out, "realtime_command_errors_total", "counter", "Error replies to client commands.", command_errors);
  emit(out, "realtime_rate_limited_total", "counter", "Client commands refused by the rate limit.", rate_limited);
  emit(out, "realtime_api_requests_total", "counter", "HTTP API requests.", api_requests);
  emit(out, "realtime_api_errors_total", "counter", "HTTP API requests answered with an error status.", api_errors);
  emit(out, "realtime_accept_errors_total", "counter", "Failed accepts (for example, out of file descriptors).", accept_errors);
  if (subscribe_proxy) {
    emit(out, "realtime_subscribe_proxy_requests_total", "counter", "Client subscribes put to the subscribe proxy.", subscribe_proxy_requests);
    emit(out, "realtime_subscribe_proxy_allowed_total", "counter", "Subscribes the proxy allowed.", subscribe_proxy_allowed);
    emit(out, "realtime_subscribe_proxy_denied_total", "counter", "Subscribes the proxy answered without allowing.", subscribe_proxy_denied);
    emit(out, "realtime_subscribe_proxy_errors_total", "counter", "Subscribe proxy requests that failed or timed out (refused).", subscribe_proxy_errors);
    emit(out, "realtime_subscribe_proxy_overloaded_total", "counter", "Subscribes refused at once: --proxy-max-in-flight requests were pending.", subscribe_proxy_overloaded);
  }
  if (cluster) {
    emit(out, "realtime_redis_up", "gauge", "1 while this node reaches Redis and its subscriptions are in effect.", redis_up);
    emit(out, "realtime_redis_reconnects_total", "counter", "Attempts to reconnect to Redis after a failure.", redis_reconnects);
    emit(out, "realtime_cluster_reply_timeouts_total", "counter", "Cluster count waits that ended before every node answered.", cluster_reply_timeouts);
  }
  return out;
}

}  // namespace boundary::realtime::shell
