// The --redis URL with credentials and TLS, its redacted form, and --redis-prefix.
#include "core/redis_target.hpp"

#include <gtest/gtest.h>

using namespace boundary::realtime::core;

TEST(RedisTarget, PlainUrlHasNoCredentialsAndNoTls) {
  auto t = parse_redis_target("redis://cache:6380/2");
  ASSERT_TRUE(t) << t.error();
  EXPECT_FALSE(t->cluster);
  EXPECT_FALSE(t->tls);
  EXPECT_TRUE(t->user.empty());
  EXPECT_TRUE(t->password.empty());
  ASSERT_EQ(t->nodes.size(), 1u);
  EXPECT_EQ(t->nodes[0], (Endpoint{"cache", 6380}));
  EXPECT_EQ(t->db, 2u);
}

TEST(RedisTarget, UserAndPasswordArePercentDecoded) {
  auto t = parse_redis_target("rediss://al%69ce:p%40ss%3Aw%2Fo%25rd@h:6390/1");
  ASSERT_TRUE(t) << t.error();
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->user, "alice");
  EXPECT_EQ(t->password, "p@ss:w/o%rd");
  EXPECT_EQ(t->nodes[0], (Endpoint{"h", 6390}));
  EXPECT_EQ(t->db, 1u);
}

TEST(RedisTarget, PasswordOnlyAndUnencodedSpecialCharacters) {
  auto t = parse_redis_target("redis://:s3cr@t/x@h");
  ASSERT_TRUE(t) << t.error();
  EXPECT_TRUE(t->user.empty());
  EXPECT_EQ(t->password, "s3cr@t/x");  // the credentials end at the last '@'
  EXPECT_EQ(t->nodes[0], (Endpoint{"h", 6379}));
}

TEST(RedisTarget, ClusterSchemesCarryCredentialsAndTls) {
  auto t = parse_redis_target("rediss-cluster://bob:pw@a:7000,b:7001");
  ASSERT_TRUE(t) << t.error();
  EXPECT_TRUE(t->cluster);
  EXPECT_TRUE(t->tls);
  EXPECT_EQ(t->user, "bob");
  EXPECT_EQ(t->password, "pw");
  ASSERT_EQ(t->nodes.size(), 2u);
  EXPECT_EQ(t->nodes[1], (Endpoint{"b", 7001}));
  auto plain = parse_redis_target("redis-cluster://a");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->tls);
}

TEST(RedisTarget, ErrorsNeverContainThePassword) {
  for (const char* bad : {"redis://:topsecret@h:99999", "redis://u:topsecret@", "rediss://:topsecret@h/x",
                          "redis://u:top%zzsecret@h", "redis-cluster://:topsecret@h/0", "http://:topsecret@h"}) {
    auto t = parse_redis_target(bad);
    ASSERT_FALSE(t) << bad;
    EXPECT_EQ(t.error().find("topsecret"), std::string::npos) << t.error();
    EXPECT_EQ(t.error().find("top%zzsecret"), std::string::npos) << t.error();
  }
  auto user_only = parse_redis_target("redis://alice@h");  // the password from a file or the environment
  ASSERT_TRUE(user_only);
  EXPECT_EQ(user_only->user, "alice");
  EXPECT_TRUE(user_only->password.empty());
}

TEST(RedisTarget, RedactionHidesOnlyThePassword) {
  EXPECT_EQ(redact_redis_url("redis://alice:pw@h:6379/0"), "redis://alice:***@h:6379/0");
  EXPECT_EQ(redact_redis_url("rediss://:p@ss@h"), "rediss://:***@h");
  EXPECT_EQ(redact_redis_url("redis-cluster://a:1,b:2"), "redis-cluster://a:1,b:2");
  EXPECT_EQ(redact_redis_url("redis://justasecret@h"), "redis://***@h");
}

TEST(RedisPrefix, AcceptsNamesAndRejectsBracesWhitespaceGlobsAndLength) {
  for (const char* ok : {"rt", "app-1", "eu/west:blue", "a.b_c"}) EXPECT_TRUE(valid_redis_prefix(ok)) << ok;
  for (const char* bad : {"", "{rt}", "r t", "rt\n", "rt*", "rt?", "a[b]", "r}t"})
    EXPECT_FALSE(valid_redis_prefix(bad)) << bad;
  EXPECT_TRUE(valid_redis_prefix(std::string(64, 'a')));
  EXPECT_FALSE(valid_redis_prefix(std::string(65, 'a')));
}
