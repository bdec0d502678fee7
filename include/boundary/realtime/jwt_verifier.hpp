#pragma once
// The server's JWT verifier (OpenSSL 3), for applications that embed the server. The algorithm
// is pinned to the configured key: an HMAC secret accepts HS256/384/512 only; a PEM public key
// accepts RS256/384/512 and PS256/384/512 (RSA), ES256/384/512 (EC, matching curve), EdDSA
// (Ed25519/Ed448). `none` is never accepted; HMAC comparison is constant-time.

#include <memory>
#include <string>
#include <string_view>

#include "boundary/realtime/ports/token_verifier.hpp"

namespace boundary::realtime {

// Throws std::invalid_argument with a clear message: a secret shorter than 32 bytes, a PEM that
// is unreadable or of an unsupported key type.
std::unique_ptr<TokenVerifier> make_hmac_verifier(std::string secret);
std::unique_ptr<TokenVerifier> make_public_key_verifier(std::string_view pem);

// Signs claims (a JSON object's text) as an HS256 token: for tests, tools and dev setups.
std::string sign_hs256(std::string_view secret, std::string_view claims_json);

}  // namespace boundary::realtime
