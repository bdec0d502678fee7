#pragma once
// Whether this node takes one more WebSocket connection: --max-connections (all connections on
// the node) and --max-connections-per-user. Pure: the shell counts, under its own lock, and
// passes the counts in (shell::Node::admit_connection). Per node, not cluster-wide.

#include <cstddef>
#include <optional>
#include <string_view>

#include "core/http_rules.hpp"

namespace boundary::realtime::core {

struct ConnectionLimits {
  std::size_t max_connections = 0;           // 0 = unlimited
  std::size_t max_connections_per_user = 0;  // 0 = unlimited
};

// Connections already admitted on this node, before the one being decided.
struct ConnectionCounts {
  std::size_t total = 0;
  std::size_t user = 0;  // of the connecting user
};

// Why an upgrade was refused: the label of realtime_upgrades_refused_total and the reason logged.
enum class RefusalReason {
  max_connections, max_connections_per_user, unauthorized, origin, shutting_down, application, bad_request,
};
inline constexpr std::size_t refusal_reason_count = 7;
std::string_view to_string(RefusalReason r) noexcept;

struct AdmissionRefusal {
  RefusalReason reason;
  HttpRefusal http;  // 503 {"error":"too many connections"} or 429 {"error":"too many connections for this user"}
};

// nullopt = admit. The node limit is checked first: when both are reached, the client learns the
// server is full (503, retry later or elsewhere) rather than that it has too many (429).
std::optional<AdmissionRefusal> decide_admission(const ConnectionCounts& counts, const ConnectionLimits& limits);

}  // namespace boundary::realtime::core
