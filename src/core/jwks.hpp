#pragma once
// JSON Web Key Sets (RFC 7517) for --jwt-jwks-url: which keys of a fetched document may verify
// token signatures, and with which algorithms. Pure: the OpenSSL key objects are built by the
// adapter (src/shell/adapters/jwt_openssl.*), the fetching is src/shell/adapters/jwks_source.*.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

namespace boundary::realtime::core {

// Largest JWKS document read; a longer one is refused whole (the last good set stays).
inline constexpr std::size_t max_jwks_bytes = 256 * 1024;
// Most keys taken from one document; the rest are skipped. Identity providers publish a handful
// (the current key, the next one, the one being retired).
inline constexpr std::size_t max_jwks_keys = 64;

enum class JwkType { rsa, ec, okp };

// One usable public key. Byte fields are the decoded base64url values.
struct Jwk {
  std::string kid;
  JwkType type = JwkType::rsa;
  std::string curve;              // EC: "P-256", "P-384", "P-521"; OKP: "Ed25519", "Ed448"
  std::string n, e;               // RSA modulus and exponent, big-endian
  std::string x, y;               // EC coordinates (fixed length for the curve); OKP: x only
  std::vector<std::string> algs;  // the JWS algs this key verifies: its `alg`, or all its type allows
};

struct JwksParse {
  std::vector<Jwk> keys;
  // One line per key that was left out and why ("key 2 (kid 'a'): use is 'enc'"); for logs.
  std::vector<std::string> skipped;
};

// The document must be a JSON object with a `keys` array, at most max_jwks_bytes; otherwise the
// whole document is refused (error text for the log). Each key is then taken or skipped on its
// own, so one odd key does not cost the others:
//  - `kid` is required (tokens choose their key by `kid`) and must be unique in the set: a later
//    key with a `kid` already taken is skipped;
//  - `use`, when present, must be "sig"; `key_ops`, when present, must contain "verify";
//  - kty RSA: `n` of 2048 to 16384 bits, `e`; EC: `crv` P-256/P-384/P-521 with `x` and `y` of
//    the curve's length; OKP: `crv` Ed25519 or Ed448 with `x` of the curve's length;
//  - `alg`, when present, must be one the key type can verify and is then the only one it does
//    (RSA: RS256/384/512, PS256/384/512; EC: the ES alg of its curve; OKP: EdDSA);
//  - private members (`d`, `p`, `q`, ...) make no difference: only the public part is read;
//  - past max_jwks_keys usable keys, the rest are skipped.
boost::system::result<JwksParse, std::string> parse_jwks(std::string_view document);

}  // namespace boundary::realtime::core
