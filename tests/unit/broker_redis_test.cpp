// BrokerRedis's state machine in-process, against a fake Redis (fake_redis.hpp) whose answers
// the test controls. Real Redis and Redis Cluster runs are in tests/integration
// (test_cluster.py, test_redis_cluster.py).
#include "shell/adapters/broker_redis.hpp"

#include <optional>
#include <ostream>
#include <vector>

#include <gtest/gtest.h>

#include "core/cluster_codec.hpp"
#include "fake_redis.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime {
// Found by argument-dependent lookup from gtest's EXPECT_EQ.
bool operator==(const FanoutResult& a, const FanoutResult& b) {
  return a.reached == b.reached && a.count == b.count && a.complete == b.complete;
}
void PrintTo(const FanoutResult& r, std::ostream* os) {
  *os << "{reached " << r.reached << ", count " << r.count << ", complete " << r.complete << "}";
}
}  // namespace boundary::realtime

namespace {
namespace asio = boost::asio;
namespace core = boundary::realtime::core;
using boundary::realtime::Broker;
using boundary::realtime::Fanout;
using boundary::realtime::FanoutResult;
using boundary::realtime::Route;
using boundary::realtime::shell::Metrics;
using boundary::realtime::shell::RedisTopology;
using RedisBroker = boundary::realtime::shell::BrokerRedis;
using fake::run_until;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::string_view node = "node-a";

class BrokerRedis : public ::testing::Test {
 protected:
  asio::io_context io;
  fake::Redis redis{io};
  Metrics metrics;
  std::vector<Fanout> delivered;
  std::vector<Broker::Answer> answers;
  std::unique_ptr<RedisBroker> broker;

  std::string prefix = "rt";
  std::shared_ptr<const boundary::realtime::shell::RedisLinkSettings> link;

  void start(bool cluster = false, unsigned db = 0, milliseconds reply_timeout = milliseconds(200)) {
    const core::Endpoint at{"127.0.0.1", redis.port()};
    auto topology = cluster ? RedisTopology::redis_cluster({at}) : RedisTopology::single({at.host, at.port, db});
    RedisBroker::Options options;
    options.topology = topology;
    options.node_id = std::string(node);
    options.prefix = prefix;
    options.link = link;
    options.reply_timeout = reply_timeout;
    options.local_connections = [] { return std::size_t{3}; };
    options.metrics = &metrics;
    broker = std::make_unique<RedisBroker>(io, std::move(options));
    broker->set_handler([this](const Fanout& f, Broker::Answer a) {
      delivered.push_back(f);
      answers.push_back(std::move(a));
    });
    broker->start();
  }
  bool up() { return run_until(io, [&] { return broker->connected(); }); }
  bool down() { return run_until(io, [&] { return !broker->connected(); }); }
  // Steps the loop until the first attempt ended with a refusal; its text, or empty.
  std::string refusal() {
    std::string why;
    run_until(io, [&] { return !(why = broker->startup_refusal(milliseconds(0))).empty(); });
    return why;
  }

  // Publishes and returns where the result will land.
  std::shared_ptr<std::optional<FanoutResult>> publish(Route route, std::string target, bool wait = true) {
    auto result = std::make_shared<std::optional<FanoutResult>>();
    broker->publish(Fanout{route, std::move(target), "{}"}, wait, [result](FanoutResult r) { *result = r; });
    return result;
  }
  bool done(const std::shared_ptr<std::optional<FanoutResult>>& r, milliseconds limit = milliseconds(5000)) {
    return run_until(io, [&] { return r->has_value(); }, limit);
  }
  bool ready_after_interest(Route route, std::string name) {
    broker->set_interest(route, name, true);
    bool ready = false;
    broker->when_ready([&] { ready = true; });
    return run_until(io, [&] { return ready; });
  }
  // Up, then an interest whose SUBSCRIBE Redis receives but does not confirm yet, and a
  // when_ready behind it that sets `ready`.
  void wait_on_held_subscription(bool& ready) {
    start();
    ASSERT_TRUE(up());
    redis.hold = true;
    broker->set_interest(Route::topic, "t1", true);
    broker->when_ready([&ready] { ready = true; });
    ASSERT_TRUE(run_until(io, [&] { return redis.saw({"SUBSCRIBE", "rt:t:t1"}); }));
    ASSERT_FALSE(ready);
  }
  std::size_t index_of(const fake::Argv& argv) const {
    for (std::size_t i = 0; i < redis.commands.size(); ++i)
      if (redis.commands[i] == argv) return i;
    return redis.commands.size();
  }
};

TEST_F(BrokerRedis, SelectsTheDatabaseClaimsTheNodeIdAndSubscribesBeforeReportingUp) {
  start(false, 3);
  ASSERT_TRUE(up());
  const auto select = index_of({"SELECT", "3"});
  std::size_t claim = redis.commands.size();
  for (std::size_t i = 0; i < redis.commands.size() && claim == redis.commands.size(); ++i)
    if (redis.commands[i][0] == "EVAL" && redis.commands[i][3] == "rt:node:node-a") claim = i;
  const auto subscribe = index_of({"SUBSCRIBE", "rt:all", "rt:reply:node-a"});
  ASSERT_LT(subscribe, redis.commands.size());
  EXPECT_LT(select, claim);
  EXPECT_LT(claim, subscribe);
  // "<instance> <local connections>"
  EXPECT_TRUE(redis.keys["rt:node:node-a"].ends_with(" 3")) << redis.keys["rt:node:node-a"];
  EXPECT_TRUE(broker->startup_refusal(milliseconds(0)).empty());
  EXPECT_EQ(metrics.redis_up.load(), 1);
  EXPECT_EQ(redis.count("CLUSTER"), 0u);
}

TEST_F(BrokerRedis, StaysDownUntilEverySubscriptionIsConfirmed) {
  redis.script = [this](const fake::Argv& a) {
    if (a[0] == "SUBSCRIBE") redis.hold = true;  // every answer from the first SUBSCRIBE on
    return fake::Redis::Reply{};
  };
  start();
  ASSERT_TRUE(run_until(io, [&] { return redis.count("SUBSCRIBE") == 1; }));
  EXPECT_FALSE(broker->connected());
  auto r = publish(Route::all, "");
  ASSERT_TRUE(done(r));
  EXPECT_FALSE((*r)->reached);  // not up yet: refused at once, nothing sent
  EXPECT_EQ(redis.count("PUBLISH"), 0u);
  redis.release();
  EXPECT_TRUE(up());
}

TEST_F(BrokerRedis, PublishWhileRedisIsUnreachableAnswersUnreachedAtOnce) {
  redis.refuse = true;
  start();
  auto r = publish(Route::user, "u1");
  ASSERT_TRUE(done(r, milliseconds(1000)));
  EXPECT_FALSE((*r)->reached);
  EXPECT_FALSE((*r)->complete);
  EXPECT_FALSE(broker->connected());
  EXPECT_EQ(redis.count("PUBLISH"), 0u);
}

TEST_F(BrokerRedis, ReplyTimeoutEndsWaitIncomplete) {
  start(false, 0, milliseconds(200));
  ASSERT_TRUE(up());
  redis.extra_receivers = 1;  // a node that is subscribed but never answers
  const auto t0 = Clock::now();
  auto r = publish(Route::all, "");
  ASSERT_TRUE(done(r));
  EXPECT_GE(Clock::now() - t0, milliseconds(200));
  EXPECT_EQ(**r, (FanoutResult{true, 0, false}));  // reached; our own echo answered 0
  EXPECT_EQ(metrics.cluster_reply_timeouts.load(), 1u);
}

TEST_F(BrokerRedis, AnswersFromOtherNodesCompleteTheWaitBeforeTheTimeout) {
  start(false, 0, milliseconds(5000));
  ASSERT_TRUE(up());
  redis.extra_receivers = 1;
  redis.script = [this](const fake::Argv& a) {
    if (a[0] == "PUBLISH" && a[1] == "rt:all") {
      const auto wire = core::decode_fanout(a[2]);
      redis.deliver("rt:reply:node-a", core::encode_reply(wire->request_id, 5));  // node-b reached 5
    }
    return fake::Redis::Reply{};
  };
  const auto t0 = Clock::now();
  auto r = publish(Route::all, "");
  ASSERT_TRUE(done(r));
  EXPECT_LT(Clock::now() - t0, milliseconds(5000));
  EXPECT_EQ(**r, (FanoutResult{true, 5, true}));
  EXPECT_EQ(metrics.cluster_reply_timeouts.load(), 0u);
}

TEST_F(BrokerRedis, DroppedConnectionFailsPendingWaitsAndReportsDown) {
  start();
  ASSERT_TRUE(up());
  redis.script = [](const fake::Argv& a) {
    return a[0] == "PUBLISH" ? fake::Redis::Reply{fake::Redis::Reply::silent, {}} : fake::Redis::Reply{};
  };
  auto r = publish(Route::role, "admin");
  ASSERT_TRUE(run_until(io, [&] { return redis.count("PUBLISH") == 1; }));
  EXPECT_FALSE(r->has_value());
  redis.drop_all();
  ASSERT_TRUE(done(r));
  EXPECT_FALSE((*r)->reached);
  EXPECT_FALSE(broker->connected());
  EXPECT_EQ(metrics.redis_up.load(), 0);
}

TEST_F(BrokerRedis, ReconnectsWithDoublingBackoffAndSubscribesInterestsAgain) {
  start();
  ASSERT_TRUE(up());
  ASSERT_TRUE(ready_after_interest(Route::user, "u1"));
  ASSERT_TRUE(redis.saw({"SUBSCRIBE", "rt:u:u1"}));
  redis.refuse = true;
  const auto accepted_before = redis.accepted_at.size();
  const auto dropped = Clock::now();
  redis.drop_all();
  ASSERT_TRUE(down());
  // An attempt opens its two connections together; attempts are the accepts after a pause.
  std::vector<Clock::time_point> attempts;
  ASSERT_TRUE(run_until(io, [&] {
    attempts.clear();
    for (auto i = accepted_before; i < redis.accepted_at.size(); ++i)
      if (attempts.empty() || redis.accepted_at[i] - redis.accepted_at[i - 1] > milliseconds(50))
        attempts.push_back(redis.accepted_at[i]);
    return attempts.size() >= 3;
  }));
  EXPECT_GE(attempts[0] - dropped, milliseconds(100));
  EXPECT_GE(attempts[1] - attempts[0], milliseconds(200));
  EXPECT_GE(attempts[2] - attempts[1], milliseconds(400));
  redis.refuse = false;
  ASSERT_TRUE(up());
  std::size_t u1 = 0;
  for (const auto& c : redis.commands) u1 += c == fake::Argv{"SUBSCRIBE", "rt:u:u1"};
  EXPECT_GE(u1, 2u);  // subscribed again on the new connection
  EXPECT_GE(metrics.redis_reconnects.load(), 3u);
}

TEST_F(BrokerRedis, WhenReadyWaitsForTheSubscribeConfirmation) {
  bool ready = false;
  ASSERT_NO_FATAL_FAILURE(wait_on_held_subscription(ready));
  redis.release();
  EXPECT_TRUE(run_until(io, [&] { return ready; }));
}

TEST_F(BrokerRedis, DroppedConnectionReleasesWhenReadyWaiters) {
  bool ready = false;
  ASSERT_NO_FATAL_FAILURE(wait_on_held_subscription(ready));
  redis.drop_all();
  EXPECT_TRUE(run_until(io, [&] { return ready; }));
  EXPECT_FALSE(broker->connected());
}

TEST_F(BrokerRedis, WhenReadyRunsAtOnceWhileRedisIsUnreachable) {
  redis.refuse = true;
  start();
  bool ready = false;
  broker->when_ready([&] { ready = true; });
  EXPECT_TRUE(run_until(io, [&] { return ready; }, milliseconds(1000)));
}

TEST_F(BrokerRedis, GarbageFromRedisDropsTheConnectionAndTheNodeReconnects) {
  start();
  ASSERT_TRUE(up());
  const auto accepted = redis.accepted_at.size();
  redis.script = [sent = false](const fake::Argv& a) mutable {
    if (a[0] != "PUBLISH" || std::exchange(sent, true)) return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::raw, "?garbage\r\n"};
  };
  auto r = publish(Route::all, "");
  ASSERT_TRUE(done(r));
  EXPECT_FALSE((*r)->reached);
  ASSERT_TRUE(run_until(io, [&] { return redis.accepted_at.size() >= accepted + 2; }));
  EXPECT_TRUE(up());
}

TEST_F(BrokerRedis, DeliversFanoutsFromOtherNodesAndPublishesTheirAnswer) {
  start();
  ASSERT_TRUE(up());
  redis.deliver("rt:all", core::encode_fanout(Fanout{Route::all, "", "hello"}, "node-b", 42));
  ASSERT_TRUE(run_until(io, [&] { return delivered.size() == 1; }));
  EXPECT_EQ(delivered[0].body, "hello");
  answers[0](7);
  EXPECT_TRUE(run_until(io, [&] { return redis.saw({"PUBLISH", "rt:reply:node-b", core::encode_reply(42, 7)}); }));
}

TEST_F(BrokerRedis, OwnFanoutsComingBackAreNotDelivered) {
  start();
  ASSERT_TRUE(up());
  auto r = publish(Route::all, "", false);  // Redis echoes it to our own rt:all subscription
  ASSERT_TRUE(done(r));
  EXPECT_TRUE((*r)->reached);
  redis.deliver("rt:all", core::encode_fanout(Fanout{Route::all, "", "from-b"}, "node-b", 0));
  ASSERT_TRUE(run_until(io, [&] { return !delivered.empty(); }));
  ASSERT_EQ(delivered.size(), 1u);  // one connection: the echo arrived first and was dropped
  EXPECT_EQ(delivered[0].body, "from-b");
}

TEST_F(BrokerRedis, SingleTopologyCarriesTopicsOnPlainPubSub) {
  start();
  ASSERT_TRUE(up());
  ASSERT_TRUE(ready_after_interest(Route::topic, "t1"));
  auto r = publish(Route::topic, "t1");
  ASSERT_TRUE(done(r));
  EXPECT_TRUE((*r)->complete);
  EXPECT_TRUE(redis.saw({"SUBSCRIBE", "rt:t:t1"}));
  EXPECT_EQ(redis.count("PUBLISH"), 1u);
  EXPECT_EQ(redis.count("SSUBSCRIBE") + redis.count("SPUBLISH") + redis.count("CLUSTER"), 0u);
}

TEST_F(BrokerRedis, ClusterTopologyReadsTheSlotMapAndCarriesTopicsOnShardedPubSub) {
  start(true);
  ASSERT_TRUE(up());
  EXPECT_TRUE(redis.saw({"CLUSTER", "SLOTS"}));
  EXPECT_EQ(redis.count("SELECT"), 0u);
  ASSERT_TRUE(ready_after_interest(Route::topic, "t1"));
  ASSERT_TRUE(ready_after_interest(Route::user, "u1"));
  EXPECT_TRUE(redis.saw({"SSUBSCRIBE", "rt:t:t1"}));
  EXPECT_TRUE(redis.saw({"SUBSCRIBE", "rt:u:u1"}));
  auto topic = publish(Route::topic, "t1");
  auto user = publish(Route::user, "u1");
  ASSERT_TRUE(done(topic));
  ASSERT_TRUE(done(user));
  EXPECT_TRUE((*topic)->complete);  // SPUBLISH counted our own subscriber, whose echo answered
  EXPECT_TRUE((*user)->complete);
  EXPECT_EQ(redis.count("SPUBLISH"), 1u);
  EXPECT_EQ(redis.count("PUBLISH"), 1u);
}

TEST_F(BrokerRedis, ClusterFollowsMovedOnceAndReadsTheSlotMapAgain) {
  start(true);
  ASSERT_TRUE(up());
  const auto slot_reads = redis.count("CLUSTER");
  const std::string moved = "-MOVED 1234 127.0.0.1:" + std::to_string(redis.port()) + "\r\n";
  redis.script = [moved, sent = false](const fake::Argv& a) mutable {
    if (a[0] != "SPUBLISH" || std::exchange(sent, true)) return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::raw, moved};
  };
  auto r = publish(Route::topic, "t1");
  ASSERT_TRUE(done(r));
  EXPECT_TRUE((*r)->reached);
  EXPECT_EQ(redis.count("SPUBLISH"), 2u);
  EXPECT_TRUE(run_until(io, [&] { return redis.count("CLUSTER") > slot_reads; }));
  EXPECT_TRUE(broker->connected());  // same map: no reconnect
}

TEST_F(BrokerRedis, ClusterStaysDownWhileTheSlotMapIsRefused) {
  redis.script = [](const fake::Argv& a) {
    if (a[0] != "CLUSTER") return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::raw, "-CLUSTERDOWN not ok\r\n"};
  };
  start(true);
  ASSERT_TRUE(run_until(io, [&] { return redis.count("CLUSTER") >= 2; }));  // retried
  EXPECT_FALSE(broker->connected());
  EXPECT_EQ(redis.count("SUBSCRIBE"), 0u);
  redis.script = {};
  EXPECT_TRUE(up());
}

TEST_F(BrokerRedis, ClusterDroppedSubscriptionRereadsTheMapThenReconnectsWhileItStaysUnchanged) {
  start(true);
  ASSERT_TRUE(up());
  ASSERT_TRUE(ready_after_interest(Route::topic, "t1"));
  const auto slot_reads = redis.count("CLUSTER");
  const auto accepted = redis.accepted_at.size();
  redis.migrate_away("rt:t:t1");
  // The same map every time: read again every 200 ms, ten times, then a reconnect.
  ASSERT_TRUE(run_until(io, [&] { return redis.count("CLUSTER") >= slot_reads + 3; }));
  EXPECT_EQ(redis.accepted_at.size(), accepted);
  ASSERT_TRUE(run_until(io, [&] { return redis.accepted_at.size() > accepted; }));
  EXPECT_GE(redis.count("CLUSTER"), slot_reads + 11);
  ASSERT_TRUE(up());
  EXPECT_TRUE(run_until(io, [&] { return redis.count("SSUBSCRIBE") == 2; }));  // subscribed again
}

std::shared_ptr<const boundary::realtime::shell::RedisLinkSettings> password_only(std::string password) {
  auto s = std::make_shared<boundary::realtime::shell::RedisLinkSettings>();
  s->password = std::move(password);
  return s;
}

TEST_F(BrokerRedis, EveryChannelAndKeyCarriesThePrefix) {
  prefix = "blue/eu";
  start();
  ASSERT_TRUE(up());
  ASSERT_TRUE(ready_after_interest(Route::topic, "t 1\r\n*{x}"));
  ASSERT_TRUE(ready_after_interest(Route::user, "u1"));
  ASSERT_TRUE(ready_after_interest(Route::role, "r1"));
  for (Route r : {Route::all, Route::user, Route::role, Route::topic}) ASSERT_TRUE(done(publish(r, "x")));
  redis.deliver("blue/eu:all", core::encode_fanout(Fanout{Route::count, "", ""}, "node-b", 9));
  ASSERT_TRUE(run_until(io, [&] { return !answers.empty(); }));
  answers.front()(1);
  ASSERT_TRUE(run_until(io, [&] { return redis.count("PUBLISH") == 5; }));
  EXPECT_TRUE(redis.saw({"SUBSCRIBE", "blue/eu:all", "blue/eu:reply:node-a"}));
  EXPECT_TRUE(redis.saw({"SUBSCRIBE", "blue/eu:t:t 1\r\n*{x}"}));
  EXPECT_TRUE(redis.keys.contains("blue/eu:node:node-a"));
  // Every name a command carries: channels of (un)subscribes and publishes, the key of scripts.
  for (const auto& c : redis.commands) {
    if (c[0] == "SUBSCRIBE" || c[0] == "UNSUBSCRIBE") {
      for (std::size_t i = 1; i < c.size(); ++i) {
        EXPECT_TRUE(c[i].starts_with("blue/eu:")) << c[0] << " " << c[i];
      }
    }
    if (c[0] == "PUBLISH") {
      EXPECT_TRUE(c[1].starts_with("blue/eu:")) << c[1];
    }
    if (c[0] == "EVAL") {
      EXPECT_TRUE(c[3].starts_with("blue/eu:")) << c[3];
    }
  }
}

TEST_F(BrokerRedis, ANodeIdHeldByAnotherInstanceIsRefusedWithAClearMessage) {
  redis.keys["rt:node:node-a"] = "0123456789abcdef 4";  // another running node-a
  start();
  const auto why = refusal();
  EXPECT_NE(why.find("node id 'node-a' is in use by another running node"), std::string::npos) << why;
  EXPECT_FALSE(broker->connected());
  EXPECT_EQ(redis.count("SUBSCRIBE"), 0u);
  EXPECT_EQ(redis.keys["rt:node:node-a"], "0123456789abcdef 4");  // not overwritten
  // Once the other node's key is gone (it stopped, or its TTL ran out), the retry joins.
  redis.keys.clear();
  EXPECT_TRUE(up());
}

TEST_F(BrokerRedis, RejectedPasswordIsARefusalThatDoesNotContainThePassword) {
  redis.password = "right";
  link = password_only("hunter2-wrong");
  start();
  const auto why = refusal();
  EXPECT_NE(why.find("WRONGPASS"), std::string::npos) << why;
  EXPECT_EQ(why.find("hunter2-wrong"), std::string::npos) << why;
  EXPECT_FALSE(broker->connected());
}

TEST_F(BrokerRedis, MissingPasswordIsARefusal) {
  redis.password = "right";
  start();
  EXPECT_NE(refusal().find("NOAUTH"), std::string::npos);
}

TEST_F(BrokerRedis, UnreachableRedisAtStartupIsNoRefusal) {
  redis.refuse = true;
  start();
  ASSERT_TRUE(run_until(io, [&] { return redis.accepted_at.size() >= 2; }));
  EXPECT_TRUE(broker->startup_refusal(milliseconds(0)).empty());
}

TEST_F(BrokerRedis, AuthenticatesEveryLinkAgainAfterAReconnect) {
  redis.password = "pw";
  link = password_only("pw");
  start();
  ASSERT_TRUE(up());
  EXPECT_EQ(redis.count("AUTH"), 2u);  // the command and the subscriber link
  redis.drop_all();
  ASSERT_TRUE(down());
  ASSERT_TRUE(up());
  EXPECT_EQ(redis.count("AUTH"), 4u);
}

TEST_F(BrokerRedis, RedisHangingMidReplyIsLostAndTheNodeRecovers) {
  start();
  ASSERT_TRUE(up());
  // From now on every PING gets half an answer and nothing more.
  redis.script = [](const fake::Argv& a) {
    if (a[0] != "PING") return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::raw, "$4\r\nPO"};
  };
  ASSERT_TRUE(run_until(io, [&] { return !broker->connected(); }, std::chrono::seconds(10)));
  redis.script = {};
  EXPECT_TRUE(run_until(io, [&] { return broker->connected(); }, std::chrono::seconds(10)));
}

TEST_F(BrokerRedis, RedisDroppingTheConnectionMidReplyIsLostAndTheNodeRecovers) {
  start();
  ASSERT_TRUE(up());
  redis.script = [sent = false](const fake::Argv& a) mutable {
    if (a[0] != "PUBLISH" || std::exchange(sent, true)) return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::raw, ":1"};  // then the drop below
  };
  auto r = publish(Route::all, "");
  ASSERT_TRUE(run_until(io, [&] { return redis.count("PUBLISH") == 1; }));
  redis.drop_all();
  ASSERT_TRUE(done(r));
  EXPECT_FALSE((*r)->complete);
  ASSERT_TRUE(down());
  EXPECT_TRUE(up());
}

TEST_F(BrokerRedis, ClaimNeverAnsweredIsLostAndTheNodeRecovers) {
  redis.script = [n = 0](const fake::Argv& a) mutable {
    if (a[0] != "EVAL" || n++ > 0) return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::silent, ""};  // the first claim hangs
  };
  start();
  EXPECT_TRUE(run_until(io, [&] { return broker->connected(); }, std::chrono::seconds(10)));
  EXPECT_GE(redis.count("EVAL"), 2u);
}

TEST_F(BrokerRedis, ClusterSlotMapNeverAnsweredIsRetried) {
  redis.script = [n = 0](const fake::Argv& a) mutable {
    if (a[0] != "CLUSTER" || n++ > 0) return fake::Redis::Reply{};
    return fake::Redis::Reply{fake::Redis::Reply::silent, ""};
  };
  start(true);
  EXPECT_TRUE(run_until(io, [&] { return broker->connected(); }, std::chrono::seconds(10)));
  EXPECT_GE(redis.count("CLUSTER"), 2u);
}

}  // namespace
