#include "core/admission.hpp"

namespace boundary::realtime::core {

std::string_view to_string(RefusalReason r) noexcept {
  switch (r) {
    case RefusalReason::max_connections: return "max-connections";
    case RefusalReason::max_connections_per_user: return "max-connections-per-user";
    case RefusalReason::unauthorized: return "unauthorized";
    case RefusalReason::origin: return "origin";
    case RefusalReason::shutting_down: return "shutting-down";
    case RefusalReason::application: return "application";
    case RefusalReason::bad_request: return "bad-request";
  }
  return "unknown";
}

std::optional<AdmissionRefusal> decide_admission(const ConnectionCounts& counts, const ConnectionLimits& limits) {
  if (limits.max_connections != 0 && counts.total >= limits.max_connections)
    return AdmissionRefusal{RefusalReason::max_connections, HttpRefusal{503, error_body("too many connections")}};
  if (limits.max_connections_per_user != 0 && counts.user >= limits.max_connections_per_user)
    return AdmissionRefusal{RefusalReason::max_connections_per_user,
                            HttpRefusal{429, error_body("too many connections for this user")}};
  return std::nullopt;
}

}  // namespace boundary::realtime::core
