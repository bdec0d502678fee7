// Integration tests: the real realtime-server binary against Boost.Beast's WebSocket client,
// a framing implementation independent of the server's hand-written one (docs/protocol.md).
//
// Every test starts its own server on a free loopback port. All client I/O runs on the
// fixture's io_context in the test thread; each wait drives it with a deadline (see
// server_process.hpp), so no wait is unbounded and no sleep stands in for synchronisation.
// "Nobody else received anything" is checked without waiting for silence: after the message
// under test the test broadcasts a numbered marker, and each client's next message must be
// that marker (the API's sends reach a connection in the order the calls returned).

#include <sys/wait.h>

#include <csignal>
#include <ctime>
#include <deque>
#include <iostream>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "server_process.hpp"
#include "ws_client.hpp"

namespace boundary::realtime::itest {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;

const std::regex uuid_v4_re("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                            std::regex::icase);
const std::regex timestamp_re(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");

bool matches(const std::string& text, const std::regex& re) { return std::regex_match(text, re); }

// Seconds between an ISO 8601 UTC millisecond timestamp and now (for "is it a real clock").
double age_seconds(const std::string& timestamp) {
  std::tm tm{};
  int ms = 0;
  if (std::sscanf(timestamp.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
    return 1e9;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::difftime(std::time(nullptr), ::timegm(&tm));
}

json::object message(std::string type, json::object fields = {}) {
  fields["type"] = std::move(type);
  return fields;
}

// ---------------------------------------------------------------------------------------------

class BeastClient : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure() && server_)
      std::cerr << "------ realtime-server log ------\n" << server_->log() << "------ end of log ------\n";
  }

  void start_server(std::vector<std::string> extra_args = {}) {
    server_.emplace(std::move(extra_args));
    server_->start();
  }

  // Connects with a token minted by `realtime-server token`; the first message must be the
  // connected frame, kept in `hello`.
  std::unique_ptr<WsClient> connect(const std::string& user_id, const std::vector<std::string>& roles,
                                    const std::string& name = {}) {
    auto client = std::make_unique<WsClient>(ioc_, name.empty() ? user_id : name);
    const auto ec = client->handshake(server_->port(), "/ws?token=" + server_->token(user_id, roles));
    if (ec)
      throw std::runtime_error("upgrade for " + user_id + " refused: " + ec.message() + " (HTTP " +
                               std::to_string(client->response().result_int()) + ")");
    const auto first = client->next();
    if (!first) throw std::runtime_error(client->name + ": no connected frame; " + client->describe_close());
    client->hello = parse_object(*first);
    if (str(client->hello, "type") != "connected")
      throw std::runtime_error(client->name + ": first frame is not `connected`: " + *first);
    client->id = str(client->hello, "connection-id");
    return client;
  }

  json::object next_json(WsClient& client, Duration timeout = default_timeout) {
    const auto text = client.next(timeout);
    if (!text) throw std::runtime_error(client.name + ": no message; " + client.describe_close());
    return parse_object(*text);
  }

  HttpReply http_call(http::verb verb, const std::string& target, const std::string& body = {}) {
    HttpConnection connection(ioc_, server_->port());
    return connection.request(verb, target, body, server_->api_key());
  }

  // POST to the API; anything but 200 throws.
  json::object api(const std::string& target, const json::object& body) {
    const auto reply = http_call(http::verb::post, target, json::serialize(body));
    if (reply.status != 200)
      throw std::runtime_error("POST " + target + " -> HTTP " + std::to_string(reply.status) + " " + reply.body);
    return parse_object(reply.body);
  }

  std::int64_t connection_count() {
    const auto reply = http_call(http::verb::get, "/api/connections");
    if (reply.status != 200) throw std::runtime_error("GET /api/connections -> " + std::to_string(reply.status));
    return num(parse_object(reply.body), "count");
  }

  // Polls `condition` until it holds or `timeout` passes, keeping client I/O going meanwhile.
  bool eventually(const std::function<bool()>& condition, Duration timeout = default_timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!condition()) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      // A pause that keeps every client's I/O going (and has work even when no client is open).
      asio::steady_timer pause(ioc_, 20ms);
      bool paused = false;
      pause.async_wait([&paused](beast::error_code) { paused = true; });
      run_until(ioc_, [&] { return paused; }, 1s);
    }
    return true;
  }

  // Broadcasts a fresh marker (delivered must equal the number of clients) and checks that it
  // is every client's next message: whatever a client was not meant to receive, it did not.
  void expect_marker_next(const std::vector<WsClient*>& clients) {
    const auto n = ++markers_;
    const auto reply = api("/api/broadcast", {{"message", message("marker", {{"n", n}})}});
    EXPECT_EQ(num(reply, "delivered"), static_cast<std::int64_t>(clients.size()));
    for (auto* client : clients) {
      const auto m = next_json(*client);
      EXPECT_EQ(str(m, "type"), "marker") << client->name << " got " << json::serialize(m);
      if (str(m, "type") == "marker") {
        EXPECT_EQ(num(m, "n"), n) << client->name;
      }
    }
  }

  json::object ping(WsClient& client, json::value ref) {
    client.send({{"action", "ping"}, {"ref", ref}});
    return next_json(client);
  }

  // Two devices of alice, bob, and carol; roles chosen so that every routing kind has a
  // strict subset of recipients.
  void connect_crowd() {
    alice1_ = connect("alice", {"admin"}, "alice#1");
    alice2_ = connect("alice", {"user"}, "alice#2");
    bob_ = connect("bob", {"user"});
    carol_ = connect("carol", {"admin", "ops"});
    crowd_ = {alice1_.get(), alice2_.get(), bob_.get(), carol_.get()};
  }

  asio::io_context ioc_;  // declared first: outlives the clients and their pending handlers
  std::optional<ServerProcess> server_;
  std::unique_ptr<WsClient> alice1_, alice2_, bob_, carol_;
  std::vector<WsClient*> crowd_;
  std::int64_t markers_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Handshake

TEST_F(BeastClient, ConnectedFrameComesFirst) {
  start_server();
  const auto client = connect("u-42", {"admin", "user"});
  const auto& hello = client->hello;
  EXPECT_EQ(str(hello, "type"), "connected");
  EXPECT_TRUE(matches(str(hello, "connection-id"), uuid_v4_re)) << json::serialize(hello);
  EXPECT_EQ(str(hello, "user-id"), "u-42");
  ASSERT_TRUE(hello.contains("roles") && hello.at("roles").is_array()) << json::serialize(hello);
  EXPECT_EQ(hello.at("roles"), (json::array{"admin", "user"}));
  const auto timestamp = str(hello, "timestamp");
  EXPECT_TRUE(matches(timestamp, timestamp_re)) << timestamp;
  EXPECT_LT(std::abs(age_seconds(timestamp)), 60.0) << timestamp << " is not the current UTC time";

  const auto other = connect("u-42", {});
  EXPECT_NE(other->id, client->id) << "connection ids must be unique";
  EXPECT_EQ(other->hello.at("roles"), json::array{});
}

TEST_F(BeastClient, BearerHeaderTokenIsAccepted) {
  start_server();
  WsClient client(ioc_);
  const auto ec = client.handshake(server_->port(), "/ws", server_->token("hdr-user", {"ops"}));
  ASSERT_FALSE(ec) << ec.message() << " HTTP " << client.response().result_int() << " "
                   << client.response().body();
  const auto hello = next_json(client);
  EXPECT_EQ(str(hello, "type"), "connected");
  EXPECT_EQ(str(hello, "user-id"), "hdr-user");
}

TEST_F(BeastClient, UnauthorizedUpgradeIsRefusedWith401) {
  start_server();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"no token", "/ws"},
      {"malformed token", "/ws?token=not-a-jwt"},
      {"token signed with another secret", "/ws?token=" + server_->token("mallory", {}, random_alnum(48))},
  };
  for (const auto& [what, target] : cases) {
    SCOPED_TRACE(what);
    WsClient client(ioc_, what);
    const auto ec = client.handshake(server_->port(), target);
    EXPECT_EQ(ec, websocket::error::upgrade_declined) << ec.message();
    EXPECT_EQ(client.response().result_int(), 401u);
    EXPECT_EQ(parse_object(client.response().body()), (json::object{{"error", "Unauthorized"}}))
        << client.response().body();
  }
  EXPECT_EQ(connection_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Routing: delivered counts, and exactly the intended connections receive

TEST_F(BeastClient, SendToUserReachesEveryDeviceOfThatUserOnly) {
  start_server();
  connect_crowd();
  const auto reply = api("/api/send-to-user", {{"user-id", "alice"}, {"message", message("note", {{"text", "hi"}})}});
  EXPECT_EQ(num(reply, "delivered"), 2);
  for (auto* device : {alice1_.get(), alice2_.get()}) {
    const auto m = next_json(*device);
    EXPECT_EQ(str(m, "type"), "note") << device->name;
    EXPECT_EQ(str(m, "text"), "hi") << device->name;
    EXPECT_TRUE(matches(str(m, "timestamp"), timestamp_re)) << "server must add a timestamp: " << json::serialize(m);
  }
  expect_marker_next(crowd_);

  EXPECT_EQ(num(api("/api/send-to-user", {{"user-id", "nobody"}, {"message", message("note")}}), "delivered"), 0);
  expect_marker_next(crowd_);
}

TEST_F(BeastClient, SendToRoleReachesOnlyHoldersOfTheRole) {
  start_server();
  connect_crowd();
  const auto reply = api("/api/send-to-role", {{"role", "admin"}, {"message", message("for-admins")}});
  EXPECT_EQ(num(reply, "delivered"), 2);
  for (auto* admin : {alice1_.get(), carol_.get()}) EXPECT_EQ(str(next_json(*admin), "type"), "for-admins");
  expect_marker_next(crowd_);

  EXPECT_EQ(num(api("/api/send-to-role", {{"role", "ops"}, {"message", message("for-ops")}}), "delivered"), 1);
  EXPECT_EQ(str(next_json(*carol_), "type"), "for-ops");
  expect_marker_next(crowd_);
}

TEST_F(BeastClient, BroadcastReachesEveryConnectionOnce) {
  start_server();
  connect_crowd();
  const std::string own_timestamp = "2020-01-01T00:00:00.000Z";
  const auto reply = api("/api/broadcast", {{"message", message("news", {{"timestamp", own_timestamp}})}});
  EXPECT_EQ(num(reply, "delivered"), 4);
  for (auto* client : crowd_) {
    const auto m = next_json(*client);
    EXPECT_EQ(str(m, "type"), "news") << client->name;
    EXPECT_EQ(str(m, "timestamp"), own_timestamp) << "a message's own timestamp must be kept";
  }
  expect_marker_next(crowd_);
}

TEST_F(BeastClient, SendToConnectionReachesOnlyThatConnection) {
  start_server();
  connect_crowd();
  auto reply = api("/api/send-to-connection", {{"connection-id", alice2_->id}, {"message", message("direct")}});
  EXPECT_EQ(reply.at("delivered"), json::value(true)) << json::serialize(reply);
  EXPECT_EQ(str(next_json(*alice2_), "type"), "direct");
  expect_marker_next(crowd_);

  reply = api("/api/send-to-connection",
              {{"connection-id", "00000000-0000-4000-8000-000000000000"}, {"message", message("direct")}});
  EXPECT_EQ(reply.at("delivered"), json::value(false)) << json::serialize(reply);
  expect_marker_next(crowd_);
}

TEST_F(BeastClient, ApiPublishReachesOnlyTopicSubscribers) {
  start_server();
  connect_crowd();
  for (auto* subscriber : {alice2_.get(), carol_.get()}) {
    subscriber->send({{"action", "subscribe"}, {"topic", "order:123"}});
    EXPECT_EQ(str(next_json(*subscriber), "type"), "subscribed");
  }
  auto reply = api("/api/publish", {{"topic", "order:123"}, {"message", message("order-update")}});
  EXPECT_EQ(num(reply, "delivered"), 2);
  for (auto* subscriber : {alice2_.get(), carol_.get()}) {
    const auto m = next_json(*subscriber);
    EXPECT_EQ(str(m, "type"), "order-update") << subscriber->name;
    EXPECT_EQ(str(m, "topic"), "order:123") << "server must add the topic: " << json::serialize(m);
  }
  expect_marker_next(crowd_);

  // A subscription made through the API counts the same.
  reply = api("/api/subscribe", {{"connection-id", bob_->id}, {"topic", "order:123"}});
  EXPECT_EQ(reply.at("subscribed"), json::value(true)) << json::serialize(reply);
  EXPECT_EQ(num(api("/api/publish", {{"topic", "order:123"}, {"message", message("order-update")}}), "delivered"), 3);
  for (auto* subscriber : {alice2_.get(), bob_.get(), carol_.get()})
    EXPECT_EQ(str(next_json(*subscriber), "type"), "order-update") << subscriber->name;
  expect_marker_next(crowd_);

  EXPECT_EQ(num(api("/api/publish", {{"topic", "order:999"}, {"message", message("order-update")}}), "delivered"), 0);
  expect_marker_next(crowd_);
}

TEST_F(BeastClient, ClientPublishReachesSubscribersOfAllowedTopicsOnly) {
  start_server({"--publish-patterns", "chat:*"});
  connect_crowd();
  for (auto* subscriber : {alice1_.get(), bob_.get()}) {
    subscriber->send({{"action", "subscribe"}, {"topic", "chat:general"}});
    EXPECT_EQ(str(next_json(*subscriber), "type"), "subscribed");
  }
  carol_->send({{"action", "publish"}, {"topic", "chat:general"}, {"message", message("chat", {{"text", "yo"}})},
                {"ref", "p1"}});
  const auto published = next_json(*carol_);
  EXPECT_EQ(str(published, "type"), "published") << json::serialize(published);
  EXPECT_EQ(str(published, "topic"), "chat:general");
  EXPECT_EQ(num(published, "delivered"), 2);
  EXPECT_EQ(str(published, "ref"), "p1");
  for (auto* subscriber : {alice1_.get(), bob_.get()}) {
    const auto m = next_json(*subscriber);
    EXPECT_EQ(str(m, "type"), "chat") << subscriber->name;
    EXPECT_EQ(str(m, "text"), "yo");
    EXPECT_EQ(str(m, "topic"), "chat:general");
  }
  // `*` matches one segment only; other prefixes are not publishable at all.
  for (const char* topic : {"chat:general:extra", "news:today"}) {
    carol_->send({{"action", "publish"}, {"topic", topic}, {"message", message("chat")}, {"ref", topic}});
    const auto refused = next_json(*carol_);
    EXPECT_EQ(str(refused, "type"), "error") << topic << ": " << json::serialize(refused);
    EXPECT_EQ(str(refused, "code"), "forbidden") << topic;
    EXPECT_EQ(str(refused, "ref"), topic);
  }
  expect_marker_next(crowd_);
}

// ---------------------------------------------------------------------------------------------
// Ordering

TEST_F(BeastClient, OrderOf1000SendsToOneConnectionIsPreserved) {
  constexpr int count = 1000;
  start_server();
  const auto client = connect("seq-user", {});
  HttpConnection keep_alive(ioc_, server_->port());
  for (int seq = 0; seq < count; ++seq) {
    const json::object body{{"connection-id", client->id}, {"message", message("seq", {{"seq", seq}})}};
    const auto reply = keep_alive.request(http::verb::post, "/api/send-to-connection", json::serialize(body),
                                          server_->api_key());
    ASSERT_EQ(reply.status, 200u) << "send " << seq << ": " << reply.body;
    ASSERT_EQ(parse_object(reply.body).at("delivered"), json::value(true)) << "send " << seq;
  }
  EXPECT_EQ(keep_alive.connects(), 1) << "the API must keep the HTTP connection alive";

  ASSERT_TRUE(client->wait_for_messages(count, 20s))
      << "received " << client->queued() << " of " << count << "; " << client->describe_close();
  int out_of_order = 0;
  for (int seq = 0; seq < count; ++seq) {
    const auto m = next_json(*client);
    if (str(m, "type") != "seq" || num(m, "seq") != seq) {
      if (++out_of_order <= 5) ADD_FAILURE() << "message " << seq << " is " << json::serialize(m);
    }
  }
  EXPECT_EQ(out_of_order, 0);
  expect_marker_next({client.get()});  // and nothing was delivered twice
}

// ---------------------------------------------------------------------------------------------
// Commands

TEST_F(BeastClient, SubscribeAndUnsubscribeRepliesEchoRef) {
  start_server();
  const auto client = connect("sub-user", {});
  client->send({{"action", "subscribe"}, {"topic", "order:123"}, {"ref", "r-1"}});
  EXPECT_EQ(next_json(*client), (json::object{{"type", "subscribed"}, {"topic", "order:123"}, {"ref", "r-1"}}));

  client->send({{"action", "subscribe"}, {"topic", "order:123"}, {"ref", 2}});  // idempotent
  EXPECT_EQ(next_json(*client), (json::object{{"type", "subscribed"}, {"topic", "order:123"}, {"ref", 2}}));
  EXPECT_EQ(num(api("/api/publish", {{"topic", "order:123"}, {"message", message("update")}}), "delivered"), 1);
  EXPECT_EQ(str(next_json(*client), "type"), "update");
  expect_marker_next({client.get()});  // one copy only, despite subscribing twice

  client->send({{"action", "unsubscribe"}, {"topic", "order:123"}, {"ref", 3}});
  EXPECT_EQ(next_json(*client), (json::object{{"type", "unsubscribed"}, {"topic", "order:123"}, {"ref", 3}}));
  EXPECT_EQ(num(api("/api/publish", {{"topic", "order:123"}, {"message", message("update")}}), "delivered"), 0);
  expect_marker_next({client.get()});

  EXPECT_EQ(ping(*client, "p"), (json::object{{"type", "pong"}, {"ref", "p"}}));
}

TEST_F(BeastClient, CommandErrorsAreRepliesAndLeaveTheConnectionOpen) {
  start_server();
  const auto client = connect("err-user", {"user"});
  struct Case {
    std::string payload;
    std::string code;
    std::string ref;  // empty: the command carries none
  };
  const std::vector<Case> cases = {
      {"this is not json", "bad-request", ""},
      {"[1,2,3]", "bad-request", ""},
      {R"({"action":"dance","ref":"e1"})", "bad-request", "e1"},
      {R"({"action":"subscribe","ref":"e2"})", "bad-request", "e2"},
      {R"({"action":"subscribe","topic":"has space","ref":"e3"})", "invalid-topic", "e3"},
      {R"({"action":"subscribe","topic":")" + std::string(257, 'x') + R"(","ref":"e4"})", "invalid-topic", "e4"},
      {R"({"action":"subscribe","topic":"user:someone-else","ref":"e5"})", "forbidden", "e5"},
      {R"({"action":"subscribe","topic":"role:admin","ref":"e6"})", "forbidden", "e6"},
      {R"({"action":"publish","topic":"chat:x","message":{"type":"t"},"ref":"e7"})", "forbidden", "e7"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.payload.substr(0, 80));
    ASSERT_FALSE(client->write(c.payload));
    const auto reply = next_json(*client);
    EXPECT_EQ(str(reply, "type"), "error") << json::serialize(reply);
    EXPECT_EQ(str(reply, "code"), c.code) << json::serialize(reply);
    const auto* text = reply.if_contains("message");
    EXPECT_TRUE(text && text->is_string() && !text->as_string().empty()) << json::serialize(reply);
    if (!c.ref.empty()) {
      EXPECT_EQ(str(reply, "ref"), c.ref);
    }
    ASSERT_FALSE(client->closed()) << client->describe_close();
  }
  // Still open and fully functional, including the topics the policy allows.
  EXPECT_EQ(ping(*client, 7), (json::object{{"type", "pong"}, {"ref", 7}}));
  client->send({{"action", "subscribe"}, {"topic", "user:err-user"}});
  EXPECT_EQ(str(next_json(*client), "type"), "subscribed");
  client->send({{"action", "subscribe"}, {"topic", "role:user"}});
  EXPECT_EQ(str(next_json(*client), "type"), "subscribed");
}

// ---------------------------------------------------------------------------------------------
// Protocol violations

TEST_F(BeastClient, BinaryFrameClosesWith1003) {
  start_server();
  const auto offender = connect("offender", {});
  const auto bystander = connect("bystander", {});
  EXPECT_FALSE(offender->write(R"({"action":"ping"})", /*binary=*/true));
  ASSERT_TRUE(offender->wait_closed(default_timeout)) << "binary frame did not close the connection";
  EXPECT_EQ(offender->read_error(), websocket::error::closed) << offender->describe_close();
  EXPECT_EQ(offender->close_reason().code, 1003);

  EXPECT_TRUE(eventually([&] { return connection_count() == 1; })) << connection_count();
  EXPECT_EQ(str(ping(*bystander, "still-here"), "type"), "pong");
  expect_marker_next({bystander.get()});
}

TEST_F(BeastClient, OversizedMessageClosesWith1009) {
  start_server({"--max-message-bytes", "1024"});
  const auto offender = connect("offender", {});
  const auto bystander = connect("bystander", {});

  const std::string under_limit(900, 'a');  // the whole command stays below 1024 bytes
  EXPECT_EQ(ping(*offender, json::string(under_limit)), (json::object{{"type", "pong"}, {"ref", under_limit}}));

  const json::object oversized{{"action", "ping"}, {"ref", std::string(2000, 'b')}};
  EXPECT_FALSE(offender->write(json::serialize(oversized)));
  ASSERT_TRUE(offender->wait_closed(default_timeout)) << "oversized message did not close the connection";
  EXPECT_EQ(offender->read_error(), websocket::error::closed) << offender->describe_close();
  EXPECT_EQ(offender->close_reason().code, 1009);

  EXPECT_TRUE(eventually([&] { return connection_count() == 1; })) << connection_count();
  EXPECT_EQ(str(ping(*bystander, "still-here"), "type"), "pong");
  expect_marker_next({bystander.get()});
}

// ---------------------------------------------------------------------------------------------
// Keep-alive, shutdown, disconnect

TEST_F(BeastClient, ServerPingIsAnsweredByBeastAndConnectionSurvivesIdleTimeout) {
  start_server({"--idle-timeout", "2"});
  const auto live = connect("live", {});
  // A peer that never reads never answers pings: it must be closed, or surviving proves nothing.
  WsClient silent(ioc_, "silent");
  ASSERT_FALSE(silent.handshake(server_->port(), "/ws?token=" + server_->token("silent", {}), {},
                                /*start_reading=*/false));
  EXPECT_TRUE(eventually([&] { return connection_count() == 2; }));

  // 5 s of only reading: more than two idle timeouts, with pings due at half of one.
  EXPECT_FALSE(live->wait_closed(5s)) << "a connection answering pings was closed: " << live->describe_close();
  EXPECT_GE(live->pings_received(), 2u) << "the server must ping an idle connection at half the timeout; "
                                       << live->describe_close();
  EXPECT_EQ(live->queued(), 0u);
  EXPECT_EQ(ping(*live, "after-idle"), (json::object{{"type", "pong"}, {"ref", "after-idle"}}));

  EXPECT_TRUE(eventually([&] { return connection_count() == 1; }))
      << "the silent peer was not closed after the idle timeout; count " << connection_count();
}

TEST_F(BeastClient, GracefulShutdownSendsNoticeThen1001) {
  start_server();
  const auto first = connect("first", {});
  const auto second = connect("second", {"admin"});
  server_->signal(SIGTERM);
  for (auto* client : {first.get(), second.get()}) {
    const auto notice = next_json(*client);
    EXPECT_EQ(str(notice, "type"), "server-shutdown") << client->name << ": " << json::serialize(notice);
    EXPECT_EQ(str(notice, "message"), "Server shutting down gracefully");
    EXPECT_TRUE(matches(str(notice, "timestamp"), timestamp_re)) << json::serialize(notice);
    ASSERT_TRUE(client->wait_closed(default_timeout)) << client->name << " was not closed";
    EXPECT_EQ(client->read_error(), websocket::error::closed) << client->describe_close();
    EXPECT_EQ(client->close_reason().code, 1001) << client->name;
  }
  const auto status = server_->wait_exit(10s);
  ASSERT_TRUE(status.has_value()) << "the server did not exit within 10 s of SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status)) << "wait status " << *status;
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST_F(BeastClient, DisconnectByUserClosesAllItsConnections) {
  start_server();
  connect_crowd();
  ASSERT_TRUE(eventually([&] { return connection_count() == 4; })) << connection_count();

  EXPECT_EQ(num(api("/api/disconnect", {{"user-id", "alice"}}), "disconnected"), 2);
  for (auto* device : {alice1_.get(), alice2_.get()})
    EXPECT_TRUE(device->wait_closed(default_timeout)) << device->name << " is still open";
  EXPECT_TRUE(eventually([&] { return connection_count() == 2; })) << connection_count();
  EXPECT_EQ(str(ping(*bob_, 1), "type"), "pong");
  expect_marker_next({bob_.get(), carol_.get()});

  EXPECT_EQ(num(api("/api/disconnect", {{"connection-id", carol_->id}}), "disconnected"), 1);
  EXPECT_TRUE(carol_->wait_closed(default_timeout)) << "carol is still open";
  EXPECT_EQ(num(api("/api/disconnect", {{"user-id", "nobody"}}), "disconnected"), 0);
  EXPECT_TRUE(eventually([&] { return connection_count() == 1; })) << connection_count();
  EXPECT_FALSE(bob_->closed());
  expect_marker_next({bob_.get()});
}

}  // namespace
}  // namespace boundary::realtime::itest
