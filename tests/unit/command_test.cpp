#include "core/command.hpp"

#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {
namespace json = boost::json;

CommandError error_of(std::string_view text) {
  auto r = parse_command(text);
  EXPECT_FALSE(r.has_value()) << text;
  return r ? CommandError{} : r.error();
}

void expect_error(std::string_view text, CommandErrorCode code) {
  auto e = error_of(text);
  EXPECT_EQ(e.code, code) << text;
  EXPECT_FALSE(e.message.empty()) << text;
}

// ---------------------------------------------------------------------------------------------
// Valid commands

TEST(ParseCommand, Subscribe) {
  auto r = parse_command(R"({"action":"subscribe","topic":"order:123"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::subscribe);
  EXPECT_EQ(r->topic, "order:123");
  EXPECT_TRUE(r->ref.is_null());
}

TEST(ParseCommand, Unsubscribe) {
  auto r = parse_command(R"({"action":"unsubscribe","topic":"order:123","ref":"r1"})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::unsubscribe);
  EXPECT_EQ(r->topic, "order:123");
  EXPECT_EQ(r->ref, json::value("r1"));
}

TEST(ParseCommand, PublishKeepsTheMessageObject) {
  auto r = parse_command(R"({"action":"publish","topic":"chat:general","message":{"type":"chat","text":"hi","n":[1,2]}})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::publish);
  EXPECT_EQ(r->topic, "chat:general");
  EXPECT_EQ(json::value(r->message), json::parse(R"({"type":"chat","text":"hi","n":[1,2]})"));
}

TEST(ParseCommand, PingNeedsNoTopic) {
  auto r = parse_command(R"({"action":"ping","ref":7})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::ping);
  EXPECT_EQ(r->ref, json::value(7));
}

TEST(ParseCommand, UnknownFieldsAreIgnored) {
  auto r = parse_command(R"({"action":"subscribe","topic":"t","extra":{"x":1}})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->topic, "t");
}

// ---------------------------------------------------------------------------------------------
// Errors: every code and its message

TEST(ParseCommand, NotJsonIsBadRequest) {
  expect_error("", CommandErrorCode::bad_request);
  expect_error("subscribe order:1", CommandErrorCode::bad_request);
  expect_error(R"({"action":"ping")", CommandErrorCode::bad_request);
  expect_error(R"({"action":"ping"} trailing)", CommandErrorCode::bad_request);
}

TEST(ParseCommand, KeyTwiceIsBadRequest) {
  // Which topic would be authorized and which one used is the doubt refused here.
  for (auto text : {R"({"action":"subscribe","topic":"a","topic":"user:7"})",
                    R"({"action":"ping","action":"subscribe","topic":"a"})",
                    R"({"action":"publish","topic":"a","message":{"type":"x","type":"y"}})"}) {
    auto e = error_of(text);
    EXPECT_EQ(e.code, CommandErrorCode::bad_request) << text;
    EXPECT_EQ(e.message, "message has a key twice") << text;
  }
}

TEST(ParseCommand, DeepNestingIsBadRequest) {
  expect_error(std::string(100'000, '['), CommandErrorCode::bad_request);
  expect_error(R"({"action":"publish","topic":"a","message":)" + std::string(100'000, '['), CommandErrorCode::bad_request);
}

TEST(ParseCommand, NonObjectIsBadRequest) {
  for (auto text : {"[]", R"(["subscribe"])", "42", R"("ping")", "null", "true"})
    expect_error(text, CommandErrorCode::bad_request);
}

TEST(ParseCommand, MissingOrNonStringActionIsBadRequest) {
  expect_error("{}", CommandErrorCode::bad_request);
  expect_error(R"({"topic":"t"})", CommandErrorCode::bad_request);
  expect_error(R"({"action":1})", CommandErrorCode::bad_request);
  expect_error(R"({"action":null})", CommandErrorCode::bad_request);
  EXPECT_NE(error_of("{}").message.find("action"), std::string::npos);
}

TEST(ParseCommand, UnknownActionIsCustomWithTheWholeCommand) {
  auto r = parse_command(R"({"action":"dance","style":"tango","ref":7})");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->action, Action::custom);
  EXPECT_EQ(r->message, json::parse(R"({"action":"dance","style":"tango","ref":7})").as_object());
  EXPECT_EQ(r->ref, json::value(7));
  auto cased = parse_command(R"({"action":"Subscribe","topic":"t"})");  // names are case-sensitive
  ASSERT_TRUE(cased.has_value());
  EXPECT_EQ(cased->action, Action::custom);
}

// ---------------------------------------------------------------------------------------------
// decide_command: parse, rate, policy

using Clock = TokenBucketPolicy::Clock;
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);
const Identity alice{.user_id = "alice", .roles = {"user"}, .exp = {}, .iat = {}, .profile = {}};

CommandRules rules_with(std::vector<std::string> publish = {}, double rate = 0, double burst = 1,
                        bool custom = false) {
  return CommandRules{TopicPatterns(publish), TokenBucketPolicy(rate, burst), custom};
}

Refusal refusal_of(const CommandDecision& d) {
  EXPECT_TRUE(std::holds_alternative<Refusal>(d));
  return std::holds_alternative<Refusal>(d) ? std::get<Refusal>(d) : Refusal{};
}

TEST(DecideCommand, UnknownActionIsBadRequestWithoutAnApplicationHandler) {
  auto bucket = Clock::time_point::min();
  auto r = refusal_of(decide_command(R"({"action":"dance","ref":"a"})", alice, rules_with(), bucket, t0));
  EXPECT_EQ(r.code, CommandErrorCode::bad_request);
  EXPECT_EQ(json::parse(r.reply), json::parse(
      R"({"type":"error","code":"bad-request","message":"unknown action","ref":"a"})"));
}

TEST(DecideCommand, UnknownActionGoesToTheApplicationWhenItHandlesThem) {
  auto bucket = Clock::time_point::min();
  auto d = decide_command(R"({"action":"dance"})", alice, rules_with({}, 0, 1, true), bucket, t0);
  ASSERT_TRUE(std::holds_alternative<Command>(d));
  EXPECT_EQ(std::get<Command>(d).action, Action::custom);
}

TEST(DecideCommand, RateLimitedCommandEchoesItsRef) {
  auto bucket = Clock::time_point::min();
  auto rules = rules_with({}, 1, 1);
  EXPECT_TRUE(std::holds_alternative<Command>(decide_command(R"({"action":"ping"})", alice, rules, bucket, t0)));
  auto r = refusal_of(decide_command(R"({"action":"ping","ref":9})", alice, rules, bucket, t0));
  EXPECT_EQ(r.code, CommandErrorCode::rate_limited);
  EXPECT_EQ(json::parse(r.reply).as_object().at("ref"), json::value(9));
  // Even a command that does not parse takes a token: floods of garbage are limited too.
  auto garbage = refusal_of(decide_command("not json", alice, rules, bucket, t0));
  EXPECT_EQ(garbage.code, CommandErrorCode::rate_limited);
}

TEST(DecideCommand, SubscribePolicyRefusesOtherUsersTopics) {
  auto bucket = Clock::time_point::min();
  auto r = refusal_of(decide_command(R"({"action":"subscribe","topic":"user:bob"})", alice, rules_with(), bucket, t0));
  EXPECT_EQ(r.code, CommandErrorCode::forbidden);
  EXPECT_TRUE(std::holds_alternative<Command>(
      decide_command(R"({"action":"subscribe","topic":"user:alice"})", alice, rules_with(), bucket, t0)));
}

TEST(DecideCommand, PublishNeedsAMatchingPattern) {
  auto bucket = Clock::time_point::min();
  const auto publish = R"({"action":"publish","topic":"chat:1","message":{"type":"m"}})";
  EXPECT_EQ(refusal_of(decide_command(publish, alice, rules_with(), bucket, t0)).code, CommandErrorCode::forbidden);
  EXPECT_TRUE(std::holds_alternative<Command>(decide_command(publish, alice, rules_with({"chat:*"}), bucket, t0)));
}

TEST(ParseCommand, MissingOrNonStringTopicIsBadRequest) {
  for (auto action : {"subscribe", "unsubscribe", "publish"}) {
    const std::string a(action);
    expect_error(R"({"action":")" + a + R"("})", CommandErrorCode::bad_request);
    expect_error(R"({"action":")" + a + R"(","topic":5})", CommandErrorCode::bad_request);
    expect_error(R"({"action":")" + a + R"(","topic":["t"]})", CommandErrorCode::bad_request);
  }
  EXPECT_NE(error_of(R"({"action":"subscribe"})").message.find("topic"), std::string::npos);
}

TEST(ParseCommand, BadTopicIsInvalidTopic) {
  expect_error(R"({"action":"subscribe","topic":""})", CommandErrorCode::invalid_topic);
  expect_error(R"({"action":"subscribe","topic":"a b"})", CommandErrorCode::invalid_topic);
  expect_error(R"({"action":"unsubscribe","topic":"a\u0000b"})", CommandErrorCode::invalid_topic);
  expect_error(R"({"action":"publish","topic":"a\tb","message":{"type":"x"}})", CommandErrorCode::invalid_topic);
  expect_error(R"({"action":"subscribe","topic":")" + std::string(257, 'a') + R"("})",
               CommandErrorCode::invalid_topic);
  auto ok = parse_command(R"({"action":"subscribe","topic":")" + std::string(256, 'a') + R"("})");
  EXPECT_TRUE(ok.has_value());
}

TEST(ParseCommand, PublishWithoutObjectMessageIsBadRequest) {
  expect_error(R"({"action":"publish","topic":"t"})", CommandErrorCode::bad_request);
  expect_error(R"({"action":"publish","topic":"t","message":"hi"})", CommandErrorCode::bad_request);
  expect_error(R"({"action":"publish","topic":"t","message":[{"type":"x"}]})", CommandErrorCode::bad_request);
  EXPECT_NE(error_of(R"({"action":"publish","topic":"t"})").message.find("message"), std::string::npos);
}

TEST(ParseCommand, PublishedMessageNeedsStringType) {
  expect_error(R"({"action":"publish","topic":"t","message":{}})", CommandErrorCode::bad_request);
  expect_error(R"({"action":"publish","topic":"t","message":{"type":3}})", CommandErrorCode::bad_request);
  EXPECT_NE(error_of(R"({"action":"publish","topic":"t","message":{}})").message.find("type"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// ref

TEST(ParseCommand, StringRefIsEchoedOnErrors) {
  auto e = error_of(R"({"action":"subscribe","ref":"abc"})");  // no topic
  EXPECT_EQ(e.ref, json::value("abc"));
  e = error_of(R"({"action":"subscribe","topic":"a b","ref":"r2"})");
  EXPECT_EQ(e.code, CommandErrorCode::invalid_topic);
  EXPECT_EQ(e.ref, json::value("r2"));
}

TEST(ParseCommand, NumberRefIsEchoedOnErrors) {
  EXPECT_EQ(error_of(R"({"ref":12})").ref, json::value(12));
  EXPECT_EQ(error_of(R"({"action":"publish","topic":"t","ref":1.5})").ref, json::value(1.5));
  EXPECT_EQ(error_of(R"({"action":"publish","topic":"t","message":{},"ref":-3})").ref, json::value(-3));
}

TEST(ParseCommand, RefOfWrongTypeIsBadRequestWithoutRef) {
  // The last two overflow double: they would be echoed as `Infinity`, which is not JSON.
  for (auto ref : {"true", "null", "{}", "[1]", "1111111111E1151111111", "-1e999"}) {
    auto e = error_of(std::string(R"({"action":"ping","ref":)") + ref + "}");
    EXPECT_EQ(e.code, CommandErrorCode::bad_request) << ref;
    EXPECT_TRUE(e.ref.is_null()) << ref;
    EXPECT_NE(e.message.find("ref"), std::string::npos) << ref;
  }
}

TEST(ParseCommand, NumbersPastDoubleRangeInAMessageAreRefused) {
  auto e = error_of(R"({"action":"publish","topic":"t","ref":7,"message":{"type":"x","v":[1e400]}})");
  EXPECT_EQ(e.code, CommandErrorCode::bad_request);
  EXPECT_EQ(e.ref, json::value(7));
  EXPECT_NE(e.message.find("range"), std::string::npos);
  auto ok = parse_command(R"({"action":"publish","topic":"t","message":{"type":"x","v":1.5e300}})");
  ASSERT_TRUE(ok);
}

TEST(ParseCommand, ErrorsWithoutRefCarryNone) {
  EXPECT_TRUE(error_of("nope").ref.is_null());
  EXPECT_TRUE(error_of(R"({"action":"subscribe"})").ref.is_null());
}

// ---------------------------------------------------------------------------------------------
// Hostile input

TEST(ParseCommand, DeepNestingIsRefusedWithoutCrashing) {
  const std::string arrays(100000, '[');
  expect_error(arrays, CommandErrorCode::bad_request);
  std::string objects;
  for (int i = 0; i < 20000; ++i) objects += R"({"a":)";
  expect_error(objects, CommandErrorCode::bad_request);
  // Nesting inside an otherwise valid command is bounded too.
  std::string message = R"({"action":"publish","topic":"t","message":{"type":"x","deep":)";
  message += std::string(5000, '[') + std::string(5000, ']') + "}}";
  expect_error(message, CommandErrorCode::bad_request);
}

TEST(ParseCommand, InvalidUtf8InStringsIsBadRequest) {
  expect_error("{\"action\":\"subscribe\",\"topic\":\"a\xFF\"}", CommandErrorCode::bad_request);
}

// ---------------------------------------------------------------------------------------------
// Replies

TEST(Replies, SubscribedAndUnsubscribed) {
  EXPECT_EQ(json::parse(reply_subscribed("order:1", nullptr)), json::parse(R"({"type":"subscribed","topic":"order:1"})"));
  EXPECT_EQ(json::parse(reply_unsubscribed("order:1", "r")),
            json::parse(R"({"type":"unsubscribed","topic":"order:1","ref":"r"})"));
}

TEST(Replies, PublishedCarriesDeliveredCount) {
  EXPECT_EQ(json::parse(reply_published("chat:x", 3, 9)),
            json::parse(R"({"type":"published","topic":"chat:x","delivered":3,"ref":9})"));
  EXPECT_EQ(json::parse(reply_published("chat:x", 0, nullptr)),
            json::parse(R"({"type":"published","topic":"chat:x","delivered":0})"));
}

TEST(Replies, Pong) {
  EXPECT_EQ(json::parse(reply_pong(nullptr)), json::parse(R"({"type":"pong"})"));
  EXPECT_EQ(json::parse(reply_pong("p")), json::parse(R"({"type":"pong","ref":"p"})"));
}

TEST(Replies, ErrorUsesContractCodes) {
  const std::pair<CommandErrorCode, const char*> codes[] = {
      {CommandErrorCode::bad_request, "bad-request"},
      {CommandErrorCode::invalid_topic, "invalid-topic"},
      {CommandErrorCode::forbidden, "forbidden"},
      {CommandErrorCode::rate_limited, "rate-limited"},
      {CommandErrorCode::too_many_subscriptions, "too-many-subscriptions"},
  };
  for (auto [code, text] : codes) {
    json::object expected{{"type", "error"}, {"code", text}, {"message", "why"}, {"ref", 5}};
    EXPECT_EQ(json::parse(reply_error(code, "why", 5)), json::value(expected)) << text;
  }
  EXPECT_EQ(json::parse(reply_error(CommandErrorCode::forbidden, "no", nullptr)),
            json::parse(R"({"type":"error","code":"forbidden","message":"no"})"));
}

TEST(Replies, TopicIsEscapedAsJson) {
  auto v = json::parse(reply_subscribed("a\"b\\c", nullptr));
  EXPECT_EQ(v.at("topic"), json::value("a\"b\\c"));
}

TEST(Replies, ParseErrorRoundTripsIntoErrorReply) {
  auto e = error_of(R"({"action":"subscribe","topic":"a b","ref":"x"})");
  auto v = json::parse(reply_error(e.code, e.message, e.ref)).as_object();
  EXPECT_EQ(v.at("code"), json::value("invalid-topic"));
  EXPECT_EQ(v.at("ref"), json::value("x"));
  EXPECT_EQ(v.at("message"), json::value(e.message));
}

}  // namespace
}  // namespace boundary::realtime::core

namespace boundary::realtime::core {
namespace {

TEST(PresenceCommand, ParsesAndPassesSubscribesRule) {
  auto cmd = parse_command(R"({"action":"presence","topic":"room:1","ref":3})");
  ASSERT_TRUE(cmd);
  EXPECT_EQ(cmd->action, Action::presence);
  EXPECT_EQ(cmd->topic, "room:1");
  auto bad = parse_command(R"({"action":"presence"})");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, CommandErrorCode::bad_request);
  Identity who;
  who.user_id = "42";
  CommandRules rules;
  rules.rate = TokenBucketPolicy(0, 1);
  rules.subscribe = SubscribePolicy::claims;  // no topics claim: nothing outside its own topics
  TokenBucketPolicy::Clock::time_point bucket{};
  auto decided = decide_command(R"({"action":"presence","topic":"room:1"})", who, rules, bucket, {});
  ASSERT_TRUE(std::holds_alternative<Refusal>(decided));
  EXPECT_EQ(std::get<Refusal>(decided).code, CommandErrorCode::forbidden);
}

}  // namespace
}  // namespace boundary::realtime::core

namespace boundary::realtime::core {
namespace {

TEST(PresenceCommand, NobodyPublishesThePresenceEventTypes) {
  for (auto type : {"presence-join", "presence-leave"}) {
    auto cmd = parse_command(std::string(R"({"action":"publish","topic":"room:1","ref":1,"message":{"type":")") + type + "\"}}");
    ASSERT_FALSE(cmd) << type;
    EXPECT_EQ(cmd.error().code, CommandErrorCode::bad_request);
    EXPECT_EQ(cmd.error().ref, boost::json::value(1));
  }
  EXPECT_TRUE(parse_command(R"({"action":"publish","topic":"room:1","message":{"type":"presence"}})"));
  EXPECT_TRUE(parse_command(R"({"action":"publish","topic":"room:1","message":{"type":"presence-joined"}})"));
}

}  // namespace
}  // namespace boundary::realtime::core
