// The public JWT factory (jwt_verifier.hpp) over the OpenSSL adapter, so that applications and
// tools need no src/ include to verify or mint tokens.

#include "boundary/realtime/jwt_verifier.hpp"

#include <utility>

#include "shell/adapters/jwt_openssl.hpp"

namespace boundary::realtime {

std::unique_ptr<TokenVerifier> make_hmac_verifier(std::string secret) {
  return shell::OpenSslJwtVerifier::from_secret(std::move(secret));
}

std::unique_ptr<TokenVerifier> make_public_key_verifier(std::string_view pem) {
  return shell::OpenSslJwtVerifier::from_public_key_pem(pem);
}

std::string sign_hs256(std::string_view secret, std::string_view claims_json) {
  return shell::sign_hs256(secret, claims_json);
}

}  // namespace boundary::realtime
