#pragma once
// TokenVerifier adapter on OpenSSL 3. The algorithm is pinned to the configured key:
//  - an HMAC secret accepts HS256, HS384 and HS512 (the secret is symmetric, so the header
//    picks the hash) and nothing else;
//  - a PEM public key accepts RS256/384/512 and PS256/384/512 for RSA keys, ES256/384/512 for
//    EC keys of the matching curve (P-256/P-384/P-521), EdDSA for Ed25519/Ed448 keys.
// `none` is never accepted. HMAC comparison is constant-time (CRYPTO_memcmp).

#include <memory>
#include <string>
#include <string_view>

#include "boundary/realtime/ports/token_verifier.hpp"

namespace boundary::realtime::core {
struct Jwk;
struct ParsedJwt;
}  // namespace boundary::realtime::core

namespace boundary::realtime::shell {

class OpenSslJwtVerifier final : public TokenVerifier {
 public:
  // Throws std::invalid_argument with a clear message: secret shorter than 32 bytes, PEM
  // unreadable or of an unsupported key type.
  static std::unique_ptr<OpenSslJwtVerifier> from_secret(std::string secret);
  static std::unique_ptr<OpenSslJwtVerifier> from_public_key_pem(std::string_view pem);
  // One key of a JWKS (core::parse_jwks checked its shape): accepts the algs the key type allows,
  // narrowed to `key.algs`. Throws std::invalid_argument when OpenSSL refuses the key (an EC
  // point off its curve, for example).
  static std::unique_ptr<OpenSslJwtVerifier> from_jwk(const core::Jwk& key);

  ~OpenSslJwtVerifier() override;
  boost::system::result<Identity, AuthError> verify(std::string_view token,
                                                    std::int64_t now_unix_seconds) const override;
  // verify() for a token already parsed (the JWKS verifier parses once to read `kid`).
  boost::system::result<Identity, AuthError> verify_parsed(const core::ParsedJwt& token,
                                                           std::int64_t now_unix_seconds) const;

 private:
  struct Impl;
  explicit OpenSslJwtVerifier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Signs claims as an HS256 token (the `token` subcommand, tests, benchmarks).
std::string sign_hs256(std::string_view secret, std::string_view claims_json);

}  // namespace boundary::realtime::shell
