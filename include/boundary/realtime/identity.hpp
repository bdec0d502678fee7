#pragma once
// Who a connection belongs to, as decided from its token's claims.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace boundary::realtime {

struct Identity {
  std::string user_id;               // `user-id` claim, else `sub`; numbers become strings
  std::vector<std::string> roles;    // `roles` (array), else `role` (one string); may be empty
  std::optional<std::string> email;  // `email`, when present
  std::vector<std::string> permissions;  // `permissions`, when present
  std::optional<std::int64_t> exp;   // seconds since the epoch
  std::optional<std::int64_t> iat;

  bool has_role(std::string_view role) const {
    for (const auto& r : roles)
      if (r == role) return true;
    return false;
  }
};

}  // namespace boundary::realtime
