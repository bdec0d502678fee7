#include "boundary/realtime/in_memory_realtime_service.hpp"

#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "boundary/realtime/system_clock.hpp"
#include "boundary/realtime/testing/fixed_claims_verifier.hpp"
#include "boundary/realtime/testing/manual_clock.hpp"
#include "boundary/realtime/testing/recording_connection.hpp"

namespace boundary::realtime {
namespace {
namespace json = boost::json;
using namespace std::chrono_literals;
using testing::FixedClaimsVerifier;
using testing::ManualClock;
using testing::RecordingConnection;
using SubscribeResult = RealtimeService::SubscribeResult;

Identity user(std::string id, std::vector<std::string> roles = {}) {
  Identity who;
  who.user_id = std::move(id);
  who.roles = std::move(roles);
  return who;
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

// Runs `call` with a completion handler and returns the value the handler was given. The
// in-memory service completes synchronously, so the handler must have run exactly once by the
// time `call` returns.
template <class T, class Call>
T outcome_of(Call call) {
  std::optional<T> value;
  int calls = 0;
  call([&](T v) {
    ++calls;
    value = v;
  });
  EXPECT_EQ(calls, 1) << "done must be called exactly once before the call returns";
  return value.value_or(T{});
}

template <class Call>
std::size_t count_of(Call call) {
  return outcome_of<std::size_t>(std::move(call));
}

template <class Call>
bool bool_of(Call call) {
  return outcome_of<bool>(std::move(call));
}

template <class Call>
SubscribeResult subscribe_result_of(Call call) {
  return outcome_of<SubscribeResult>(std::move(call));
}

class InMemoryRealtimeServiceTest : public ::testing::Test {
 protected:
  InMemoryRealtimeServiceTest() {
    verifier.accept("alice", user("1", {"admin", "user"}))
        .accept("bob", user("2", {"user"}))
        .accept("carol", user("3"))
        .refuse("forged", AuthError::bad_signature);
  }

  // Connects a fresh connection with `token` and forgets the `connected` message.
  std::shared_ptr<RecordingConnection> connect(std::string_view token) {
    auto c = std::make_shared<RecordingConnection>();
    auto r = service.connect(c, token);
    EXPECT_TRUE(r.has_value()) << token;
    c->clear();
    return c;
  }

  SubscribeResult subscribe(std::string_view connection_id, std::string topic) {
    return subscribe_result_of(
        [&](auto done) { service.subscribe(std::string(connection_id), std::move(topic), done); });
  }
  bool unsubscribe(std::string_view connection_id, std::string topic) {
    return bool_of([&](auto done) { service.unsubscribe(std::string(connection_id), std::move(topic), done); });
  }
  std::size_t disconnect(std::string_view connection_id) {
    return count_of([&](auto done) { service.disconnect_connection(std::string(connection_id), done); });
  }
  std::size_t publish(std::string topic, json::object message) {
    return count_of([&](auto done) { service.publish(std::move(topic), std::move(message), done); });
  }
  std::size_t send_to_user(std::string user_id, json::object message) {
    return count_of([&](auto done) { service.send_to_user(std::move(user_id), std::move(message), done); });
  }
  std::size_t send_to_role(std::string role, json::object message) {
    return count_of([&](auto done) { service.send_to_role(std::move(role), std::move(message), done); });
  }
  std::size_t broadcast(json::object message) {
    return count_of([&](auto done) { service.broadcast(std::move(message), done); });
  }
  bool send_to_connection(std::string_view connection_id, json::object message) {
    return bool_of(
        [&](auto done) { service.send_to_connection(std::string(connection_id), std::move(message), done); });
  }

  FixedClaimsVerifier verifier;
  ManualClock clock;
  InMemoryRealtimeService service{verifier, clock, 3};
};

// ---------------------------------------------------------------------------------------------
// connect / disconnect

TEST_F(InMemoryRealtimeServiceTest, ConnectSendsConnectedMessageFirst) {
  auto c = std::make_shared<RecordingConnection>();
  auto r = service.connect(c, "alice");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, c->id());
  ASSERT_EQ(c->sent_count(), 1u);
  json::object expected{{"type", "connected"},
                        {"connection-id", c->id()},
                        {"user-id", "1"},
                        {"roles", json::array{"admin", "user"}},
                        {"timestamp", "2025-01-01T12:00:00.000Z"}};
  EXPECT_EQ(c->object(0), expected);
  EXPECT_EQ(service.connection_count(), 1u);
  EXPECT_TRUE(c->is_open());
}

TEST_F(InMemoryRealtimeServiceTest, ConnectedMessageListsNoRolesAsEmptyArray) {
  auto c = std::make_shared<RecordingConnection>();
  ASSERT_TRUE(service.connect(c, "carol").has_value());
  EXPECT_EQ(c->object(0).at("roles"), json::array{});
}

TEST_F(InMemoryRealtimeServiceTest, ConnectVerifiesAtTheClocksNow) {
  clock.advance(90min + 1500ms);
  auto c = std::make_shared<RecordingConnection>();
  ASSERT_TRUE(service.connect(c, "bob").has_value());
  EXPECT_EQ(verifier.last_now(), unix_seconds(clock.now()));
  EXPECT_EQ(c->object(0).at("timestamp"), json::value("2025-01-01T13:30:01.500Z"));
}

TEST_F(InMemoryRealtimeServiceTest, RefusedTokenRegistersAndSendsNothing) {
  auto c = std::make_shared<RecordingConnection>();
  auto forged = service.connect(c, "forged");
  ASSERT_FALSE(forged.has_value());
  EXPECT_EQ(forged.error(), AuthError::bad_signature);
  auto unknown = service.connect(c, "who-knows");
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error(), AuthError::bad_signature);
  auto missing = service.connect(c, "");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error(), AuthError::missing);
  EXPECT_EQ(service.connection_count(), 0u);
  EXPECT_EQ(c->sent_count(), 0u);
  EXPECT_TRUE(c->is_open());  // closing a refused connection is the caller's decision
}

TEST_F(InMemoryRealtimeServiceTest, ExpiredTokenIsRefusedOnceTheClockPassesExp) {
  auto id = user("9");
  id.exp = unix_seconds(clock.now()) + 60;
  verifier.accept("short-lived", id);
  EXPECT_TRUE(service.connect(std::make_shared<RecordingConnection>(), "short-lived").has_value());
  clock.advance(60s);
  auto late = service.connect(std::make_shared<RecordingConnection>(), "short-lived");
  ASSERT_FALSE(late.has_value());
  EXPECT_EQ(late.error(), AuthError::expired);
  EXPECT_EQ(service.connection_count(), 1u);
}

TEST_F(InMemoryRealtimeServiceTest, ReusedConnectionIdIsAProgrammingError) {
  auto c = std::make_shared<RecordingConnection>("same-id");
  ASSERT_TRUE(service.connect(c, "alice").has_value());
  EXPECT_THROW(service.connect(std::make_shared<RecordingConnection>("same-id"), "bob"), std::invalid_argument);
  EXPECT_THROW(service.connect(nullptr, "bob"), std::invalid_argument);
  EXPECT_EQ(service.connection_count(), 1u);
  EXPECT_EQ(service.registry().identity_of("same-id")->user_id, "1");
}

TEST_F(InMemoryRealtimeServiceTest, DisconnectClosesWithNormalCodeAndForgetsTheConnection) {
  auto c = connect("alice");
  auto other = connect("bob");
  ASSERT_EQ(subscribe(c->id(), "order:1"), SubscribeResult::subscribed);
  ASSERT_EQ(subscribe(c->id(), "order:2"), SubscribeResult::subscribed);
  ASSERT_EQ(subscribe(other->id(), "order:2"), SubscribeResult::subscribed);

  EXPECT_EQ(disconnect(c->id()), 1u);
  EXPECT_EQ(c->close_code(), CloseCode::normal);
  EXPECT_FALSE(c->is_open());
  EXPECT_EQ(service.connection_count(), 1u);
  EXPECT_EQ(service.registry().find(c->id()), nullptr);
  EXPECT_EQ(service.registry().topic_count(), 1u);  // order:1 is gone, order:2 still has bob
  EXPECT_EQ(publish("order:1", {{"type", "x"}}), 0u);
  EXPECT_EQ(send_to_user("1", {{"type", "x"}}), 0u);
  EXPECT_EQ(send_to_role("admin", {{"type", "x"}}), 0u);
  EXPECT_EQ(c->sent_count(), 0u);
  EXPECT_EQ(disconnect(c->id()), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, DisconnectOfTheLastReferenceIsSafe) {
  auto c = std::make_shared<RecordingConnection>();
  const std::string id(c->id());
  ASSERT_TRUE(service.connect(std::move(c), "alice").has_value());
  EXPECT_EQ(disconnect(id), 1u);  // the registry held the only reference
  EXPECT_EQ(service.connection_count(), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, DisconnectUnknownCountsNothing) { EXPECT_EQ(disconnect("ghost"), 0u); }

TEST_F(InMemoryRealtimeServiceTest, DisconnectUserClosesEveryConnectionOfThatUserOnly) {
  auto a1 = connect("alice");
  auto a2 = connect("alice");
  auto b = connect("bob");
  ASSERT_EQ(subscribe(a1->id(), "t"), SubscribeResult::subscribed);
  ASSERT_EQ(subscribe(b->id(), "t"), SubscribeResult::subscribed);

  EXPECT_EQ(count_of([&](auto done) { service.disconnect_user("1", done); }), 2u);
  EXPECT_EQ(a1->close_code(), CloseCode::normal);
  EXPECT_EQ(a2->close_code(), CloseCode::normal);
  EXPECT_TRUE(b->is_open());
  EXPECT_EQ(service.connection_count(), 1u);
  EXPECT_EQ(service.registry().user_connection_count("1"), 0u);
  EXPECT_EQ(service.registry().subscriber_count("t"), 1u);
  EXPECT_EQ(send_to_role("admin", {{"type", "x"}}), 0u);
  EXPECT_EQ(send_to_user("2", {{"type", "x"}}), 1u);
  EXPECT_EQ(count_of([&](auto done) { service.disconnect_user("1", done); }), 0u);
  EXPECT_EQ(count_of([&](auto done) { service.disconnect_user("nobody", done); }), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, DisconnectUserHoldingTheLastReferencesIsSafe) {
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(service.connect(std::make_shared<RecordingConnection>(), "bob").has_value());
  EXPECT_EQ(count_of([&](auto done) { service.disconnect_user("2", done); }), 3u);
  EXPECT_EQ(service.connection_count(), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, DisconnectUserCountsAClientClosedConnectionItForgets) {
  // Closed by the client but not yet unregistered: it still leaves every index and is counted,
  // as disconnect_connection counts it.
  auto a = connect("alice");
  a->close(CloseCode::going_away, "client left");
  EXPECT_EQ(count_of([&](auto done) { service.disconnect_user("1", done); }), 1u);
  EXPECT_EQ(a->close_code(), CloseCode::going_away);  // the first close stands
  EXPECT_EQ(service.connection_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Routing

TEST_F(InMemoryRealtimeServiceTest, SendToUserReachesEveryConnectionOfThatUserOnly) {
  auto a1 = connect("alice");
  auto a2 = connect("alice");
  auto b = connect("bob");
  EXPECT_EQ(send_to_user("1", {{"type", "note"}}), 2u);
  EXPECT_EQ(a1->sent_count(), 1u);
  EXPECT_EQ(a2->sent_count(), 1u);
  EXPECT_EQ(b->sent_count(), 0u);
  EXPECT_EQ(send_to_user("nobody", {{"type", "note"}}), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, SendToRoleReachesHoldersOnly) {
  auto a = connect("alice");
  auto b = connect("bob");
  auto c = connect("carol");
  EXPECT_EQ(send_to_role("user", {{"type", "note"}}), 2u);
  EXPECT_EQ(send_to_role("admin", {{"type", "note"}}), 1u);
  EXPECT_EQ(a->sent_count(), 2u);
  EXPECT_EQ(b->sent_count(), 1u);
  EXPECT_EQ(c->sent_count(), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, BroadcastReachesEveryOpenConnection) {
  auto a = connect("alice");
  auto b = connect("bob");
  auto c = connect("carol");
  c->close(CloseCode::going_away, "client left");  // closed but not yet disconnected
  EXPECT_EQ(broadcast({{"type", "news"}}), 2u);
  EXPECT_EQ(a->sent_count(), 1u);
  EXPECT_EQ(b->sent_count(), 1u);
  EXPECT_EQ(c->sent_count(), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, SendToConnectionReportsWhetherItWasDelivered) {
  auto a = connect("alice");
  auto b = connect("bob");
  EXPECT_TRUE(send_to_connection(a->id(), {{"type", "direct"}}));
  EXPECT_FALSE(send_to_connection("ghost", {{"type", "direct"}}));
  b->close(CloseCode::normal, "");
  EXPECT_FALSE(send_to_connection(b->id(), {{"type", "direct"}}));
  EXPECT_EQ(a->sent_count(), 1u);
  EXPECT_EQ(a->last().at("type"), json::value("direct"));
}

TEST_F(InMemoryRealtimeServiceTest, PublishReachesSubscribersAndAddsTopic) {
  auto a = connect("alice");
  auto b = connect("bob");
  auto c = connect("carol");
  subscribe(a->id(), "chat:general");
  subscribe(b->id(), "chat:general");
  EXPECT_EQ(publish("chat:general", {{"type", "chat"}, {"text", "hi"}}), 2u);
  EXPECT_EQ(c->sent_count(), 0u);
  EXPECT_EQ(a->last(), json::parse(R"({"type":"chat","text":"hi","topic":"chat:general",)"
                                   R"("timestamp":"2025-01-01T12:00:00.000Z"})"));
  EXPECT_EQ(b->last(), a->last());
  EXPECT_EQ(publish("chat:empty", {{"type", "chat"}}), 0u);
}

TEST_F(InMemoryRealtimeServiceTest, PublishKeepsTopicTheMessageAlreadyHas) {
  auto a = connect("alice");
  subscribe(a->id(), "t");
  publish("t", {{"type", "x"}, {"topic", "custom"}});
  EXPECT_EQ(a->last().at("topic"), json::value("custom"));
}

TEST_F(InMemoryRealtimeServiceTest, NonTopicSendsCarryNoTopic) {
  auto a = connect("alice");
  send_to_user("1", {{"type", "x"}});
  send_to_role("admin", {{"type", "x"}});
  broadcast({{"type", "x"}});
  send_to_connection(a->id(), {{"type", "x"}});
  ASSERT_EQ(a->sent_count(), 4u);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_FALSE(a->object(i).contains("topic")) << i;
}

TEST_F(InMemoryRealtimeServiceTest, EverySendIsTimestampedByTheClock) {
  auto a = connect("alice");
  clock.advance(1234ms);
  send_to_user("1", {{"type", "x"}});
  send_to_connection(a->id(), {{"type", "x"}, {"timestamp", "kept"}});
  EXPECT_EQ(a->object(0).at("timestamp"), json::value("2025-01-01T12:00:01.234Z"));
  EXPECT_EQ(a->object(1).at("timestamp"), json::value("kept"));
}

TEST_F(InMemoryRealtimeServiceTest, RecipientsShareOneEncoding) {
  auto a = connect("alice");
  auto b = connect("bob");
  ASSERT_EQ(send_to_role("user", {{"type", "x"}}), 2u);
  EXPECT_EQ(a->messages()[0].frame().data(), b->messages()[0].frame().data());
}

TEST_F(InMemoryRealtimeServiceTest, MessagesArriveInSendOrder) {
  auto a = connect("alice");
  subscribe(a->id(), "t");
  for (int i = 0; i < 5; ++i) {
    send_to_user("1", {{"type", "n"}, {"i", i * 2}});
    publish("t", {{"type", "n"}, {"i", i * 2 + 1}});
  }
  ASSERT_EQ(a->sent_count(), 10u);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(a->object(i).at("i"), json::value(static_cast<int>(i)));
}

// ---------------------------------------------------------------------------------------------
// Subscriptions (server API semantics: trusted, no policy)

TEST_F(InMemoryRealtimeServiceTest, SubscribeReportsEveryOutcome) {
  auto a = connect("alice");
  EXPECT_EQ(subscribe(a->id(), "t1"), SubscribeResult::subscribed);
  EXPECT_EQ(subscribe(a->id(), "t1"), SubscribeResult::already_subscribed);
  EXPECT_EQ(subscribe("ghost", "t1"), SubscribeResult::unknown_connection);
  EXPECT_EQ(subscribe(a->id(), "t2"), SubscribeResult::subscribed);
  EXPECT_EQ(subscribe(a->id(), "t3"), SubscribeResult::subscribed);
  EXPECT_EQ(subscribe(a->id(), "t4"), SubscribeResult::limit_reached);  // limit is 3 here
}

TEST_F(InMemoryRealtimeServiceTest, SubscribeSkipsTheClientPolicy) {
  auto b = connect("bob");
  EXPECT_EQ(subscribe(b->id(), "user:1"), SubscribeResult::subscribed);
  EXPECT_EQ(subscribe(b->id(), "role:admin"), SubscribeResult::subscribed);
  EXPECT_EQ(publish("user:1", {{"type", "x"}}), 1u);
}

TEST_F(InMemoryRealtimeServiceTest, UnsubscribeStopsTopicDeliveries) {
  auto a = connect("alice");
  subscribe(a->id(), "t");
  EXPECT_TRUE(unsubscribe(a->id(), "t"));
  EXPECT_FALSE(unsubscribe(a->id(), "t"));
  EXPECT_FALSE(unsubscribe("ghost", "t"));
  EXPECT_EQ(publish("t", {{"type", "x"}}), 0u);
  EXPECT_EQ(service.registry().topic_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Completion handlers

TEST_F(InMemoryRealtimeServiceTest, EveryOperationCallsDoneExactlyOnceBeforeReturning) {
  auto a = connect("alice");
  const std::string id(a->id());
  // Each handler appends its outcome: one entry per call, present when the call returns.
  std::vector<std::string> log;
  auto count_done = [&](std::string name) {
    return [&log, name](std::size_t n) { log.push_back(name + "=" + std::to_string(n)); };
  };
  auto bool_done = [&](std::string name) {
    return [&log, name](bool ok) { log.push_back(name + "=" + (ok ? "true" : "false")); };
  };
  auto step = [&](std::string expected, auto call) {
    const auto before = log.size();
    call();
    ASSERT_EQ(log.size(), before + 1) << expected;
    EXPECT_EQ(log.back(), expected);
  };
  step("user=1", [&] { service.send_to_user("1", {{"type", "x"}}, count_done("user")); });
  step("role=1", [&] { service.send_to_role("admin", {{"type", "x"}}, count_done("role")); });
  step("broadcast=1", [&] { service.broadcast({{"type", "x"}}, count_done("broadcast")); });
  step("direct=true", [&] { service.send_to_connection(id, {{"type", "x"}}, bool_done("direct")); });
  step("subscribe=subscribed", [&] {
    service.subscribe(id, "t", [&log](SubscribeResult r) {
      log.push_back(r == SubscribeResult::subscribed ? "subscribe=subscribed" : "subscribe=other");
    });
  });
  step("publish=1", [&] { service.publish("t", {{"type", "x"}}, count_done("publish")); });
  step("unsubscribe=true", [&] { service.unsubscribe(id, "t", bool_done("unsubscribe")); });
  step("connection=1", [&] { service.disconnect_connection(id, count_done("connection")); });
  step("user-disconnect=0", [&] { service.disconnect_user("1", count_done("user-disconnect")); });
}

TEST_F(InMemoryRealtimeServiceTest, OperationsWithoutDoneStillTakeEffect) {
  auto a = connect("alice");
  auto b = connect("bob");
  const std::string id(a->id());
  service.subscribe(id, "t");
  service.publish("t", {{"type", "x"}});
  service.send_to_user("1", {{"type", "x"}});
  service.send_to_role("admin", {{"type", "x"}});
  service.broadcast({{"type", "x"}});
  service.send_to_connection(id, {{"type", "x"}});
  EXPECT_EQ(a->sent_count(), 5u);
  service.unsubscribe(id, "t");
  EXPECT_EQ(service.registry().topic_count(), 0u);
  service.disconnect_connection(id);
  EXPECT_EQ(a->close_code(), CloseCode::normal);
  service.disconnect_user("2");
  EXPECT_EQ(b->close_code(), CloseCode::normal);
  EXPECT_EQ(service.connection_count(), 0u);
}

TEST(InMemoryRealtimeService, DefaultSubscriptionLimitIs1000) {
  FixedClaimsVerifier verifier;
  verifier.accept("t", user("1"));
  ManualClock clock;
  InMemoryRealtimeService service(verifier, clock);
  auto c = std::make_shared<RecordingConnection>();
  ASSERT_TRUE(service.connect(c, "t").has_value());
  const std::string id(c->id());
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(subscribe_result_of([&](auto done) { service.subscribe(id, "t" + std::to_string(i), done); }),
              SubscribeResult::subscribed);
  EXPECT_EQ(subscribe_result_of([&](auto done) { service.subscribe(id, "one-more", done); }),
            SubscribeResult::limit_reached);
}

TEST(InMemoryRealtimeService, WorksThroughTheAbstractInterface) {
  FixedClaimsVerifier verifier;
  verifier.accept("t", user("1"));
  SystemClock clock;
  InMemoryRealtimeService concrete(verifier, clock);
  RealtimeService& service = concrete;
  auto c = std::make_shared<RecordingConnection>();
  ASSERT_TRUE(concrete.connect(c, "t").has_value());  // connect is the in-memory service's own
  EXPECT_EQ(count_of([&](auto done) { service.broadcast({{"type", "x"}}, done); }), 1u);
  EXPECT_EQ(service.connection_count(), 1u);
  const auto stamp = c->last().at("timestamp").as_string();
  EXPECT_EQ(stamp.size(), std::string_view("2025-01-01T12:00:00.000Z").size());
  EXPECT_EQ(stamp.back(), 'Z');
}

// ---------------------------------------------------------------------------------------------
// The test adapters themselves

TEST(RecordingConnection, DropsSendsAfterClose) {
  RecordingConnection c("c1");
  c.send(Message::from_json(R"({"type":"a"})"));
  c.close(CloseCode::policy_violation, "slow");
  c.send(Message::from_json(R"({"type":"b"})"));
  c.close(CloseCode::normal, "again");  // only the first close counts
  EXPECT_FALSE(c.is_open());
  EXPECT_EQ(c.sent_count(), 1u);
  EXPECT_EQ(c.dropped_count(), 1u);
  EXPECT_EQ(c.close_code(), CloseCode::policy_violation);
  EXPECT_EQ(c.close_reason(), "slow");
  EXPECT_EQ(c.json(0), R"({"type":"a"})");
  EXPECT_EQ(c.parsed().size(), 1u);
  EXPECT_THROW(c.json(1), std::out_of_range);
}

TEST(RecordingConnection, GeneratedIdsAreDistinctAndUuidShaped) {
  RecordingConnection a, b;
  EXPECT_NE(a.id(), b.id());
  EXPECT_EQ(a.id().size(), 36u);
  EXPECT_EQ(a.id()[14], '4');  // version nibble
  EXPECT_EQ(RecordingConnection("given").id(), "given");
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock;
  const auto start = clock.now();
  EXPECT_EQ(clock.now(), start);
  clock.advance(5s);
  EXPECT_EQ(clock.now() - start, 5s);
  clock.set(start - 1h);
  EXPECT_EQ(clock.now(), start - 1h);
}

TEST(FixedClaimsVerifier, MapsTokensToOutcomes) {
  FixedClaimsVerifier v;
  v.accept("good", user("42", {"admin"})).refuse("old", AuthError::expired);
  auto good = v.verify("good", 0);
  ASSERT_TRUE(good.has_value());
  EXPECT_EQ(good->user_id, "42");
  EXPECT_EQ(good->roles, std::vector<std::string>{"admin"});
  EXPECT_EQ(v.verify("old", 0).error(), AuthError::expired);
  EXPECT_EQ(v.verify("other", 0).error(), AuthError::bad_signature);
  EXPECT_EQ(v.verify("", 0).error(), AuthError::missing);
  EXPECT_EQ(v.calls(), 4u);
}

}  // namespace
}  // namespace boundary::realtime
