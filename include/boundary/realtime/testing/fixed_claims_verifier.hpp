#pragma once
// Test adapter for the TokenVerifier port: a fixed table from token strings to outcomes, so
// application tests need no keys or signing. Like every verifier it honours time through `now`
// only: an accepted Identity whose `exp` is set is refused as expired once `now >= exp`, which
// lets tests drive expiry with ManualClock.
//
// Outcomes: an empty token is AuthError::missing; a token not in the table is
// AuthError::bad_signature (an unknown token is as good as a forged one).
// Thread-safe for concurrent verify() calls once the table is filled; accept() and refuse()
// are for setup, before the verifier is shared.

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "boundary/realtime/ports/token_verifier.hpp"

namespace boundary::realtime::testing {

class FixedClaimsVerifier final : public TokenVerifier {
 public:
  FixedClaimsVerifier& accept(std::string token, Identity identity) {
    table_.insert_or_assign(std::move(token), Outcome(std::move(identity)));
    return *this;
  }

  FixedClaimsVerifier& refuse(std::string token, AuthError error) {
    table_.insert_or_assign(std::move(token), Outcome(error));
    return *this;
  }

  boost::system::result<Identity, AuthError> verify(std::string_view token,
                                                    std::int64_t now_unix_seconds) const override {
    last_now_.store(now_unix_seconds, std::memory_order_relaxed);
    calls_.fetch_add(1, std::memory_order_relaxed);
    if (token.empty()) return AuthError::missing;
    auto it = table_.find(token);
    if (it == table_.end()) return AuthError::bad_signature;
    if (const auto* error = std::get_if<AuthError>(&it->second)) return *error;
    const auto& identity = std::get<Identity>(it->second);
    if (identity.exp && now_unix_seconds >= *identity.exp) return AuthError::expired;
    return identity;
  }

  // The `now` of the latest verify() call, so tests can check which time a service passed.
  std::int64_t last_now() const noexcept { return last_now_.load(std::memory_order_relaxed); }
  std::size_t calls() const noexcept { return calls_.load(std::memory_order_relaxed); }

 private:
  using Outcome = std::variant<Identity, AuthError>;
  std::map<std::string, Outcome, std::less<>> table_;
  mutable std::atomic<std::int64_t> last_now_{0};
  mutable std::atomic<std::size_t> calls_{0};
};

}  // namespace boundary::realtime::testing
