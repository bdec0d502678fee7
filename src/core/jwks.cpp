#include "core/jwks.hpp"
#include "core/parse_util.hpp"

#include <algorithm>
#include <optional>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "core/jwt.hpp"

namespace boundary::realtime::core {

namespace json = boost::json;

namespace {

// RSA below 2048 bits is refused, as for a PEM key; above 16384 bits a signature check costs
// too much per upgrade for a key anyone would really use.
constexpr std::size_t min_rsa_modulus_bytes = 256;
constexpr std::size_t max_rsa_modulus_bytes = 2048;
constexpr std::size_t max_rsa_exponent_bytes = 16;

struct Curve {
  std::string_view name;
  JwkType type;
  std::size_t coordinate_bytes;
  std::string_view alg;
};

constexpr Curve curves[] = {
    {"P-256", JwkType::ec, 32, "ES256"},
    {"P-384", JwkType::ec, 48, "ES384"},
    {"P-521", JwkType::ec, 66, "ES512"},
    {"Ed25519", JwkType::okp, 32, "EdDSA"},
    {"Ed448", JwkType::okp, 57, "EdDSA"},
};

const std::vector<std::string> rsa_algs = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"};

using Reason = std::optional<std::string>;  // why a key is skipped; nullopt = taken

const json::string* string_member(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  return v && v->is_string() ? &v->get_string() : nullptr;
}

// A base64url member, decoded; nullopt when absent, not a string or not base64url.
std::optional<std::string> bytes_member(const json::object& o, std::string_view name) {
  const auto* s = string_member(o, name);
  if (!s) return std::nullopt;
  return base64url_decode(*s);
}

Reason check_usage(const json::object& o) {
  if (const auto* use = o.if_contains("use")) {
    if (!use->is_string()) return "use is not a string";
    if (use->get_string() != "sig") return "use is '" + std::string(use->get_string().subview().substr(0, 16)) + "', not 'sig'";
  }
  if (const auto* ops = o.if_contains("key_ops")) {
    if (!ops->is_array()) return "key_ops is not an array";
    const auto& a = ops->get_array();
    const bool verify = std::any_of(a.begin(), a.end(), [](const json::value& v) {
      return v.is_string() && v.get_string() == "verify";
    });
    if (!verify) return "key_ops does not contain 'verify'";
  }
  return std::nullopt;
}

std::string_view strip_leading_zeros(std::string_view bytes) {
  while (!bytes.empty() && bytes.front() == '\0') bytes.remove_prefix(1);
  return bytes;
}

Reason read_rsa(const json::object& o, Jwk& key) {
  auto n = bytes_member(o, "n");
  auto e = bytes_member(o, "e");
  if (!n || !e) return "RSA key needs base64url 'n' and 'e'";
  const auto modulus = strip_leading_zeros(*n);
  if (modulus.size() < min_rsa_modulus_bytes) return "RSA key is shorter than 2048 bits";
  if (modulus.size() > max_rsa_modulus_bytes) return "RSA key is longer than 16384 bits";
  const auto exponent = strip_leading_zeros(*e);
  if (exponent.empty() || exponent.size() > max_rsa_exponent_bytes) return "RSA exponent out of range";
  key.type = JwkType::rsa;
  key.n = std::string(modulus);
  key.e = std::string(exponent);
  key.algs = rsa_algs;
  return std::nullopt;
}

Reason read_curve_key(const json::object& o, JwkType type, Jwk& key) {
  const auto* crv = string_member(o, "crv");
  if (!crv) return "missing 'crv'";
  const Curve* curve = nullptr;
  for (const auto& c : curves)
    if (c.type == type && c.name == *crv) curve = &c;
  if (!curve) return "unsupported curve '" + std::string(crv->subview().substr(0, 16)) + "'";
  auto x = bytes_member(o, "x");
  if (!x || x->size() != curve->coordinate_bytes) return "'x' is not a " + std::string(curve->name) + " coordinate";
  if (type == JwkType::ec) {
    auto y = bytes_member(o, "y");
    if (!y || y->size() != curve->coordinate_bytes) return "'y' is not a " + std::string(curve->name) + " coordinate";
    key.y = std::move(*y);
  }
  key.type = type;
  key.curve = std::string(curve->name);
  key.x = std::move(*x);
  key.algs = {std::string(curve->alg)};
  return std::nullopt;
}

Reason read_key(const json::object& o, Jwk& key) {
  const auto* kid = string_member(o, "kid");
  if (!kid || kid->empty()) return "no kid";
  key.kid = std::string(*kid);
  if (auto r = check_usage(o)) return r;
  const auto* kty = string_member(o, "kty");
  if (!kty) return "missing 'kty'";
  Reason r;
  if (*kty == "RSA") r = read_rsa(o, key);
  else if (*kty == "EC") r = read_curve_key(o, JwkType::ec, key);
  else if (*kty == "OKP") r = read_curve_key(o, JwkType::okp, key);
  else return "unsupported kty '" + std::string(kty->subview().substr(0, 16)) + "'";
  if (r) return r;
  if (const auto* alg = o.if_contains("alg")) {
    if (!alg->is_string()) return "alg is not a string";
    const std::string_view name = alg->get_string();
    if (std::find(key.algs.begin(), key.algs.end(), name) == key.algs.end())
      return "alg '" + std::string(name.substr(0, 16)) + "' does not fit the key";
    key.algs = {std::string(name)};
  }
  return std::nullopt;
}

// For the log line: the kid as given, shortened, or the key's position.
std::string describe(std::size_t index, const json::value& v) {
  std::string out = "key " + std::to_string(index);
  if (v.is_object())
    if (const auto* kid = string_member(v.get_object(), "kid"))
      out += " (kid '" + std::string(kid->subview().substr(0, 64)) + "')";
  return out;
}

}  // namespace

boost::system::result<JwksParse, std::string> parse_jwks(std::string_view document) {
  using Result = boost::system::result<JwksParse, std::string>;
  if (document.size() > max_jwks_bytes)
    return Result(boost::system::in_place_error, "document larger than " + std::to_string(max_jwks_bytes) + " bytes");
  // Strict and depth-bounded; a key twice (two "keys", two "n" in one key) is refused, not guessed at.
  auto strict = parse_strict_json(document);
  if (strict.problem == JsonProblem::duplicate_key)
    return Result(boost::system::in_place_error, "a JSON key appears twice");
  const json::value& v = strict.value;
  if (strict.problem != JsonProblem::none || !v.is_object())
    return Result(boost::system::in_place_error, "not a JSON object");
  const auto* keys = v.get_object().if_contains("keys");
  if (!keys || !keys->is_array()) return Result(boost::system::in_place_error, "no 'keys' array");
  JwksParse out;
  std::size_t index = 0;
  for (const auto& item : keys->get_array()) {
    const std::size_t i = index++;
    if (out.keys.size() == max_jwks_keys) {
      out.skipped.push_back(describe(i, item) + ": more than " + std::to_string(max_jwks_keys) + " keys");
      continue;
    }
    if (!item.is_object()) {
      out.skipped.push_back(describe(i, item) + ": not an object");
      continue;
    }
    Jwk key;
    if (auto why = read_key(item.get_object(), key)) {
      out.skipped.push_back(describe(i, item) + ": " + *why);
      continue;
    }
    const bool taken = std::any_of(out.keys.begin(), out.keys.end(), [&](const Jwk& k) { return k.kid == key.kid; });
    if (taken) {
      out.skipped.push_back(describe(i, item) + ": kid already used by an earlier key");
      continue;
    }
    out.keys.push_back(std::move(key));
  }
  return out;
}

}  // namespace boundary::realtime::core
