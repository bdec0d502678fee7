#pragma once
// When the server pings, closes or gives up on a connection. Pure: times are passed in.

#include <chrono>
#include <cstddef>

namespace boundary::realtime::core {

using SteadyTime = std::chrono::steady_clock::time_point;

// Liveness. A connection silent for half the idle timeout is pinged once; one still silent at
// the full timeout, whose ping has had half the timeout to be answered, is closed (1008). The
// second condition makes the outcome independent of how often the caller checks: a live client
// always gets its ping and half a timeout to answer it.
enum class IdleAction { none, ping, close };
struct Liveness {
  SteadyTime last_activity;      // anything received
  bool ping_outstanding = false;
  SteadyTime ping_sent_at;       // meaningful while ping_outstanding
};
constexpr IdleAction idle_action(const Liveness& l, SteadyTime now, std::chrono::seconds idle_timeout) noexcept {
  const auto silent = now - l.last_activity;
  if (silent >= idle_timeout && l.ping_outstanding && now - l.ping_sent_at >= idle_timeout / 2)
    return IdleAction::close;
  if (silent >= idle_timeout / 2 && !l.ping_outstanding) return IdleAction::ping;
  return IdleAction::none;
}

// Slow consumers. A frame is queued only while everything queued for the connection, with it,
// stays within --max-outbound-bytes; otherwise the connection is closed (1008) rather than
// allowed to grow (a slow reader, or a client sending commands without reading the replies).
constexpr bool fits_outbound(std::size_t queued_bytes, std::size_t frame_bytes, std::size_t max_outbound_bytes) noexcept {
  return frame_bytes <= max_outbound_bytes && queued_bytes <= max_outbound_bytes - frame_bytes;
}

}  // namespace boundary::realtime::core
