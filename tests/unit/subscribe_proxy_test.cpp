#include "core/subscribe_proxy.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>

#include "core/command.hpp"
#include "core/config_check.hpp"
#include "core/jwt.hpp"

using namespace boundary::realtime;
using namespace boundary::realtime::core;

TEST(ProxyReply, OnlyOkWithAllowTrueAllows) {
  EXPECT_TRUE(proxy_reply_allows(200, R"({"allow":true})"));
  EXPECT_TRUE(proxy_reply_allows(200, R"({"allow":true,"cache-seconds":5})"));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":false})"));
  EXPECT_FALSE(proxy_reply_allows(201, R"({"allow":true})"));
  EXPECT_FALSE(proxy_reply_allows(500, R"({"allow":true})"));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":"true"})"));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":1})"));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":tru)"));
  EXPECT_FALSE(proxy_reply_allows(200, R"([true])"));
  EXPECT_FALSE(proxy_reply_allows(200, ""));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":false,"allow":true})"));
  EXPECT_FALSE(proxy_reply_allows(200, R"({"allow":true,"allow":true})"));
  EXPECT_FALSE(proxy_reply_allows(200, std::string(100'000, '[')));
  EXPECT_FALSE(proxy_reply_allows(200, std::string(max_proxy_reply_bytes, ' ') + R"({"allow":true})"));
}

TEST(ProxyRequest, BodyCarriesUserConnectionAndTopic) {
  auto v = boost::json::parse(proxy_request_body("42", "c-1", "order:\"7"));
  EXPECT_EQ(v, boost::json::parse(R"({"user-id":"42","connection-id":"c-1","topic":"order:\"7"})"));
}

TEST(HttpUrl, ParsesHostPortAndTarget) {
  auto u = parse_http_url("http://127.0.0.1:8080/authorize?x=1");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, "8080");
  EXPECT_EQ(u->target, "/authorize?x=1");
  auto d = parse_http_url("http://backend");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->port, "80");
  EXPECT_EQ(d->target, "/");
  auto v6 = parse_http_url("http://[::1]:9/a");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->host, "::1");
}

TEST(HttpUrl, HttpsDefaultsToPort443) {
  auto s = parse_http_url("https://backend/a");
  ASSERT_TRUE(s);
  EXPECT_TRUE(s->tls);
  EXPECT_EQ(s->port, "443");
  EXPECT_EQ(s->target, "/a");
  auto p = parse_http_url("https://backend:8443");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->port, "8443");
  EXPECT_FALSE(parse_http_url("http://backend/")->tls);
}

TEST(HttpUrl, RefusesOtherSchemesAndBadParts) {
  for (auto bad : {"ftp://x/", "http://", "https://", "HTTP://x/", "http://:80/", "http://x:0/", "http://x:65536/", "http://x:/",
                   "http://u@x/", "http://x/a b", "http://::1/"})
    EXPECT_FALSE(parse_http_url(bad)) << bad;
}

TEST(SubscribePolicyConfig, UrlImpliesProxyAndMismatchesAreErrors) {
  Config c;
  EXPECT_EQ(*effective_subscribe_policy(c), SubscribePolicy::open);
  c.subscribe_proxy = "http://x/";
  EXPECT_EQ(*effective_subscribe_policy(c), SubscribePolicy::proxy);
  c.subscribe_policy = "claims";
  EXPECT_FALSE(effective_subscribe_policy(c));
  c.subscribe_policy = "proxy";
  EXPECT_EQ(*effective_subscribe_policy(c), SubscribePolicy::proxy);
  c.subscribe_proxy.clear();
  EXPECT_FALSE(effective_subscribe_policy(c));
  c.subscribe_policy = "nope";
  EXPECT_FALSE(effective_subscribe_policy(c));
}

TEST(SubscribePolicyConfig, ValidateConfigRefusesBadProxySettings) {
  Config c;
  c.api_key = "subscribe-proxy-test-key";
  c.subscribe_proxy = "ftp://x/";
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c.subscribe_proxy = "https://x/";
  EXPECT_NO_THROW(validate_config(c));
  c.subscribe_proxy = "http://x/";
  EXPECT_NO_THROW(validate_config(c));
  c.proxy_timeout = std::chrono::milliseconds(0);
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c.proxy_timeout = std::chrono::milliseconds(2000);
  c.proxy_max_in_flight = 0;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
}

namespace {
Identity with_topics(std::vector<std::string> topics) {
  Identity id{.user_id = "42", .roles = {"staff"}, .exp = {}, .iat = {}, .profile = {}};
  id.profile = std::make_shared<const ProfileClaims>(ProfileClaims{{}, {}, {}, std::move(topics), {}});
  return id;
}
}  // namespace

TEST(ClaimsPolicy, TopicsClaimDecidesOtherTopics) {
  const auto who = with_topics({"order:*", "chat:**"});
  EXPECT_FALSE(check_subscribe(who, "order:7", SubscribePolicy::claims));
  EXPECT_FALSE(check_subscribe(who, "chat:a:b", SubscribePolicy::claims));
  EXPECT_EQ(check_subscribe(who, "order:7:x", SubscribePolicy::claims), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(who, "news", SubscribePolicy::claims), CommandErrorCode::forbidden);
  EXPECT_FALSE(check_subscribe(who, "news", SubscribePolicy::open));
  EXPECT_FALSE(check_subscribe(who, "news", SubscribePolicy::proxy));
}

TEST(ClaimsPolicy, OwnUserAndRoleTopicsStayTheBuiltInRules) {
  const auto who = with_topics({});
  EXPECT_FALSE(check_subscribe(who, "user:42", SubscribePolicy::claims));
  EXPECT_FALSE(check_subscribe(who, "role:staff:x", SubscribePolicy::claims));
  EXPECT_EQ(check_subscribe(who, "user:43", SubscribePolicy::claims), CommandErrorCode::forbidden);
  // A claim cannot open someone else's user topic.
  EXPECT_EQ(check_subscribe(with_topics({"user:*"}), "user:43", SubscribePolicy::claims), CommandErrorCode::forbidden);
}

TEST(ClaimsPolicy, DecideCommandAppliesThePolicy) {
  CommandRules rules{TopicPatterns(), TokenBucketPolicy(0, 1), false, SubscribePolicy::claims};
  auto bucket = TokenBucketPolicy::Clock::time_point::min();
  const auto now = TokenBucketPolicy::Clock::time_point{};
  const auto who = with_topics({"order:*"});
  EXPECT_TRUE(std::holds_alternative<Command>(
      decide_command(R"({"action":"subscribe","topic":"order:1"})", who, rules, bucket, now)));
  auto d = decide_command(R"({"action":"subscribe","topic":"news"})", who, rules, bucket, now);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  EXPECT_EQ(std::get<Refusal>(d).code, CommandErrorCode::forbidden);
}

TEST(JwtTopicsClaim, KeptWhenValid) {
  auto id = identity_from_claims(boost::json::parse(R"({"sub":"1","topics":["a:*","b:**"]})").as_object(), 0);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->topics(), (std::vector<std::string>{"a:*", "b:**"}));
  auto none = identity_from_claims(boost::json::parse(R"({"sub":"1"})").as_object(), 0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->topics().empty());
  EXPECT_EQ(none->profile, nullptr);
}

TEST(JwtTopicsClaim, MalformedClaimRefusesTheToken) {
  std::string many = "[";
  for (std::size_t i = 0; i <= max_topic_patterns; ++i) many += std::string(i ? "," : "") + "\"t\"";
  many += "]";
  for (std::string bad : {std::string(R"("a:*")"), std::string("[1]"), std::string(R"([""])"),
                          std::string(R"(["a:**:b"])"), std::string(R"(["a b"])"),
                          "[\"" + std::string(257, 'a') + "\"]", many, std::string("null")}) {
    auto claims = boost::json::parse(R"({"sub":"1","topics":)" + bad + "}").as_object();
    auto id = identity_from_claims(claims, 0);
    ASSERT_FALSE(id) << bad;
    EXPECT_EQ(id.error(), AuthError::malformed) << bad;
  }
}
