#include "core/token_lifetime.hpp"

#include <memory>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "core/command.hpp"

namespace boundary::realtime::core {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// The refresh command: parsed and rate-limited like every other command

using Clock = TokenBucketPolicy::Clock;
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

Identity person(std::string id, std::vector<std::string> roles = {}, std::optional<std::int64_t> exp = {}) {
  Identity who;
  who.user_id = std::move(id);
  who.roles = std::move(roles);
  who.exp = exp;
  return who;
}

TEST(ParseCommand, RefreshCarriesItsToken) {
  auto r = parse_command(R"({"action":"refresh","token":"a.b.c","ref":3})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::refresh);
  EXPECT_EQ(r->token, "a.b.c");
  EXPECT_EQ(r->ref, json::value(3));
}

TEST(ParseCommand, RefreshWithoutAStringTokenIsBadRequest) {
  for (auto text : {R"({"action":"refresh","ref":"r"})", R"({"action":"refresh","token":42,"ref":"r"})",
                    R"({"action":"refresh","token":"","ref":"r"})"}) {
    auto r = parse_command(text);
    ASSERT_FALSE(r.has_value()) << text;
    EXPECT_EQ(r.error().code, CommandErrorCode::bad_request) << text;
    EXPECT_EQ(r.error().message, "missing field: token") << text;
    EXPECT_EQ(r.error().ref, json::value("r")) << text;
  }
}

TEST(DecideCommand, RefreshPassesToTheShellToVerify) {
  auto bucket = Clock::time_point::min();
  const CommandRules rules{TopicPatterns(std::vector<std::string>{}), TokenBucketPolicy(0, 1), false};
  auto d = decide_command(R"({"action":"refresh","token":"t"})", person("alice"), rules, bucket, t0);
  ASSERT_TRUE(std::holds_alternative<Command>(d));
  EXPECT_EQ(std::get<Command>(d).action, Action::refresh);
}

TEST(DecideCommand, RefreshIsRateLimited) {
  auto bucket = Clock::time_point::min();
  const CommandRules rules{TopicPatterns(std::vector<std::string>{}), TokenBucketPolicy(1, 1), false};
  const auto who = person("alice");
  EXPECT_TRUE(std::holds_alternative<Command>(decide_command(R"({"action":"ping"})", who, rules, bucket, t0)));
  auto d = decide_command(R"({"action":"refresh","token":"t","ref":1})", who, rules, bucket, t0);
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  EXPECT_EQ(std::get<Refusal>(d).code, CommandErrorCode::rate_limited);
}

// ---------------------------------------------------------------------------------------------
// Expiry

SystemTime at(std::int64_t seconds, std::chrono::milliseconds extra = 0ms) {
  return SystemTime(std::chrono::seconds(seconds)) + extra;
}

TEST(TokenExpired, OpenUntilExpThenClosedFromThatInstant) {
  const std::optional<std::int64_t> exp = 1'000;
  EXPECT_FALSE(token_expired(exp, at(999)));
  EXPECT_FALSE(token_expired(exp, at(999, 999ms)));
  EXPECT_TRUE(token_expired(exp, at(1'000)));
  EXPECT_TRUE(token_expired(exp, at(5'000)));
}

TEST(TokenExpired, TokenWithoutExpNeverExpires) {
  EXPECT_FALSE(token_expired(std::nullopt, at(0)));
  EXPECT_FALSE(token_expired(std::nullopt, SystemTime::max()));
}

TEST(TokenExpired, SaturatedExpDoesNotOverflow) {
  EXPECT_FALSE(token_expired(std::numeric_limits<std::int64_t>::max(), SystemTime::max()));
}

// ---------------------------------------------------------------------------------------------
// decide_refresh

Refusal refusal_of(const RefreshDecision& d) {
  EXPECT_TRUE(std::holds_alternative<Refusal>(d));
  return std::holds_alternative<Refusal>(d) ? std::get<Refusal>(d) : Refusal{};
}

TEST(DecideRefresh, SameUserTakesTheNewRolesClaimsAndExp) {
  auto next = person("alice", {"admin"}, 2'000);
  next.profile = std::make_shared<ProfileClaims>(ProfileClaims{"a@example.com", {"read"}, {}, {}, {}});
  auto d = decide_refresh(person("alice", {"user"}, 1'000), next, json::value(nullptr));
  ASSERT_TRUE(std::holds_alternative<Identity>(d));
  const auto& id = std::get<Identity>(d);
  EXPECT_EQ(id.roles, (std::vector<std::string>{"admin"}));
  EXPECT_EQ(id.exp, 2'000);
  EXPECT_EQ(id.email(), "a@example.com");
  EXPECT_EQ(id.permissions(), (std::vector<std::string>{"read"}));
}

TEST(DecideRefresh, AnotherUsersTokenIsForbidden) {
  auto r = refusal_of(decide_refresh(person("alice"), person("bob"), json::value("x")));
  EXPECT_EQ(r.code, CommandErrorCode::forbidden);
  EXPECT_EQ(json::parse(r.reply), json::parse(
      R"({"type":"error","code":"forbidden","message":"token is for another user","ref":"x"})"));
}

TEST(DecideRefresh, ATokenThatFailsVerificationIsForbiddenWithTheReason) {
  for (auto e : {AuthError::bad_signature, AuthError::expired, AuthError::malformed, AuthError::wrong_algorithm}) {
    auto r = refusal_of(decide_refresh(person("alice"), e, json::value(nullptr)));
    EXPECT_EQ(r.code, CommandErrorCode::forbidden);
    auto reply = json::parse(r.reply).as_object();
    EXPECT_EQ(reply.at("code"), "forbidden");
    EXPECT_EQ(reply.at("message").as_string(), "token refused: " + std::string(to_string(e)));
    EXPECT_FALSE(reply.contains("ref"));
  }
}

TEST(DecideRefresh, KeepsWhatTheApplicationAttachedAtConnect) {
  auto current = person("alice");
  auto data = std::make_shared<int>(7);
  current.profile = std::make_shared<ProfileClaims>(ProfileClaims{{}, {}, data, {}, {}});
  auto next = person("alice");
  next.profile = std::make_shared<ProfileClaims>(ProfileClaims{"new@example.com", {}, {}, {}, {}});
  auto d = decide_refresh(current, next, json::value(nullptr));
  ASSERT_TRUE(std::holds_alternative<Identity>(d));
  const auto& id = std::get<Identity>(d);
  EXPECT_EQ(id.app_data(), data);
  EXPECT_EQ(id.email(), "new@example.com");
  // Without claims in the new token the attached data is still kept.
  auto bare = decide_refresh(current, person("alice"), json::value(nullptr));
  ASSERT_TRUE(std::holds_alternative<Identity>(bare));
  EXPECT_EQ(std::get<Identity>(bare).app_data(), data);
  EXPECT_FALSE(std::get<Identity>(bare).email());
}

TEST(Replies, RefreshedCarriesTheNewExpiryAsAnIsoTime) {
  EXPECT_EQ(json::parse(reply_refreshed(1'735'732'800, json::value(5))), json::parse(
      R"({"type":"refreshed","expires-at":"2025-01-01T12:00:00.000Z","ref":5})"));
}

TEST(Replies, RefreshedWithoutExpIsNull) {
  EXPECT_EQ(json::parse(reply_refreshed(std::nullopt, json::value(nullptr))), json::parse(
      R"({"type":"refreshed","expires-at":null})"));
}

TEST(Replies, RefreshedWithASaturatedExpStaysAValidTimestamp) {
  auto reply = json::parse(reply_refreshed(std::numeric_limits<std::int64_t>::max(), json::value(nullptr)));
  EXPECT_EQ(reply.as_object().at("expires-at"), "2262-04-11T23:47:16.000Z");
}

}  // namespace
}  // namespace boundary::realtime::core
