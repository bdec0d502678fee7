#pragma once
// JWT (RFC 7519, JWS compact form) parsing and claim decisions. Pure: signature checking is
// the adapter's job (src/shell/adapters/jwt_openssl.*), which calls these.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/identity.hpp"

namespace boundary::realtime::core {

// Tokens longer than this are refused as malformed before any decoding (bounded work per
// upgrade request).
inline constexpr std::size_t max_token_bytes = 8192;

// Most patterns a `topics` claim may carry.
inline constexpr std::size_t max_topic_patterns = 64;

struct ParsedJwt {
  std::string alg;                // header `alg`, e.g. "HS256"
  std::string kid;                // header `kid` when it is a string, else empty (JWKS lookup)
  std::string_view signing_input; // "<header>.<payload>" as received (view into the token)
  std::string signature;          // decoded signature bytes
  boost::json::object claims;     // decoded payload
};

// Splits, base64url-decodes (no padding accepted or required), parses header and payload JSON.
// Errors: malformed (anything structurally wrong, including `typ` other than "JWT" when present,
// a `crit` header, or a key twice in the header or the payload).
boost::system::result<ParsedJwt, AuthError> parse_jwt(std::string_view token);

// Claims -> identity, with exp/nbf decided at `now_unix_seconds` (no leeway: the contract says
// expired means expired). exp/nbf/iat must be numbers when present, else malformed; `topics`,
// when present, an array of at most max_topic_patterns valid topic patterns, else malformed.
boost::system::result<Identity, AuthError> identity_from_claims(const boost::json::object& claims,
                                                                std::int64_t now_unix_seconds);

std::string base64url_encode(std::string_view bytes);
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace boundary::realtime::core
