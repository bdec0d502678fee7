#include "core/pusher.hpp"
#include "core/pusher_webhook.hpp"

#include <string>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

namespace boundary::realtime::core::pusher {
namespace {
namespace json = boost::json;

// The key, secret and signatures of Pusher's published examples (auth signatures and the REST
// API's authentication), checked against Node's crypto as well.
const App docs_app{"3", "278d425bdf160c739803", "7ad3773142a6692b25b8", {}};

json::object obj(std::string_view text) { return json::parse(text).as_object(); }

// ---------------------------------------------------------------------------------------------
// Apps

TEST(PusherApp, ParsesIdKeySecret) {
  auto app = parse_app("42:app-key:s3cret.value");
  ASSERT_TRUE(app);
  EXPECT_EQ(app->id, "42");
  EXPECT_EQ(app->key, "app-key");
  EXPECT_EQ(app->secret, "s3cret.value");
}

TEST(PusherApp, RefusesMalformedSpecsWithoutEchoingTheSecret) {
  EXPECT_FALSE(parse_app("42:key"));
  EXPECT_FALSE(parse_app(":key:secret-long"));
  EXPECT_FALSE(parse_app("4 2:key:secret-long"));
  EXPECT_FALSE(parse_app("42::secret-long"));
  EXPECT_FALSE(parse_app("42:key:short"));            // under 8 bytes
  auto bad = parse_app("42:key:has:colon-secret");    // ':' is not a secret character
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().find("colon-secret"), std::string::npos);
}

TEST(PusherApp, DuplicateIdsOrKeysAreRefused) {
  EXPECT_FALSE(check_apps({{"1", "a", "secret-1", {}}, {"2", "b", "secret-2", {}}}));
  EXPECT_TRUE(check_apps({{"1", "a", "secret-1", {}}, {"1", "b", "secret-2", {}}}));
  EXPECT_TRUE(check_apps({{"1", "a", "secret-1", {}}, {"2", "a", "secret-2", {}}}));
}

// ---------------------------------------------------------------------------------------------
// Channels and topics

TEST(PusherChannel, KindsFollowThePrefix) {
  EXPECT_EQ(channel_kind("chat"), ChannelKind::public_channel);
  EXPECT_EQ(channel_kind("private-room"), ChannelKind::private_channel);
  EXPECT_EQ(channel_kind("private-encrypted-room"), ChannelKind::encrypted);
  EXPECT_EQ(channel_kind("presence-lobby"), ChannelKind::presence);
  EXPECT_EQ(channel_kind("#server-to-user-42"), ChannelKind::user);
  EXPECT_EQ(channel_kind("Test-Channel_1@example.com;a=b,c"), ChannelKind::public_channel);
}

TEST(PusherChannel, InvalidNamesAreRefused) {
  EXPECT_FALSE(channel_kind(""));
  EXPECT_FALSE(channel_kind("order:1"));  // ':' would reach native and other apps' topics
  EXPECT_FALSE(channel_kind("a b"));
  EXPECT_FALSE(channel_kind("#other"));
  EXPECT_FALSE(channel_kind("#server-to-user-"));
  EXPECT_FALSE(channel_kind(std::string(201, 'a')));
  EXPECT_TRUE(channel_kind(std::string(200, 'a')));
}

TEST(PusherChannel, TheDefaultAppsChannelsAreTopicsOfTheSameName) {
  const App app{"7", "k", "secret-7", {}};
  EXPECT_EQ(topic_of(app, true, "chat"), "chat");
  EXPECT_EQ(topic_of(app, false, "chat"), "app:7:chat");
  EXPECT_EQ(channel_of("app:7:chat"), "chat");
  EXPECT_EQ(channel_of("chat"), "chat");
  EXPECT_EQ(pusher_user(user_id_for(app, false, "u:1")), "u:1");
}

TEST(PusherChannel, PrivateAndPresenceTopicsAreReservedForPusherConnections) {
  EXPECT_TRUE(reserved_topic("private-room"));
  EXPECT_TRUE(reserved_topic("presence-lobby"));
  EXPECT_TRUE(reserved_topic("private-encrypted-x"));
  EXPECT_TRUE(reserved_topic("app:2:private-room"));
  EXPECT_TRUE(reserved_topic("app:2:presence-lobby"));
  EXPECT_FALSE(reserved_topic("chat"));
  EXPECT_FALSE(reserved_topic("app:2:chat"));
  EXPECT_FALSE(reserved_topic("order:private-1"));
  EXPECT_TRUE(is_presence_topic("presence-lobby"));
  EXPECT_TRUE(is_presence_topic("app:2:presence-lobby"));
  EXPECT_FALSE(is_presence_topic("presence-x:y"));
  EXPECT_FALSE(is_presence_topic("private-lobby"));
}

// ---------------------------------------------------------------------------------------------
// Client frames

TEST(PusherFrame, SubscribeWithDataAsObjectOrString) {
  auto a = parse_client_frame(R"({"event":"pusher:subscribe","data":{"channel":"private-a","auth":"k:sig"}})");
  ASSERT_TRUE(a);
  auto& s = std::get<Subscribe>(*a);
  EXPECT_EQ(s.channel, "private-a");
  EXPECT_EQ(s.auth, "k:sig");
  EXPECT_FALSE(s.channel_data);
  auto b = parse_client_frame(R"({"event":"pusher:subscribe","data":"{\"channel\":\"presence-a\",\"channel_data\":\"{}\"}"})");
  ASSERT_TRUE(b);
  EXPECT_EQ(std::get<Subscribe>(*b).channel_data, "{}");
}

TEST(PusherFrame, PingUnsubscribeSigninAndClientEvents) {
  EXPECT_TRUE(std::holds_alternative<Ping>(*parse_client_frame(R"({"event":"pusher:ping","data":{}})")));
  EXPECT_EQ(std::get<Unsubscribe>(*parse_client_frame(R"({"event":"pusher:unsubscribe","data":{"channel":"c"}})")).channel,
            "c");
  auto signin = parse_client_frame(R"({"event":"pusher:signin","data":{"auth":"k:s","user_data":"{\"id\":\"1\"}"}})");
  EXPECT_EQ(std::get<Signin>(*signin).user_data, R"({"id":"1"})");
  auto e = parse_client_frame(R"({"event":"client-typing","channel":"private-a","data":{"x":1}})");
  ASSERT_TRUE(e);
  EXPECT_EQ(std::get<ClientEvent>(*e).data, R"({"x":1})");
}

TEST(PusherFrame, BadFramesGetPusherErrorCodes) {
  EXPECT_EQ(parse_client_frame("not json").error().code, 4200);
  EXPECT_EQ(parse_client_frame(R"({"data":{}})").error().code, 4200);
  EXPECT_EQ(parse_client_frame(R"({"event":"pusher:subscribe","data":{"channel":"a:b"}})").error().code, 4009);
  EXPECT_EQ(parse_client_frame(R"({"event":"client-x","channel":"#server-to-user-1"})").error().code,
            error_client_events);
  EXPECT_EQ(parse_client_frame(R"({"event":"client-x","channel":"bad channel"})").error().code, error_client_events);
  EXPECT_EQ(parse_client_frame(R"({"event":"other"})").error().code, 4200);
}

// ---------------------------------------------------------------------------------------------
// Server frames: data is a JSON string

TEST(PusherFrame, ServerFramesCarryDataAsAString) {
  auto established = obj(connection_established("1.2", 120));
  EXPECT_EQ(established["event"], "pusher:connection_established");
  auto data = obj(established["data"].as_string());
  EXPECT_EQ(data["socket_id"], "1.2");
  EXPECT_EQ(data["activity_timeout"], 120);
  auto ok = obj(subscription_succeeded("c"));
  EXPECT_EQ(ok["channel"], "c");
  EXPECT_EQ(ok["data"], "{}");
  auto err = obj(subscription_error("c", "AuthError", "no", 401));
  EXPECT_EQ(obj(err["data"].as_string())["status"], 401);
  EXPECT_EQ(obj(error(4001, "x"))["data"].as_string(), R"({"code":4001,"message":"x"})");
}

TEST(PusherSocketId, TwoNumbersJoinedByADot) {
  const auto id = make_socket_id(~0ULL, 12345);
  EXPECT_TRUE(valid_socket_id(id));
  EXPECT_EQ(id.substr(id.find('.') + 1), "12345");
  EXPECT_FALSE(valid_socket_id("1"));
  EXPECT_FALSE(valid_socket_id("1.2.3"));
  EXPECT_FALSE(valid_socket_id(".2"));
  EXPECT_FALSE(valid_socket_id("a.2"));
}

TEST(PusherClose, ServerClosesMapToPusherCodes) {
  EXPECT_EQ(close_code_for(1000), 4009);  // terminated: no reconnect
  EXPECT_EQ(close_code_for(1001), 4200);  // shutting down: reconnect
  EXPECT_EQ(close_code_for(1008), 4100);  // slow consumer, idle: back off first
  EXPECT_TRUE(protocol_supported("7"));
  EXPECT_FALSE(protocol_supported("8"));
  EXPECT_FALSE(protocol_supported(""));
}

// ---------------------------------------------------------------------------------------------
// Authorization

TEST(PusherAuth, PrivateChannelSignatureOfPushersExample) {
  const std::string auth = "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4";
  EXPECT_TRUE(channel_auth_ok(docs_app, "1234.1234", "private-foobar", auth, std::nullopt));
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1235", "private-foobar", auth, std::nullopt));  // another socket
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1234", "private-foobaz", auth, std::nullopt));  // another channel
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1234", "private-foobar", "other:" + auth.substr(21), std::nullopt));
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1234", "private-foobar", auth.substr(21), std::nullopt));
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1234", "private-foobar", "", std::nullopt));
}

TEST(PusherAuth, PresenceSignatureCoversChannelData) {
  const std::string data = R"({"user_id":10,"user_info":{"name":"Mr. Channels"}})";
  const std::string auth = "278d425bdf160c739803:31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80";
  EXPECT_TRUE(channel_auth_ok(docs_app, "1234.1234", "presence-foobar", auth, data));
  EXPECT_FALSE(channel_auth_ok(docs_app, "1234.1234", "presence-foobar", auth, R"({"user_id":11})"));
  auto member = presence_member(data);
  ASSERT_TRUE(member);
  EXPECT_EQ(member->user_id, "10");
  EXPECT_EQ(member->user_info, R"({"name":"Mr. Channels"})");
  EXPECT_FALSE(presence_member(R"({"user_info":{}})"));
  EXPECT_FALSE(presence_member(R"({"user_id":""})"));
  EXPECT_FALSE(presence_member("[]"));
}

TEST(PusherAuth, SigninSignsSocketAndUserData) {
  const std::string user_data = R"({"id":"42"})";
  const auto auth = docs_app.key + ":" + hmac_sha256_hex(docs_app.secret, "1.2::user::" + user_data);
  EXPECT_TRUE(signin_auth_ok(docs_app, "1.2", user_data, auth));
  EXPECT_FALSE(signin_auth_ok(docs_app, "1.3", user_data, auth));
  EXPECT_EQ(user_id_of(user_data), "42");
  EXPECT_FALSE(user_id_of(R"({"id":42})"));
  EXPECT_FALSE(user_id_of(R"({"name":"x"})"));
}

// ---------------------------------------------------------------------------------------------
// The HTTP API's signed queries (Pusher's REST authentication example)

constexpr std::string_view docs_body = R"({"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"})";
constexpr std::string_view docs_query =
    "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0&body_md5=ec365a775a4cd0599faeb73354201b6f";
constexpr std::string_view docs_signature = "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c";

std::string docs_target(std::string_view query = docs_query, std::string_view signature = docs_signature) {
  return "/apps/3/events?" + std::string(query) + "&auth_signature=" + std::string(signature);
}

TEST(PusherSignature, AcceptsPushersExample) {
  EXPECT_EQ(md5_hex(docs_body), "ec365a775a4cd0599faeb73354201b6f");
  EXPECT_FALSE(check_signature(docs_app, "POST", docs_target(), docs_body, 1353088179));
}

TEST(PusherSignature, ParameterOrderInTheUrlDoesNotMatter) {
  const std::string reordered =
      "/apps/3/events?auth_signature=" + std::string(docs_signature) +
      "&body_md5=ec365a775a4cd0599faeb73354201b6f&auth_version=1.0&auth_timestamp=1353088179&auth_key=278d425bdf160c739803";
  EXPECT_FALSE(check_signature(docs_app, "POST", reordered, docs_body, 1353088179));
}

TEST(PusherSignature, RefusesTamperingAndOldRequests) {
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target(), std::string(docs_body) + " ", 1353088179)->status, 401u);
  EXPECT_EQ(check_signature(docs_app, "GET", docs_target(), docs_body, 1353088179)->status, 401u);
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target(docs_query, std::string(64, '0')), docs_body, 1353088179)->status,
            401u);
  EXPECT_FALSE(check_signature(docs_app, "POST", docs_target(), docs_body, 1353088179 + 600));
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target(), docs_body, 1353088179 + 601)->status, 401u);
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target(), docs_body, 1353088179 - 601)->status, 401u);
  const App other{"3", "278d425bdf160c739803", "another-secret", {}};
  EXPECT_EQ(check_signature(other, "POST", docs_target(), docs_body, 1353088179)->status, 401u);
  EXPECT_EQ(check_signature(docs_app, "POST", "/apps/3/events", docs_body, 1353088179)->status, 401u);
  // An added parameter is signed too.
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target() + "&info=x", docs_body, 1353088179)->status, 401u);
  EXPECT_EQ(check_signature(docs_app, "POST", docs_target() + "&auth_key=x", docs_body, 1353088179)->status, 400u);
}

// ---------------------------------------------------------------------------------------------
// The HTTP API's routes and bodies

TEST(PusherApi, Routes) {
  EXPECT_EQ(route_api("POST", "/apps/1/events")->call, ApiCall::events);
  EXPECT_EQ(route_api("POST", "/apps/1/batch_events")->call, ApiCall::batch_events);
  EXPECT_EQ(route_api("GET", "/apps/1/channels")->call, ApiCall::channels);
  auto users = route_api("GET", "/apps/1/channels/presence-a/users");
  EXPECT_EQ(users->call, ApiCall::channel_users);
  EXPECT_EQ(users->channel, "presence-a");
  auto term = route_api("POST", "/apps/1/users/u%201/terminate_connections");
  EXPECT_EQ(term->call, ApiCall::terminate_connections);
  EXPECT_EQ(term->user_id, "u 1");
  EXPECT_EQ(route_api("GET", "/apps/1/events").error().status, 405u);
  EXPECT_EQ(route_api("GET", "/apps/1/nothing").error().status, 404u);
  EXPECT_EQ(route_api("GET", "/apps/1/channels/bad%20name").error().status, 400u);
}

TEST(PusherApi, EventBodies) {
  auto e = parse_event(R"({"name":"n","data":"{}","channels":["a","b"],"socket_id":"1.2"})");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->channels.size(), 2u);
  EXPECT_EQ(e->socket_id, "1.2");
  EXPECT_EQ(parse_event(R"({"name":"n","data":{"x":1},"channel":"a"})")->data, R"({"x":1})");
  EXPECT_FALSE(parse_event(R"({"data":"{}","channel":"a"})"));
  EXPECT_FALSE(parse_event(R"({"name":"n","channel":"a"})"));
  EXPECT_FALSE(parse_event(R"({"name":"n","data":"","channel":"a:b"})"));
  EXPECT_FALSE(parse_event(R"({"name":"n","data":"","channel":"a","socket_id":"x"})"));
  std::string many = R"({"name":"n","data":"","channels":[)";
  for (int i = 0; i < 101; ++i) many += (i ? ",\"c" : "\"c") + std::to_string(i) + "\"";
  EXPECT_EQ(parse_event(many + "]}").error().status, 400u);
  auto batch = parse_batch(R"({"batch":[{"name":"a","data":"1","channel":"x"},{"name":"b","data":"2","channel":"y"}]})");
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->size(), 2u);
  EXPECT_FALSE(parse_batch(R"({"batch":[]})"));
}

// ---------------------------------------------------------------------------------------------
// Between the protocols

TEST(PusherApi, EventsAnswerTheCountsInfoAsksFor) {
  auto e = parse_event(R"({"name":"n","data":"d","channels":["presence-a","b"],"info":"user_count, subscription_count"})");
  ASSERT_TRUE(e);
  EXPECT_TRUE(e->info_users);
  EXPECT_TRUE(e->info_subscriptions);
  const std::vector<ChannelInfo> counts{{"", 3, 2}, {"", 5, 0}};
  EXPECT_EQ(json::parse(events_body(*e, counts)),
            json::parse(R"({"channels":{"presence-a":{"user_count":2,"subscription_count":3},"b":{"subscription_count":5}}})"));
  auto to_user = parse_event(R"({"name":"n","data":"d","channel":"#server-to-user-7","info":"subscription_count"})");
  ASSERT_TRUE(to_user);
  EXPECT_EQ(json::parse(events_body(*to_user, {{"", 0, 0}})), json::parse(R"({"channels":{"#server-to-user-7":{}}})"));
  auto plain = parse_event(R"({"name":"n","data":"d","channel":"b"})");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->wants_info());
  EXPECT_EQ(events_body(*plain, {}), "{}");
  for (auto bad : {R"({"name":"n","data":"d","channel":"b","info":"everything"})",
                   R"({"name":"n","data":"d","channel":"b","info":["user_count"]})"})
    EXPECT_EQ(parse_event(bad).error().status, 400) << bad;
  auto batch = parse_batch(R"({"batch":[{"name":"n","data":"d","channel":"b","info":"subscription_count"},
                                        {"name":"n","data":"d","channel":"c"}]})");
  ASSERT_TRUE(batch);
  EXPECT_EQ(json::parse(batch_body(*batch, {{"", 4, 0}, {"", 9, 0}})),
            json::parse(R"({"batch":[{"subscription_count":4},{}]})"));
  batch->front().info_subscriptions = false;
  EXPECT_EQ(batch_body(*batch, {}), "{}");
}

TEST(PusherForm, APusherEventRoundTrips) {
  auto native = native_message("my-event", R"({"a":1})", "1.2");
  native["topic"] = "app:2:chat";
  native["timestamp"] = "2026-01-01T00:00:00.000Z";
  auto form = to_pusher(json::serialize(native));
  auto frame = obj(form.frame_json);
  EXPECT_EQ(frame["event"], "my-event");
  EXPECT_EQ(frame["channel"], "chat");
  EXPECT_EQ(frame["data"], R"({"a":1})");
  EXPECT_EQ(form.excluded, "1.2");
}

TEST(PusherForm, PresenceClientEventsNameTheirSender) {
  auto native = native_message("client-typing", R"({"a":1})", "1.2", "app:2:u1");
  native["topic"] = "app:2:presence-room";
  auto frame = obj(to_pusher(boost::json::serialize(native)).frame_json);
  EXPECT_EQ(frame["user_id"], "u1");
  EXPECT_EQ(frame["channel"], "presence-room");
  // Only client events carry it: an API event with a user_id field stays as sent.
  auto api = obj(to_pusher(R"({"event":"note","data":"x","user_id":"u1","topic":"c"})").frame_json);
  EXPECT_FALSE(api.contains("user_id"));
}

TEST(PusherForm, ANativeMessageBecomesAnEventNamedByItsType) {
  auto frame = obj(to_pusher(R"({"type":"order-updated","data":{"id":7},"topic":"orders"})").frame_json);
  EXPECT_EQ(frame["event"], "order-updated");
  EXPECT_EQ(frame["channel"], "orders");
  EXPECT_EQ(frame["data"], R"({"id":7})");
  auto whole = obj(to_pusher(R"({"text":"hi"})").frame_json);
  EXPECT_EQ(whole["event"], "message");
  EXPECT_FALSE(whole.contains("channel"));
  EXPECT_EQ(whole["data"], R"({"text":"hi"})");
  EXPECT_TRUE(to_pusher("not json").frame_json.empty());
}

TEST(PusherForm, PresenceEventsBecomeMemberEventsForOthers) {
  auto join = to_pusher(R"({"type":"presence-join","topic":"app:2:presence-a","user-id":"app:2:u1","info":{"n":1}})");
  auto frame = obj(join.frame_json);
  EXPECT_EQ(frame["event"], "pusher_internal:member_added");
  EXPECT_EQ(frame["channel"], "presence-a");
  EXPECT_EQ(obj(frame["data"].as_string()), obj(R"({"user_id":"u1","user_info":{"n":1}})"));
  EXPECT_EQ(join.excluded_user, "app:2:u1");
  auto leave = obj(to_pusher(R"({"type":"presence-leave","topic":"presence-a","user-id":"u1"})").frame_json);
  EXPECT_EQ(leave["event"], "pusher_internal:member_removed");
  EXPECT_EQ(leave["data"], R"({"user_id":"u1"})");
}

}  // namespace
}  // namespace boundary::realtime::core::pusher

namespace boundary::realtime::core::pusher {
namespace {

TEST(PusherWebhook, BodyAndSignature) {
  std::vector<WebhookEvent> events{{"channel_occupied", "c", {}, {}, {}, {}},
                                   {"member_added", "presence-a", "u1", {}, {}, {}},
                                   {"client_event", "private-a", "", "client-x", R"({"a":1})", "1.2"}};
  const auto body = webhook_body(1700000000123, "node-1", events);
  auto o = boost::json::parse(body).as_object();
  EXPECT_EQ(o["time_ms"], 1700000000123);
  EXPECT_EQ(o["batch_id"], "node-1");
  auto& list = o["events"].as_array();
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].as_object(), boost::json::parse(R"({"name":"channel_occupied","channel":"c"})").as_object());
  EXPECT_EQ(list[1].as_object().at("user_id"), "u1");
  EXPECT_EQ(list[2].as_object().at("data"), R"({"a":1})");
  EXPECT_EQ(list[2].as_object().at("socket_id"), "1.2");
  EXPECT_FALSE(list[2].as_object().contains("user_id"));
  EXPECT_EQ(webhook_signature("secret", body), hmac_sha256_hex("secret", body));
}

TEST(PusherWebhook, ClusterClaimKeysAndTheInstanceIndex) {
  EXPECT_EQ(webhook_instances_key("rt"), "rt:wn");
  EXPECT_EQ(webhook_index_key("rt", "0123abcd"), "rt:wx:0123abcd");
  // The claim keys share the topic's hash slot with its channel.
  EXPECT_TRUE(occupancy_key("rt", "orders").starts_with("rt:wo:{"));
  EXPECT_TRUE(occupancy_key("rt", "orders").ends_with("}orders"));
  EXPECT_EQ(member_key("rt", "presence-x", "ann"), occupancy_key("rt", "presence-x").replace(3, 2, "wm") + "\nann");
  // Index entries round-trip; a user holding the separator stays whole (topics hold none).
  for (auto [topic, user] : {std::pair<std::string, std::string>{"presence-x", "ann"}, {"app:2:presence-y", "a\nb"}}) {
    const auto entry = member_entry(topic, user);  // the parsed views point into it
    auto m = parse_index_entry(entry);
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->member);
    EXPECT_EQ(m->topic, topic);
    EXPECT_EQ(m->user, user);
  }
  const auto entry = occupancy_entry("orders");
  auto o = parse_index_entry(entry);
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->member);
  EXPECT_EQ(o->topic, "orders");
  for (std::string_view bad : {"", "o", "m", "mtopic", "m\nuser", "mtopic\n", "xtopic"})
    EXPECT_FALSE(parse_index_entry(bad)) << bad;
}

TEST(PusherWebhook, RetriesBackOffToAMinute) {
  EXPECT_EQ(webhook_retry_delay(1), std::chrono::milliseconds(1000));
  EXPECT_EQ(webhook_retry_delay(2), std::chrono::milliseconds(2000));
  EXPECT_EQ(webhook_retry_delay(3), std::chrono::milliseconds(4000));
  EXPECT_EQ(webhook_retry_delay(7), std::chrono::milliseconds(60000));
  EXPECT_EQ(webhook_retry_delay(100), std::chrono::milliseconds(60000));
}

TEST(PusherWebhook, AppsMayNameAWebhookUrl) {
  auto app = parse_app("1:key:secret-1:https://example.com:8443/hooks?x=1");
  ASSERT_TRUE(app);
  EXPECT_EQ(app->secret, "secret-1");
  EXPECT_EQ(app->webhook, "https://example.com:8443/hooks?x=1");
  EXPECT_FALSE(parse_app("1:key:secret-1:ftp://example.com/"));
  EXPECT_FALSE(parse_app("1:key:secret-1:"));
}

TEST(PusherWebhook, TopicsMapBackToAppsAndChannels) {
  const std::vector<App> apps{{"1", "k1", "secret-1", {}}, {"2", "k2", "secret-2", {}}};
  auto a = app_channel("presence-x", apps);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->app, 0u);
  EXPECT_EQ(a->channel, "presence-x");
  auto b = app_channel("app:2:room", apps);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->app, 1u);
  EXPECT_EQ(b->channel, "room");
  EXPECT_FALSE(app_channel("app:1:room", apps));  // the default app's topics carry no prefix
  EXPECT_FALSE(app_channel("app:9:room", apps));
  EXPECT_FALSE(app_channel("order:1", apps));
  EXPECT_FALSE(app_channel("room", {}));
}

}  // namespace
}  // namespace boundary::realtime::core::pusher
