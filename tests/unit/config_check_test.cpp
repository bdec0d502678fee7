#include "core/config_check.hpp"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {

Config valid() {
  Config c;
  c.api_key = "0123456789abcdef";
  return c;
}

// The message of validate_config's refusal, or "" when it accepts.
std::string refusal(const Config& c) {
  try {
    validate_config(c);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return {};
}

TEST(ValidateConfig, DefaultsAreValid) {
  EXPECT_EQ(refusal(valid()), "");
  EXPECT_EQ(valid().max_connections, 0u);
  EXPECT_EQ(valid().max_connections_per_user, 0u);
  EXPECT_EQ(valid().handshake_timeout, std::chrono::seconds(10));
}

TEST(ValidateConfig, TlsNeedsBothFilesOrNeither) {
  auto c = valid();
  c.tls_cert_file = "cert.pem";
  EXPECT_EQ(refusal(c), "--tls-key: --tls-cert was given without a private key");
  c.tls_cert_file.clear();
  c.tls_key_file = "key.pem";
  EXPECT_EQ(refusal(c), "--tls-cert: --tls-key was given without a certificate");
  c.tls_cert_file = "cert.pem";
  EXPECT_EQ(refusal(c), "");  // the files themselves are read when the server is built
}

TEST(ValidateConfig, ConnectionLimitsMayBeSet) {
  auto c = valid();
  c.max_connections = 100;
  c.max_connections_per_user = 100;
  EXPECT_EQ(refusal(c), "");
  c.max_connections = 0;  // unlimited node, limited users
  c.max_connections_per_user = 5;
  EXPECT_EQ(refusal(c), "");
}

TEST(ValidateConfig, PerUserLimitAboveNodeLimitIsRefused) {
  auto c = valid();
  c.max_connections = 10;
  c.max_connections_per_user = 11;
  EXPECT_EQ(refusal(c).rfind("--max-connections-per-user:", 0), 0u) << refusal(c);
}

TEST(ValidateConfig, ConnectionLimitsHaveACeiling) {
  auto c = valid();
  c.max_connections = 100000001;
  EXPECT_EQ(refusal(c).rfind("--max-connections:", 0), 0u) << refusal(c);
}

TEST(ValidateConfig, HandshakeTimeoutIsOneSecondToAnHour) {
  auto c = valid();
  c.handshake_timeout = std::chrono::seconds(0);
  EXPECT_EQ(refusal(c).rfind("--handshake-timeout:", 0), 0u) << refusal(c);
  c.handshake_timeout = std::chrono::seconds(3601);
  EXPECT_EQ(refusal(c).rfind("--handshake-timeout:", 0), 0u) << refusal(c);
  c.handshake_timeout = std::chrono::seconds(1);
  EXPECT_EQ(refusal(c), "");
  c.handshake_timeout = std::chrono::seconds(3600);
  EXPECT_EQ(refusal(c), "");
}

TEST(ValidateConfig, RedisPrefixIsValidated) {
  auto c = valid();
  EXPECT_EQ(c.redis_prefix, "rt");
  c.redis_prefix = "blue:eu";
  EXPECT_EQ(refusal(c), "");
  for (const char* bad : {"", "{rt}", "a b", "rt*"}) {
    c.redis_prefix = bad;
    EXPECT_EQ(refusal(c).rfind("--redis-prefix:", 0), 0u) << bad;
  }
}

TEST(ValidateConfig, RedisTlsOptionsNeedARedissUrl) {
  auto c = valid();
  c.redis_url = "redis://h";
  c.redis_tls_ca = "ca.pem";
  EXPECT_NE(refusal(c).find("rediss://"), std::string::npos) << refusal(c);
  c.redis_url = "rediss://h";
  EXPECT_EQ(refusal(c), "");
  c.redis_tls_cert = "client.pem";
  EXPECT_NE(refusal(c).find("go together"), std::string::npos) << refusal(c);
}

TEST(ValidateConfig, RedisUserNeedsAPasswordFromSomewhere) {
  auto c = valid();
  c.redis_url = "redis://alice@h";
  EXPECT_NE(refusal(c).find("needs a password"), std::string::npos) << refusal(c);
  c.redis_password = "from-the-file";
  EXPECT_EQ(refusal(c), "");
}

TEST(ValidateConfig, ABadRedisUrlErrorDoesNotShowThePassword) {
  auto c = valid();
  c.redis_url = "redis://u:topsecret@h:0";
  EXPECT_EQ(refusal(c).rfind("--redis:", 0), 0u);
  EXPECT_EQ(refusal(c).find("topsecret"), std::string::npos) << refusal(c);
}

TEST(ValidateConfig, ShortApiKeyIsRefused) {
  auto c = valid();
  c.api_key = "short";
  EXPECT_EQ(refusal(c).rfind("--api-key:", 0), 0u) << refusal(c);
}

TEST(ValidateConfig, OneKeySourceAtMost) {
  Config c = valid();
  c.jwt_jwks_url = "https://idp.example/jwks.json";
  EXPECT_EQ(refusal(c), "");
  c.jwt_secret = std::string(32, 's');
  EXPECT_NE(refusal(c).find("only one of"), std::string::npos);
  c.jwt_jwks_url.clear();
  c.jwt_public_key_file = "key.pem";
  EXPECT_NE(refusal(c).find("only one of"), std::string::npos);
}

TEST(ValidateConfig, JwksUrlIsHttpOrHttpsAndItsCaNeedsHttps) {
  Config c = valid();
  c.jwt_jwks_url = "ftp://idp.example/jwks.json";
  EXPECT_NE(refusal(c).find("--jwt-jwks-url"), std::string::npos);
  c.jwt_jwks_url = "http://idp.example/jwks.json";
  EXPECT_EQ(refusal(c), "");
  c.jwt_jwks_ca_file = "ca.pem";
  EXPECT_NE(refusal(c).find("only used with an https"), std::string::npos);
  c.jwt_jwks_url = "https://idp.example/jwks.json";
  EXPECT_EQ(refusal(c), "");
  c.jwt_jwks_url.clear();
  EXPECT_NE(refusal(c).find("only used with --jwt-jwks-url"), std::string::npos);
}

}  // namespace
}  // namespace boundary::realtime::core
