// libFuzzer target for what a JWKS endpoint (--jwt-jwks-url) sends: the document, and the
// Cache-Control header that sets the refresh interval. Besides "never crash", every key the
// parser takes must satisfy what the OpenSSL adapter relies on (a kid, at least one alg, the
// curve's coordinate lengths), and building it may only fail with std::invalid_argument.

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include "core/jwks.hpp"
#include "core/jwks_refresh.hpp"
#include "shell/adapters/jwt_openssl.hpp"

namespace {

using namespace boundary::realtime;

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

std::size_t coordinate_bytes(const std::string& curve) {
  if (curve == "P-256" || curve == "Ed25519") return 32;
  if (curve == "P-384") return 48;
  if (curve == "P-521") return 66;
  if (curve == "Ed448") return 57;
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  (void)core::cache_control_max_age(input);

  auto parsed = core::parse_jwks(input);
  if (!parsed) return 0;
  check(parsed->keys.size() <= core::max_jwks_keys);
  for (const auto& key : parsed->keys) {
    check(!key.kid.empty() && !key.algs.empty());
    if (key.type == core::JwkType::rsa) {
      check(key.n.size() >= 256 && key.n.size() <= 2048 && !key.e.empty());
    } else {
      check(coordinate_bytes(key.curve) == key.x.size());
      check(key.type == core::JwkType::okp ? key.y.empty() : key.y.size() == key.x.size());
    }
    try {
      (void)shell::OpenSslJwtVerifier::from_jwk(key);
    } catch (const std::invalid_argument&) {
    }
  }
  return 0;
}
