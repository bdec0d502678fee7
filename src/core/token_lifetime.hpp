#pragma once
// Token lifetime: when a connection's token has run out, and whether a `refresh` command's new
// token may take over the connection. Pure: the time and the verifier's answer are passed in.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/identity.hpp"
#include "core/command.hpp"

namespace boundary::realtime::core {

using SystemTime = std::chrono::system_clock::time_point;

// A connection whose token carries `exp` (seconds since the epoch, system clock) is closed with
// 4001 once `now` reaches it: the same instant the verifier starts refusing the token (exp <=
// now). Without `exp` a connection never expires. The caller's sweep interval (at most 1 s) is
// the precision of the close.
constexpr bool token_expired(const std::optional<std::int64_t>& exp, SystemTime now) noexcept {
  if (!exp) return false;
  // A saturated exp (the verifier clamps huge values to int64) must not overflow the
  // conversion: compare in seconds.
  return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() >= *exp;
}

// A `refresh` command's outcome. `verified` is the verifier's answer for the new token at the
// current time. Refused (`forbidden`, the reason in the message) when the token does not verify
// or names another user; then the connection keeps its identity and its old `exp`. Accepted:
// the identity the connection takes on (the new token's user, roles, exp, email and
// permissions), keeping what the application attached at connect time (app_data).
using RefreshDecision = std::variant<Refusal, Identity>;
RefreshDecision decide_refresh(const Identity& current, boost::system::result<Identity, AuthError> verified,
                               const boost::json::value& ref);

// {"type":"refreshed","expires-at":"<ISO 8601 UTC, milliseconds>"} (`null` for a token
// without `exp`), with `ref` when the command carried one.
std::string reply_refreshed(const std::optional<std::int64_t>& exp, const boost::json::value& ref);

}  // namespace boundary::realtime::core
