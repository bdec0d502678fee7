#pragma once
// Who a connection belongs to, as decided from its token's claims.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boundary::realtime {

// A connection's roles: an immutable list, interned, so that connections with the same roles
// (most of them) share one copy. 8 bytes per connection and no allocation of its own (a
// std::vector<std::string> took 24 bytes and a heap block per connection). It reads like a
// const std::vector<std::string> (and converts to one); build it from a vector or a braced list.
// Copies share the list (an atomic count); safe to copy and destroy on any thread.
class Roles {
 public:
  using value_type = std::string;
  using size_type = std::size_t;
  using const_iterator = const std::string*;
  using iterator = const_iterator;
  using const_reference = const std::string&;
  using reference = const_reference;

  Roles() noexcept = default;
  Roles(std::vector<std::string> roles);  // NOLINT(google-explicit-constructor): reads like one
  Roles(std::initializer_list<std::string> roles) : Roles(std::vector<std::string>(roles)) {}
  Roles(const Roles& other) noexcept : list_(other.list_) { retain(); }
  Roles(Roles&& other) noexcept : list_(std::exchange(other.list_, nullptr)) {}
  Roles& operator=(const Roles& other) noexcept {
    Roles copy(other);
    std::swap(list_, copy.list_);
    return *this;
  }
  Roles& operator=(Roles&& other) noexcept {
    std::swap(list_, other.list_);
    return *this;
  }
  ~Roles() { release(); }

  const std::vector<std::string>& list() const noexcept;
  operator const std::vector<std::string>&() const noexcept { return list(); }  // NOLINT

  const_iterator begin() const noexcept { return list().data(); }
  const_iterator end() const noexcept { return list().data() + list().size(); }
  std::size_t size() const noexcept { return list().size(); }
  bool empty() const noexcept { return list_ == nullptr; }
  const std::string& operator[](std::size_t i) const noexcept { return list()[i]; }

  // Interned: equal lists share one block.
  friend bool operator==(const Roles& a, const Roles& b) noexcept { return a.list_ == b.list_; }
  friend bool operator==(const Roles& a, const std::vector<std::string>& b) { return a.list() == b; }

  // How many distinct role lists are interned now (tests).
  static std::size_t interned_count();

  struct List;  // opaque

 private:
  void retain() const noexcept;
  void release() noexcept;

  const List* list_ = nullptr;  // null: no roles
};

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
  Roles roles;                       // `roles` (array), else `role` (one string); may be empty
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
