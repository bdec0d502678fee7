#include "core/jwt.hpp"

#include <array>
#include <cmath>
#include <limits>

#include <boost/json/value.hpp>

#include "core/parse_util.hpp"
#include "core/presence.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {

namespace json = boost::json;

namespace {

constexpr std::string_view b64url_alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr std::array<std::int8_t, 256> make_decode_table() {
  std::array<std::int8_t, 256> table{};
  table.fill(-1);
  for (std::size_t i = 0; i < b64url_alphabet.size(); ++i)
    table[static_cast<unsigned char>(b64url_alphabet[i])] = static_cast<std::int8_t>(i);
  return table;
}

constexpr auto b64url_decode_table = make_decode_table();

// Parses `text` as strict JSON and requires an object. A header or payload with a key twice is
// refused: another JWT library reading the same token might take the other value (an `alg`, a
// `sub`), and a token must mean one thing wherever it is read.
std::optional<json::object> parse_object(std::string_view text) {
  auto parsed = parse_strict_json(text);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return std::nullopt;
  return std::move(parsed.value.get_object());
}

std::optional<json::object> decode_json_object(std::string_view segment) {
  auto bytes = base64url_decode(segment);
  if (!bytes) return std::nullopt;
  return parse_object(*bytes);
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// Header rules: RFC 7515 §4.1. `crit` lists extensions we would be required to understand and
// we understand none, so a token carrying it must be refused (§4.1.11).
std::optional<std::string> alg_from_header(const json::object& header) {
  if (header.contains("crit")) return std::nullopt;
  if (const auto* typ = header.if_contains("typ")) {
    if (!typ->is_string() || !iequals(typ->get_string(), "JWT")) return std::nullopt;
  }
  const auto* alg = header.if_contains("alg");
  if (!alg || !alg->is_string()) return std::nullopt;
  return std::string(alg->get_string());
}

// --- claims -----------------------------------------------------------------------------

// A NumericDate (RFC 7519 §2) may be fractional. Rounding up keeps both decisions exact for an
// integer `now`: x <= now  <=>  ceil(x) <= now, and x > now  <=>  ceil(x) > now. Values beyond
// int64 saturate instead of overflowing (a token with exp = 1e300 simply never expires).
std::int64_t saturating_ceil(double d) {
  constexpr double two_pow_63 = 9223372036854775808.0;
  if (d >= two_pow_63) return std::numeric_limits<std::int64_t>::max();
  if (d < -two_pow_63) return std::numeric_limits<std::int64_t>::min();
  return static_cast<std::int64_t>(std::ceil(d));
}

// Absent -> nullopt; present but not a number -> error.
using OptionalDate = boost::system::result<std::optional<std::int64_t>, AuthError>;

OptionalDate numeric_date(const json::object& claims, std::string_view name) {
  const auto* v = claims.if_contains(name);
  if (!v) return std::optional<std::int64_t>{};
  if (v->is_int64()) return std::optional<std::int64_t>{v->get_int64()};
  if (v->is_uint64()) {
    // Only values above INT64_MAX are stored as uint64; saturate them.
    return std::optional<std::int64_t>{std::numeric_limits<std::int64_t>::max()};
  }
  // Boost.JSON 1.81 turns some valid numbers into NaN (e.g. 0e320 as 0 * inf): no time at all.
  if (v->is_double() && !std::isnan(v->get_double()))
    return std::optional<std::int64_t>{saturating_ceil(v->get_double())};
  return AuthError::malformed;
}

using Strings = boost::system::result<std::vector<std::string>, AuthError>;

// Absent -> empty; present but not an array of strings -> error.
Strings string_array(const json::object& claims, std::string_view name) {
  std::vector<std::string> out;
  const auto* v = claims.if_contains(name);
  if (!v) return out;
  if (!v->is_array()) return AuthError::malformed;
  for (const auto& item : v->get_array()) {
    if (!item.is_string()) return AuthError::malformed;
    out.emplace_back(item.get_string());
  }
  return out;
}

// `roles` (array) wins over `role` (Boundary's user module issues a single string). Only the
// claim that is used is type-checked. Empty names grant nothing, so they are dropped.
Strings roles_from(const json::object& claims) {
  std::vector<std::string> roles;
  if (claims.contains("roles")) {
    auto r = string_array(claims, "roles");
    if (!r) return r;
    roles = std::move(*r);
  } else if (const auto* role = claims.if_contains("role")) {
    if (!role->is_string()) return AuthError::malformed;
    roles.emplace_back(role->get_string());
  }
  std::erase_if(roles, [](const std::string& r) { return r.empty(); });
  return roles;
}

// `topics`: subscribe patterns for --subscribe-policy claims. Checked whatever the policy, so a
// token's meaning does not depend on the server's flags. At most max_topic_patterns patterns,
// each a valid topic name (1-256 bytes, no whitespace) and a valid pattern.
Strings topics_from(const json::object& claims) {
  auto topics = string_array(claims, "topics");
  if (!topics) return topics;
  if (topics->size() > max_topic_patterns) return AuthError::malformed;
  for (const auto& p : *topics)
    if (!is_valid_topic(p) || TopicPatterns::invalid(p)) return AuthError::malformed;
  return topics;
}

// A present `user-id` decides, even when unusable: silently falling back to `sub` would let a
// broken issuer hand out a different identity than it meant to.
std::optional<std::string> user_id_from(const json::object& claims) {
  const auto* v = claims.if_contains("user-id");
  if (!v) v = claims.if_contains("sub");
  if (!v) return std::nullopt;
  if (v->is_string() && !v->get_string().empty()) return std::string(v->get_string());
  if (v->is_int64()) return std::to_string(v->get_int64());
  if (v->is_uint64()) return std::to_string(v->get_uint64());
  return std::nullopt;  // floats, bools, null, arrays, objects: not an id
}

// Type-checks every claim we read and fills `id` with all but the user id. Returns `nbf`,
// which the identity does not keep.
OptionalDate check_types(const json::object& claims, Identity& id) {
  auto exp = numeric_date(claims, "exp");
  auto iat = numeric_date(claims, "iat");
  auto nbf = numeric_date(claims, "nbf");
  auto roles = roles_from(claims);
  auto permissions = string_array(claims, "permissions");
  auto topics = topics_from(claims);
  if (!exp || !iat || !nbf || !roles || !permissions || !topics) return AuthError::malformed;
  std::optional<std::string> email;
  if (const auto* e = claims.if_contains("email")) {
    if (!e->is_string()) return AuthError::malformed;
    email = std::string(e->get_string());
  }
  std::optional<std::string> info;
  if (!read_info_claim(claims, info)) return AuthError::malformed;
  id.exp = *exp;
  id.iat = *iat;
  id.roles = std::move(*roles);
  if (email || !permissions->empty() || !topics->empty() || info)
    id.profile = std::make_shared<const ProfileClaims>(
        ProfileClaims{std::move(email), std::move(*permissions), {}, std::move(*topics), std::move(info)});
  return *nbf;
}

}  // namespace

// --- base64url ----------------------------------------------------------------------------

std::string base64url_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out += b64url_alphabet[(n >> shift) & 63];
  }
  const std::size_t rest = bytes.size() - i;
  if (rest == 1) {
    std::uint32_t n = at(i) << 16;
    out += b64url_alphabet[(n >> 18) & 63];
    out += b64url_alphabet[(n >> 12) & 63];
  } else if (rest == 2) {
    std::uint32_t n = (at(i) << 16) | (at(i + 1) << 8);
    out += b64url_alphabet[(n >> 18) & 63];
    out += b64url_alphabet[(n >> 12) & 63];
    out += b64url_alphabet[(n >> 6) & 63];
  }
  return out;
}

// Strict: no padding, no whitespace, and the unused low bits of the last character must be
// zero. The last rule makes the encoding canonical, so every changed character of a signature
// changes the decoded bytes (otherwise "ZZ" and "Za" could decode to the same byte).
std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot make a byte
  std::string out;
  out.reserve(text.size() / 4 * 3 + 2);
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    const int v = b64url_decode_table[static_cast<unsigned char>(c)];
    if (v < 0) return std::nullopt;
    buffer = ((buffer << 6) | static_cast<std::uint32_t>(v)) & 0xFFF;  // at most 12 bits pend
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  if ((buffer & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

// --- JWT ----------------------------------------------------------------------------------

boost::system::result<ParsedJwt, AuthError> parse_jwt(std::string_view token) {
  if (token.empty()) return AuthError::missing;
  if (token.size() > max_token_bytes) return AuthError::malformed;
  const auto dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return AuthError::malformed;
  const auto dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return AuthError::malformed;

  auto header = decode_json_object(token.substr(0, dot1));
  if (!header) return AuthError::malformed;
  auto alg = alg_from_header(*header);
  if (!alg) return AuthError::malformed;
  auto claims = decode_json_object(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!claims) return AuthError::malformed;
  // An empty signature is structurally fine (alg `none`); the verifier refuses it by alg.
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!signature) return AuthError::malformed;

  std::string kid;
  if (const auto* k = header->if_contains("kid"); k && k->is_string()) kid = std::string(k->get_string());
  return ParsedJwt{std::move(*alg), std::move(kid), token.substr(0, dot2), std::move(*signature),
                   std::move(*claims)};
}

boost::system::result<Identity, AuthError> identity_from_claims(const json::object& claims,
                                                                std::int64_t now_unix_seconds) {
  Identity id;
  auto nbf = check_types(claims, id);
  if (!nbf) return nbf.error();
  if (id.exp && *id.exp <= now_unix_seconds) return AuthError::expired;
  if (*nbf && **nbf > now_unix_seconds) return AuthError::not_yet_valid;
  auto user_id = user_id_from(claims);
  if (!user_id) return AuthError::no_user_id;
  id.user_id = std::move(*user_id);
  return id;
}

}  // namespace boundary::realtime::core
