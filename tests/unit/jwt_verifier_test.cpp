// The public JWT factory (jwt_verifier.hpp): the same OpenSSL verifier as jwt_test.cpp covers
// in depth, reached without any src/ include.

#include "boundary/realtime/jwt_verifier.hpp"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace boundary::realtime {
namespace {

constexpr std::int64_t now = 1'700'000'000;
const std::string secret = "0123456789abcdef0123456789abcdef";  // exactly 32 bytes

TEST(JwtVerifierFactory, HmacVerifierAcceptsWhatSignHs256Signs) {
  const auto verifier = make_hmac_verifier(secret);
  auto who = verifier->verify(sign_hs256(secret, R"({"user-id":"42","roles":["admin"],"exp":1700003600})"), now);
  ASSERT_TRUE(who.has_value());
  EXPECT_EQ(who->user_id, "42");
  EXPECT_TRUE(who->has_role("admin"));
}

TEST(JwtVerifierFactory, HmacVerifierRefusesAnotherSecretsToken) {
  const auto verifier = make_hmac_verifier(secret);
  auto forged = verifier->verify(sign_hs256(std::string(32, 'x'), R"({"sub":"42"})"), now);
  ASSERT_FALSE(forged.has_value());
  EXPECT_EQ(forged.error(), AuthError::bad_signature);
}

TEST(JwtVerifierFactory, UnusableKeysThrowInvalidArgument) {
  EXPECT_THROW(make_hmac_verifier(std::string(31, 'k')), std::invalid_argument);
  EXPECT_THROW(make_public_key_verifier("not a PEM"), std::invalid_argument);
}

TEST(JwtVerifierFactory, PublicKeyVerifierRefusesHmacTokens) {
  // An Ed25519 public key (RFC 8032 test vector 1): pins EdDSA, so HS256 is the wrong algorithm.
  const auto verifier = make_public_key_verifier(
      "-----BEGIN PUBLIC KEY-----\n"
      "MCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n"
      "-----END PUBLIC KEY-----\n");
  auto r = verifier->verify(sign_hs256(secret, R"({"sub":"42"})"), now);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), AuthError::wrong_algorithm);
}

}  // namespace
}  // namespace boundary::realtime
