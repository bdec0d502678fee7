#pragma once
// Who a connection belongs to, as decided from its token's claims.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boundary::realtime {

// Claims kept on the connection that routing does not use, and what the application attached
// to it (Hooks::on_connect).
struct ProfileClaims {
  std::optional<std::string> email;      // `email`, when present
  std::vector<std::string> permissions;  // `permissions`, when present
  std::shared_ptr<const void> app_data;  // ConnectDecision::app_data
  std::vector<std::string> topics;       // `topics`: subscribe patterns (--subscribe-policy claims)
  std::optional<std::string> info;       // `info`: a JSON object (serialized, at most 1 KiB) shown in presence
};

// Every connection keeps one of these for its lifetime, so the rarely present claims and the
// application's data sit behind one shared, immutable pointer: 16 bytes per connection instead
// of 80 when absent.
struct Identity {
  std::string user_id;               // `user-id` claim, else `sub`; numbers become strings
  std::vector<std::string> roles;    // `roles` (array), else `role` (one string); may be empty
  std::optional<std::int64_t> exp;   // seconds since the epoch
  std::optional<std::int64_t> iat;
  std::shared_ptr<const ProfileClaims> profile;  // null when the token has none of these claims

  const std::optional<std::string>& email() const noexcept {
    static const std::optional<std::string> none;
    return profile ? profile->email : none;
  }
  const std::vector<std::string>& permissions() const noexcept {
    static const std::vector<std::string> none;
    return profile ? profile->permissions : none;
  }

  const std::vector<std::string>& topics() const noexcept {
    static const std::vector<std::string> none;
    return profile ? profile->topics : none;
  }

  // The `info` claim, serialized, sharing the profile's storage; null when the token has none.
  std::shared_ptr<const std::string> info() const {
    if (!profile || !profile->info) return nullptr;
    return std::shared_ptr<const std::string>(profile, &*profile->info);
  }

  // What Hooks::on_connect attached (null when nothing was): cast it back with
  // std::static_pointer_cast<const YourType>.
  const std::shared_ptr<const void>& app_data() const noexcept {
    static const std::shared_ptr<const void> none;
    return profile ? profile->app_data : none;
  }

  bool has_role(std::string_view role) const {
    for (const auto& r : roles)
      if (r == role) return true;
    return false;
  }
};

}  // namespace boundary::realtime
