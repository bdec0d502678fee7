#pragma once
// Error enums that map one-to-one to the protocol's error and close codes (docs/protocol.md).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <boost/assert/source_location.hpp>

namespace boundary::realtime {

// Why a token was refused. Every value answers the upgrade with 401 {"error":"Unauthorized"};
// the distinction exists for logs and metrics, never for the client.
enum class AuthError {
  missing,          // no token in the query or Authorization header
  malformed,        // not three base64url parts, bad JSON, wrong claim types, too large
  wrong_algorithm,  // header `alg` is not the configured key's (and never `none`)
  bad_signature,
  expired,          // `exp` <= now
  not_yet_valid,    // `nbf` > now
  no_user_id,       // neither `user-id` nor `sub`
  unknown_key,      // JWKS: no key in the set for the token's `kid` (or no set fetched yet)
};

std::string_view to_string(AuthError e) noexcept;

// Error replies to client commands; the connection stays open.
enum class CommandErrorCode {
  bad_request,            // not JSON, not an object, unknown action, missing field
  invalid_topic,
  forbidden,
  rate_limited,
  too_many_subscriptions,
};

std::string_view to_string(CommandErrorCode e) noexcept;  // "bad-request", ...

// Close codes the server sends: RFC 6455's, and 4001 from the application range.
enum class CloseCode : std::uint16_t {
  normal = 1000,
  going_away = 1001,         // graceful shutdown
  protocol_error = 1002,     // framing errors
  unsupported_data = 1003,   // binary frame
  invalid_payload = 1007,    // invalid UTF-8 in a text frame
  policy_violation = 1008,   // slow consumer, idle timeout
  message_too_big = 1009,    // inbound message over --max-message-bytes
  internal_error = 1011,
  service_restart = 1012,    // a stream's messages were lost on their way to this node: reconnect and recover
  token_expired = 4001,      // the token's `exp` passed without a refresh (application range)
};

// Lets boost::system::result<T, AuthError>::value() throw (it looks this up by ADL).
[[noreturn]] inline void throw_exception_from_error(AuthError e, const boost::source_location&) {
  throw std::runtime_error(std::string(to_string(e)));
}

}  // namespace boundary::realtime
