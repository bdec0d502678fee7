#include "core/http_rules.hpp"

#include <string>
#include <vector>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// percent_decode, target_path, query_param

TEST(PercentDecode, DecodesEscapesAndPlus) {
  EXPECT_EQ(percent_decode("a%20b"), "a b");
  EXPECT_EQ(percent_decode("a+b"), "a b");
  EXPECT_EQ(percent_decode("%2B%2b"), "++");
  EXPECT_EQ(percent_decode("abc%41"), "abcA");
  EXPECT_EQ(percent_decode("%e2%98%95"), "\xE2\x98\x95");
  EXPECT_EQ(percent_decode(""), "");
  EXPECT_EQ(percent_decode("plain.token-_~"), "plain.token-_~");
}

TEST(PercentDecode, BadEscapeIsRefused) {
  EXPECT_EQ(percent_decode("%"), std::nullopt);
  EXPECT_EQ(percent_decode("a%4"), std::nullopt);
  EXPECT_EQ(percent_decode("%G1"), std::nullopt);
  EXPECT_EQ(percent_decode("%1G"), std::nullopt);
  EXPECT_EQ(percent_decode("ab%"), std::nullopt);
}

TEST(TargetPath, StripsTheQuery) {
  EXPECT_EQ(target_path("/ws?token=x"), "/ws");
  EXPECT_EQ(target_path("/api/broadcast"), "/api/broadcast");
  EXPECT_EQ(target_path("/ws?"), "/ws");
}

TEST(QueryParam, FindsAndDecodesTheNamedParameter) {
  EXPECT_EQ(query_param("/ws?token=abc", "token"), "abc");
  EXPECT_EQ(query_param("/ws?a=1&token=x%2By&b=2", "token"), "x+y");
  EXPECT_EQ(query_param("/ws?xtoken=1&token=2", "token"), "2");
  EXPECT_EQ(query_param("/ws?token=first&token=second", "token"), "first");
  EXPECT_EQ(query_param("/ws?token", "token"), "");
  EXPECT_EQ(query_param("/ws?token=", "token"), "");
}

TEST(QueryParam, AbsentParameterIsNullopt) {
  EXPECT_EQ(query_param("/ws", "token"), std::nullopt);
  EXPECT_EQ(query_param("/ws?", "token"), std::nullopt);
  EXPECT_EQ(query_param("/ws?tokenx=1", "token"), std::nullopt);
  EXPECT_EQ(query_param("/ws?a=token", "token"), std::nullopt);
}

TEST(QueryParam, BadEscapeIsNullopt) { EXPECT_EQ(query_param("/ws?token=%zz", "token"), std::nullopt); }

// ---------------------------------------------------------------------------------------------
// bearer_token, secrets_equal

TEST(BearerToken, ExtractsTokenWithCaseInsensitiveScheme) {
  EXPECT_EQ(bearer_token("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(bearer_token("bearer abc"), "abc");
  EXPECT_EQ(bearer_token("BEARER   abc  "), "abc");
}

TEST(BearerToken, OtherSchemesAndEmptyTokensAreRefused) {
  EXPECT_EQ(bearer_token(""), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer"), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer "), std::nullopt);
  EXPECT_EQ(bearer_token("Bearer    "), std::nullopt);
  EXPECT_EQ(bearer_token("Bearerabc"), std::nullopt);
  EXPECT_EQ(bearer_token("Basic YWxhZGRpbjpvcGVu"), std::nullopt);
  EXPECT_EQ(bearer_token("Token abc"), std::nullopt);
}

TEST(SecretsEqual, ComparesContentAndLength) {
  EXPECT_TRUE(secrets_equal("s3cret-key", "s3cret-key"));
  EXPECT_TRUE(secrets_equal("", ""));
  EXPECT_FALSE(secrets_equal("s3cret-key", "s3cret-kez"));
  EXPECT_FALSE(secrets_equal("s3cret-key", "t3cret-key"));
  EXPECT_FALSE(secrets_equal("s3cret", "s3cret-key"));
  EXPECT_FALSE(secrets_equal("s3cret-key", ""));
  EXPECT_FALSE(secrets_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

// ---------------------------------------------------------------------------------------------
// check_upgrade

UpgradeRequest good_upgrade(std::string_view target = "/ws?token=tok") {
  UpgradeRequest r;
  r.method = "GET";
  r.target = target;
  r.websocket_upgrade = true;
  r.version = "13";
  r.key = "dGhlIHNhbXBsZSBub25jZQ==";
  r.origin = "https://app.example.com";
  return r;
}

void expect_refusal(const boost::system::result<std::string, HttpRefusal>& r, unsigned status,
                    std::string_view error) {
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().status, status);
  EXPECT_EQ(json::parse(r.error().body), json::value(json::object{{"error", error}}));
}

TEST(CheckUpgrade, AcceptsQueryToken) {
  auto r = check_upgrade(good_upgrade("/ws?token=a%2Eb"), {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "a.b");
}

TEST(CheckUpgrade, AcceptsBearerToken) {
  auto req = good_upgrade("/ws");
  req.authorization = "Bearer header.token";
  auto r = check_upgrade(req, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "header.token");
}

TEST(CheckUpgrade, TokenInBothQueryAndBearerHeaderIs400) {
  auto req = good_upgrade("/ws?token=query");
  req.authorization = "Bearer header";
  expect_refusal(check_upgrade(req, {}), 400, "More than one token given");
}

TEST(CheckUpgrade, TokenTwiceInTheQueryIs400) {
  expect_refusal(check_upgrade(good_upgrade("/ws?token=a&token=b"), {}), 400, "More than one token given");
  expect_refusal(check_upgrade(good_upgrade("/ws?token=a&x=1&token="), {}), 400, "More than one token given");
}

TEST(CheckUpgrade, QueryTokenWithAnotherAuthorizationSchemeIsAccepted) {
  // A browser repeats the page's Basic credentials on the upgrade: not a second token.
  auto req = good_upgrade("/ws?token=query");
  req.authorization = "Basic dXNlcjpwYXNz";
  auto r = check_upgrade(req, {});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, "query");
}

TEST(CheckUpgrade, PlainGetIsNotAWebSocketRequest) {
  auto req = good_upgrade();
  req.websocket_upgrade = false;
  expect_refusal(check_upgrade(req, {}), 400, "Not a WebSocket request");
}

TEST(CheckUpgrade, OtherMethodIsNotAWebSocketRequest) {
  auto req = good_upgrade();
  req.method = "POST";
  expect_refusal(check_upgrade(req, {}), 400, "Not a WebSocket request");
}

TEST(CheckUpgrade, WrongVersionIs426) {
  auto req = good_upgrade();
  req.version = "8";
  expect_refusal(check_upgrade(req, {}), 426, "Unsupported WebSocket version (13 required)");
  req.version = "";
  EXPECT_EQ(check_upgrade(req, {}).error().status, 426u);
}

TEST(CheckUpgrade, MalformedKeyIs400) {
  for (std::string_view key : {"", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=", "dGhlIHNhbXBsZSBub25jZQ=x",
                               "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZQ===="}) {
    auto req = good_upgrade();
    req.key = key;
    expect_refusal(check_upgrade(req, {}), 400, "Invalid Sec-WebSocket-Key");
  }
}

TEST(CheckUpgrade, OriginOutsideTheAllowedListIs403) {
  const std::vector<std::string> allowed = {"https://app.example.com", "https://admin.example.com"};
  auto req = good_upgrade();
  req.origin = "https://evil.example.com";
  expect_refusal(check_upgrade(req, allowed), 403, "Forbidden");
  req.origin = "";
  expect_refusal(check_upgrade(req, allowed), 403, "Forbidden");
  req.origin = "https://app.example.com.evil.com";
  expect_refusal(check_upgrade(req, allowed), 403, "Forbidden");
}

TEST(CheckUpgrade, AllowedOriginPassesCaseInsensitively) {
  const std::vector<std::string> allowed = {"https://app.example.com"};
  auto req = good_upgrade();
  EXPECT_TRUE(check_upgrade(req, allowed).has_value());
  req.origin = "HTTPS://APP.EXAMPLE.COM";
  EXPECT_TRUE(check_upgrade(req, allowed).has_value());
}

TEST(CheckUpgrade, NoAllowedListMeansAnyOrigin) {
  auto req = good_upgrade();
  req.origin = "https://anything.test";
  EXPECT_TRUE(check_upgrade(req, {}).has_value());
}

TEST(CheckUpgrade, OriginIsCheckedBeforeTheToken) {
  auto req = good_upgrade("/ws");
  req.origin = "https://evil.example.com";
  expect_refusal(check_upgrade(req, {"https://app.example.com"}), 403, "Forbidden");
}

TEST(CheckUpgrade, MissingTokenIs401) {
  expect_refusal(check_upgrade(good_upgrade("/ws"), {}), 401, "Unauthorized");
  expect_refusal(check_upgrade(good_upgrade("/ws?other=1"), {}), 401, "Unauthorized");
  auto req = good_upgrade("/ws");
  req.authorization = "Basic abc";
  expect_refusal(check_upgrade(req, {}), 401, "Unauthorized");
}

TEST(CheckUpgrade, EmptyQueryTokenIs401) {
  expect_refusal(check_upgrade(good_upgrade("/ws?token="), {}), 401, "Unauthorized");
  expect_refusal(check_upgrade(good_upgrade("/ws?token=%zz"), {}), 401, "Unauthorized");
}

// ---------------------------------------------------------------------------------------------
// route_api

TEST(RouteApi, EveryEndpointRoutesToItsCall) {
  const std::tuple<const char*, const char*, ApiCall> table[] = {
      {"POST", "/api/send-to-user", ApiCall::send_to_user},
      {"POST", "/api/send-to-role", ApiCall::send_to_role},
      {"POST", "/api/broadcast", ApiCall::broadcast},
      {"POST", "/api/send-to-connection", ApiCall::send_to_connection},
      {"POST", "/api/publish", ApiCall::publish},
      {"POST", "/api/subscribe", ApiCall::subscribe},
      {"POST", "/api/unsubscribe", ApiCall::unsubscribe},
      {"POST", "/api/disconnect", ApiCall::disconnect},
      {"GET", "/api/connections", ApiCall::connections},
  };
  for (auto [method, path, call] : table) {
    auto r = route_api(method, path);
    ASSERT_TRUE(r.has_value()) << path;
    EXPECT_EQ(*r, call) << path;
  }
}

TEST(RouteApi, UnknownPathIs404) {
  for (auto path : {"/api/nope", "/api/send-to-user/", "/api", "/API/broadcast", "/api/broadcast/x"}) {
    auto r = route_api("POST", path);
    ASSERT_FALSE(r.has_value()) << path;
    EXPECT_EQ(r.error().status, 404u) << path;
    EXPECT_EQ(json::parse(r.error().body), json::parse(R"({"error":"Not found"})"));
  }
}

TEST(RouteApi, WrongMethodIs405) {
  for (auto [method, path] : {std::pair{"GET", "/api/send-to-user"}, {"PUT", "/api/broadcast"},
                              {"POST", "/api/connections"}, {"DELETE", "/api/disconnect"}}) {
    auto r = route_api(method, path);
    ASSERT_FALSE(r.has_value()) << method << " " << path;
    EXPECT_EQ(r.error().status, 405u);
    EXPECT_EQ(json::parse(r.error().body), json::parse(R"({"error":"Method not allowed"})"));
  }
}

// ---------------------------------------------------------------------------------------------
// parse_api_body

ApiRequest parse_ok(ApiCall call, std::string_view body) {
  auto r = parse_api_body(call, body);
  EXPECT_TRUE(r.has_value()) << body << " -> " << (r ? "" : r.error().body);
  return r ? *r : ApiRequest{};
}

void expect_400(ApiCall call, std::string_view body, std::string_view error) {
  auto r = parse_api_body(call, body);
  ASSERT_FALSE(r.has_value()) << body;
  EXPECT_EQ(r.error().status, 400u) << body;
  EXPECT_EQ(json::parse(r.error().body), json::value(json::object{{"error", error}})) << body;
}

TEST(ParseApiBody, SendToUser) {
  auto r = parse_ok(ApiCall::send_to_user, R"({"user-id":"42","message":{"type":"n","x":1}})");
  EXPECT_EQ(r.call, ApiCall::send_to_user);
  EXPECT_EQ(r.user_id, "42");
  EXPECT_EQ(json::value(r.message), json::parse(R"({"type":"n","x":1})"));
  expect_400(ApiCall::send_to_user, R"({"message":{"type":"n"}})", "missing field: user-id");
  EXPECT_EQ(parse_ok(ApiCall::send_to_user, R"({"user-id":42,"message":{"type":"n"}})").user_id, "42");
  expect_400(ApiCall::send_to_user, R"({"user-id":4.5,"message":{"type":"n"}})", "user-id must be a non-empty string or an integer");
  expect_400(ApiCall::send_to_user, R"({"user-id":"","message":{"type":"n"}})", "user-id must be a non-empty string or an integer");
  expect_400(ApiCall::send_to_user, R"({"user-id":"42"})", "missing field: message");
}

TEST(ParseApiBody, SendToRole) {
  auto r = parse_ok(ApiCall::send_to_role, R"({"role":"admin","message":{"type":"n"}})");
  EXPECT_EQ(r.role, "admin");
  EXPECT_EQ(r.message.at("type"), json::value("n"));
  expect_400(ApiCall::send_to_role, R"({"message":{"type":"n"}})", "missing field: role");
  expect_400(ApiCall::send_to_role, R"({"role":["admin"],"message":{"type":"n"}})", "role must be a non-empty string");
}

TEST(ParseApiBody, Broadcast) {
  auto r = parse_ok(ApiCall::broadcast, R"({"message":{"type":"n"}})");
  EXPECT_EQ(r.message.at("type"), json::value("n"));
  expect_400(ApiCall::broadcast, "{}", "missing field: message");
}

TEST(ParseApiBody, SendToConnection) {
  auto r = parse_ok(ApiCall::send_to_connection, R"({"connection-id":"c1","message":{"type":"n"}})");
  EXPECT_EQ(r.connection_id, "c1");
  expect_400(ApiCall::send_to_connection, R"({"message":{"type":"n"}})", "missing field: connection-id");
  expect_400(ApiCall::send_to_connection, R"({"connection-id":"c1"})", "missing field: message");
}

TEST(ParseApiBody, Publish) {
  auto r = parse_ok(ApiCall::publish, R"({"topic":"order:1","message":{"type":"n"}})");
  EXPECT_EQ(r.topic, "order:1");
  expect_400(ApiCall::publish, R"({"message":{"type":"n"}})", "missing field: topic");
  expect_400(ApiCall::publish, R"({"topic":"a b","message":{"type":"n"}})",
             "topic must be 1-256 bytes without whitespace or control characters");
  expect_400(ApiCall::publish, R"({"topic":"order:1"})", "missing field: message");
}

TEST(ParseApiBody, MessageMustBeAnObjectWithStringType) {
  expect_400(ApiCall::broadcast, R"({"message":"hi"})", "message must be a JSON object");
  expect_400(ApiCall::broadcast, R"({"message":[]})", "message must be a JSON object");
  expect_400(ApiCall::broadcast, R"({"message":{}})", "message must have a string type");
  expect_400(ApiCall::broadcast, R"({"message":{"type":1}})", "message must have a string type");
  expect_400(ApiCall::send_to_role, R"({"role":"r","message":{"type":null}})", "message must have a string type");
}

TEST(ParseApiBody, SubscribeAndUnsubscribe) {
  for (auto call : {ApiCall::subscribe, ApiCall::unsubscribe}) {
    auto r = parse_ok(call, R"({"connection-id":"c1","topic":"t"})");
    EXPECT_EQ(r.call, call);
    EXPECT_EQ(r.connection_id, "c1");
    EXPECT_EQ(r.topic, "t");
    expect_400(call, R"({"topic":"t"})", "missing field: connection-id");
    expect_400(call, R"({"connection-id":"c1"})", "missing field: topic");
    expect_400(call, R"({"connection-id":"c1","topic":""})", "topic must be a non-empty string");
    expect_400(call, R"({"connection-id":"c1","topic":"x\ty"})",
               "topic must be 1-256 bytes without whitespace or control characters");
  }
}

TEST(ParseApiBody, DisconnectByConnectionOrUser) {
  auto by_connection = parse_ok(ApiCall::disconnect, R"({"connection-id":"c1"})");
  EXPECT_EQ(by_connection.connection_id, "c1");
  EXPECT_TRUE(by_connection.user_id.empty());
  auto by_user = parse_ok(ApiCall::disconnect, R"({"user-id":"42"})");
  EXPECT_EQ(by_user.user_id, "42");
  EXPECT_TRUE(by_user.connection_id.empty());
  expect_400(ApiCall::disconnect, "{}", "missing field: connection-id or user-id");
  EXPECT_EQ(parse_ok(ApiCall::disconnect, R"({"user-id":7})").user_id, "7");
  expect_400(ApiCall::disconnect, R"({"user-id":true})", "user-id must be a non-empty string or an integer");
}

TEST(ParseApiBody, ConnectionsIgnoresTheBody) {
  EXPECT_EQ(parse_ok(ApiCall::connections, "").call, ApiCall::connections);
  EXPECT_EQ(parse_ok(ApiCall::connections, "not json").call, ApiCall::connections);
}

TEST(ParseApiBody, NumbersPastDoubleRangeAreRefused) {
  // Boost.JSON reads them as infinity; framed, they would become `Infinity`, which is not JSON.
  expect_400(ApiCall::broadcast, R"({"message":{"type":"t","n":1e400}})",
             "numbers must be within the range of a double");
  expect_400(ApiCall::publish, R"({"topic":"t","message":{"type":"t","a":[1,{"b":-1e999}]}})",
             "numbers must be within the range of a double");
  // Large but finite numbers, and integers past 64 bits (read as doubles), are fine.
  EXPECT_EQ(parse_ok(ApiCall::broadcast, R"({"message":{"type":"t","n":1e308,"i":123456789012345678901234}})").call,
            ApiCall::broadcast);
}

TEST(ParseApiBody, KeyTwiceIsRefused) {
  expect_400(ApiCall::send_to_user, R"({"user-id":"1","user-id":"2","message":{"type":"t"}})", "body has a key twice");
  expect_400(ApiCall::broadcast, R"({"message":{"type":"t","type":"u"}})", "body has a key twice");
}

TEST(ParseApiBody, DeepNestingIsRefusedAsInvalidJson) {
  expect_400(ApiCall::broadcast, std::string(100'000, '['), "body is not valid JSON");
}

TEST(ParseApiBody, BodyMustBeAJsonObject) {
  expect_400(ApiCall::broadcast, "", "body is not valid JSON");
  expect_400(ApiCall::broadcast, "{", "body is not valid JSON");
  expect_400(ApiCall::broadcast, "[]", "body must be a JSON object");
  expect_400(ApiCall::send_to_user, "\"x\"", "body must be a JSON object");
}

// ---------------------------------------------------------------------------------------------
// parse_batch_body

TEST(RouteApi, BatchIsAPost) {
  auto r = route_api("POST", "/api/batch");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, ApiCall::batch);
  EXPECT_EQ(route_api("GET", "/api/batch").error().status, 405u);
}

TEST(ParseBatchBody, EveryKindWithItsOwnFields) {
  auto r = parse_batch_body(R"([
    {"kind":"send-to-user","user-id":7,"message":{"type":"a"}},
    {"kind":"send-to-role","role":"admin","message":{"type":"b"}},
    {"kind":"broadcast","message":{"type":"c"},"wait":false},
    {"kind":"send-to-connection","connection-id":"c1","message":{"type":"d"}},
    {"kind":"publish","topic":"t:1","message":{"type":"e"}},
    {"kind":"subscribe","connection-id":"c1","topic":"t:2"},
    {"kind":"unsubscribe","connection-id":"c1","topic":"t:2"},
    {"kind":"disconnect","user-id":"u"}])");
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), 8u);
  for (const auto& item : *r) ASSERT_TRUE(item.has_value()) << item.error().body;
  EXPECT_EQ((*r)[0]->call, ApiCall::send_to_user);
  EXPECT_EQ((*r)[0]->user_id, "7");
  EXPECT_EQ((*r)[1]->role, "admin");
  EXPECT_EQ((*r)[2]->call, ApiCall::broadcast);
  EXPECT_FALSE((*r)[2]->wait);
  EXPECT_TRUE((*r)[1]->wait);
  EXPECT_EQ((*r)[3]->connection_id, "c1");
  EXPECT_EQ((*r)[4]->topic, "t:1");
  EXPECT_EQ((*r)[4]->message.at("type"), json::value("e"));
  EXPECT_EQ((*r)[5]->call, ApiCall::subscribe);
  EXPECT_EQ((*r)[6]->call, ApiCall::unsubscribe);
  EXPECT_EQ((*r)[7]->call, ApiCall::disconnect);
  EXPECT_EQ((*r)[7]->user_id, "u");
}

TEST(ParseBatchBody, BadItemsAreRefusedInTheirPlace) {
  auto r = parse_batch_body(R"([1, {"message":{"type":"x"}}, {"kind":3}, {"kind":"connections"},
    {"kind":"batch"}, {"kind":"publish","topic":"t"}, {"kind":"broadcast","message":{"type":"ok"}}])");
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->size(), 7u);
  const char* errors[] = {"item must be a JSON object", "item must have a string kind", "item must have a string kind",
                          "unknown kind: connections", "unknown kind: batch", "missing field: message"};
  for (std::size_t i = 0; i < 6; ++i) {
    ASSERT_FALSE((*r)[i].has_value()) << i;
    EXPECT_EQ((*r)[i].error().status, 400u);
    EXPECT_EQ(json::parse((*r)[i].error().body), json::value(json::object{{"error", errors[i]}})) << i;
  }
  EXPECT_TRUE((*r)[6].has_value());
}

TEST(ParseBatchBody, TheWholeBodyIsRefusedWhenNotAnArray) {
  for (const char* body : {"", "[", "{}", "null", R"({"kind":"broadcast","message":{"type":"x"}})"}) {
    auto r = parse_batch_body(body);
    ASSERT_FALSE(r.has_value()) << body;
    EXPECT_EQ(r.error().status, 400u) << body;
  }
  EXPECT_EQ(parse_batch_body(R"([{"kind":"broadcast","kind":"publish"}])").error().status, 400u);
  EXPECT_EQ(parse_batch_body("[1e999]").error().status, 400u);
  auto empty = parse_batch_body("[]");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseBatchBody, AtMostMaxBatchItems) {
  auto body = [](std::size_t n) {
    std::string s = "[";
    for (std::size_t i = 0; i < n; ++i) s += std::string(i ? "," : "") + R"({"kind":"broadcast","message":{"type":"x"}})";
    return s + "]";
  };
  auto full = parse_batch_body(body(max_batch_items));
  ASSERT_TRUE(full.has_value());
  EXPECT_EQ(full->size(), max_batch_items);
  auto r = parse_batch_body(body(max_batch_items + 1));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().status, 413u);
  EXPECT_EQ(json::parse(r.error().body), json::parse(R"({"error":"a batch carries at most 1000 items"})"));
}

TEST(ErrorBody, IsAJsonObjectWithEscapedText) {
  EXPECT_EQ(json::parse(error_body("a \"quoted\" thing")),
            json::value(json::object{{"error", "a \"quoted\" thing"}}));
}

}  // namespace
}  // namespace boundary::realtime::core

namespace boundary::realtime::core {
namespace {

TEST(PresenceQuery, RoutesAndTopic) {
  EXPECT_EQ(*route_api("GET", "/api/presence"), ApiCall::presence);
  EXPECT_EQ(*route_api("GET", "/api/presence-stats"), ApiCall::presence_stats);
  EXPECT_EQ(route_api("POST", "/api/presence").error().status, 405u);
  auto ok = parse_presence_query(ApiCall::presence, "/api/presence?topic=room%3A1");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->topic, "room:1");
  EXPECT_EQ(ok->call, ApiCall::presence);
  for (auto bad : {"/api/presence", "/api/presence?topic=", "/api/presence?topic=a%20b",
                   "/api/presence?topic=a&topic=b"}) {
    auto r = parse_presence_query(ApiCall::presence, bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400u) << bad;
  }
}

}  // namespace
}  // namespace boundary::realtime::core

namespace boundary::realtime::core {
namespace {

TEST(PresenceQuery, ApiPublishOfThePresenceEventTypesIsRefused) {
  auto r = parse_api_body(ApiCall::publish, R"({"topic":"room:1","message":{"type":"presence-leave","user-id":"x"}})");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400u);
  EXPECT_NE(r.error().body.find("presence-join and presence-leave"), std::string::npos);
  // Sends that are not topic deliveries carry any type.
  EXPECT_TRUE(parse_api_body(ApiCall::send_to_user, R"({"user-id":"x","message":{"type":"presence-leave"}})"));
}

}  // namespace
}  // namespace boundary::realtime::core
