// RedisLink against a fake Redis (fake_redis.hpp): the Nth command fails in each of the ways a
// connection can (dropped, error reply, bytes that are not RESP), as Beast's fail_count does.
#include "shell/adapters/redis_link.hpp"

#include <optional>
#include <vector>

#include <gtest/gtest.h>

#include "fake_redis.hpp"

namespace {
namespace asio = boost::asio;
using boundary::realtime::core::RespValue;
using boundary::realtime::shell::LinkError;
using boundary::realtime::shell::RedisLink;
using boundary::realtime::shell::RedisLinkSettings;
using Kind = RespValue::Kind;
using fake::run_until;

constexpr int commands_sent = 4;

// The fake's script: the `nth` command (1-based) gets `reply`, every other one the default.
fake::Redis::Script fail_nth(int nth, fake::Redis::Reply reply) {
  return [nth, reply, seen = 0](const fake::Argv&) mutable { return ++seen == nth ? reply : fake::Redis::Reply{}; };
}

struct Link {
  asio::io_context io;
  fake::Redis redis{io};
  RedisLink link;
  int downs = 0;
  // One entry per command: nullopt until its handler ran; then the reply, or nil-kind with
  // `lost` set for nullptr.
  std::vector<std::optional<RespValue>> replies;
  std::vector<bool> lost;

  explicit Link(bool push_mode = false, std::shared_ptr<const RedisLinkSettings> settings = {})
      : link(io, push_mode, std::move(settings)) {
    link.set_down_handler([this] { ++downs; });
  }

  std::optional<LinkError> try_connect(std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    asio::ip::tcp::resolver resolver(io);
    auto endpoints = resolver.resolve("127.0.0.1", std::to_string(redis.port()));
    std::optional<LinkError> result;
    link.connect(endpoints, "127.0.0.1", [&](const LinkError& e) { result = e; });
    run_until(io, [&] { return result.has_value(); }, limit);
    return result;
  }
  bool connect() {
    auto r = try_connect();
    return r && !*r;
  }
  void send(std::initializer_list<std::string_view> argv) {
    const std::size_t i = replies.size();
    replies.emplace_back();
    lost.push_back(false);
    link.command(argv, [this, i](const RespValue* r) {
      ASSERT_FALSE(replies[i].has_value()) << "a reply handler ran twice";
      replies[i] = r ? *r : RespValue{};
      lost[i] = r == nullptr;
    });
  }
  bool all_answered() {
    return run_until(io, [&] {
      for (const auto& r : replies)
        if (!r) return false;
      return true;
    });
  }
  // Connects and pipelines `commands_sent` PUBLISHes, the `nth` of which gets `reply` (the
  // others an integer), then waits until every handler ran.
  void batch_failing_at(int nth, fake::Redis::Reply reply) {
    ASSERT_TRUE(connect());
    redis.script = fail_nth(nth, std::move(reply));
    for (int i = 0; i < commands_sent; ++i) send({"PUBLISH", "ch", std::to_string(i)});
    ASSERT_TRUE(all_answered());
  }
};

TEST(RedisLink, RepliesReachTheirCommandsInOrder) {
  Link t;
  ASSERT_TRUE(t.connect());
  t.send({"SET", "k", "v"});
  t.send({"PUBLISH", "ch", "x"});
  t.send({"NOPE"});
  ASSERT_TRUE(t.all_answered());
  EXPECT_EQ(t.replies[0]->kind, Kind::status);
  EXPECT_EQ(t.replies[0]->str, "OK");
  EXPECT_EQ(t.replies[1]->kind, Kind::integer);
  EXPECT_EQ(t.replies[2]->kind, Kind::error);
  EXPECT_TRUE(t.link.is_open());
  EXPECT_EQ(t.downs, 0);
  EXPECT_TRUE(t.redis.saw({"PUBLISH", "ch", "x"}));
}

TEST(RedisLink, DroppedConnectionAtNthCommandFailsItAndLaterOnesAndCallsDownOnce) {
  for (int nth = 1; nth <= commands_sent; ++nth) {
    SCOPED_TRACE("drop at command " + std::to_string(nth));
    Link t;
    ASSERT_NO_FATAL_FAILURE(t.batch_failing_at(nth, {fake::Redis::Reply::drop, {}}));
    for (int i = 0; i < commands_sent; ++i) {
      EXPECT_EQ(t.lost[i], i + 1 >= nth) << "command " << i + 1;
      if (i + 1 < nth) {
        EXPECT_EQ(t.replies[i]->kind, Kind::integer);
      }
    }
    EXPECT_TRUE(run_until(t.io, [&] { return t.downs > 0; }));
    EXPECT_EQ(t.downs, 1);
    EXPECT_FALSE(t.link.is_open());
  }
}

TEST(RedisLink, ErrorReplyAtNthCommandReachesOnlyThatCommandAndKeepsTheLink) {
  for (int nth = 1; nth <= commands_sent; ++nth) {
    SCOPED_TRACE("error at command " + std::to_string(nth));
    Link t;
    ASSERT_NO_FATAL_FAILURE(t.batch_failing_at(nth, {fake::Redis::Reply::raw, "-ERR injected\r\n"}));
    for (int i = 0; i < commands_sent; ++i) {
      EXPECT_FALSE(t.lost[i]);
      EXPECT_EQ(t.replies[i]->kind, i + 1 == nth ? Kind::error : Kind::integer) << "command " << i + 1;
    }
    EXPECT_EQ(t.replies[nth - 1]->str, "ERR injected");
    EXPECT_TRUE(t.link.is_open());
    EXPECT_EQ(t.downs, 0);
  }
}

TEST(RedisLink, GarbageAtNthCommandFailsItAndLaterOnesAndCallsDownOnce) {
  for (int nth = 1; nth <= commands_sent; ++nth) {
    SCOPED_TRACE("garbage at command " + std::to_string(nth));
    Link t;
    ASSERT_NO_FATAL_FAILURE(t.batch_failing_at(nth, {fake::Redis::Reply::raw, "?not resp\r\n"}));
    for (int i = 0; i < commands_sent; ++i) EXPECT_EQ(t.lost[i], i + 1 >= nth) << "command " << i + 1;
    EXPECT_EQ(t.downs, 1);
    EXPECT_FALSE(t.link.is_open());
    // Replies still owed to the dead connection's commands must not reach a new one.
    ASSERT_TRUE(t.connect());
    t.send({"SET", "k", "v"});
    ASSERT_TRUE(t.all_answered());
    EXPECT_EQ(t.replies.back()->kind, Kind::status);
  }
}

TEST(RedisLink, CommandOnAClosedLinkGetsNullOnALaterTurn) {
  Link t;
  t.send({"SET", "k", "v"});
  EXPECT_FALSE(t.replies[0].has_value());  // not from inside command()
  ASSERT_TRUE(t.all_answered());
  EXPECT_TRUE(t.lost[0]);
  EXPECT_EQ(t.downs, 0);
}

TEST(RedisLink, CloseFailsPendingRepliesWithoutCallingDown) {
  Link t;
  ASSERT_TRUE(t.connect());
  t.redis.hold = true;
  t.send({"SET", "k", "v"});
  ASSERT_TRUE(run_until(t.io, [&] { return t.redis.count("SET") == 1; }));
  t.link.close();
  ASSERT_TRUE(t.replies[0].has_value());
  EXPECT_TRUE(t.lost[0]);
  EXPECT_FALSE(run_until(t.io, [&] { return t.downs > 0; }, std::chrono::milliseconds(50)));
}

TEST(RedisLink, SubscriberLinkHandsConfirmationsAndMessagesToThePushHandler) {
  Link t(true);
  std::vector<RespValue> pushes;
  t.link.set_push_handler([&](const RespValue* r) { pushes.push_back(*r); });
  ASSERT_TRUE(t.connect());
  t.link.command({"SUBSCRIBE", "a", "b"});
  ASSERT_TRUE(run_until(t.io, [&] { return pushes.size() == 2; }));
  EXPECT_EQ(t.redis.deliver("b", "payload"), 1);
  ASSERT_TRUE(run_until(t.io, [&] { return pushes.size() == 3; }));
  ASSERT_EQ(pushes[2].kind, Kind::array);
  ASSERT_EQ(pushes[2].elements.size(), 3u);
  EXPECT_EQ(pushes[2].elements[0].str, "message");
  EXPECT_EQ(pushes[2].elements[1].str, "b");
  EXPECT_EQ(pushes[2].elements[2].str, "payload");
}

std::shared_ptr<const RedisLinkSettings> credentials(std::string user, std::string password) {
  auto s = std::make_shared<RedisLinkSettings>();
  s->user = std::move(user);
  s->password = std::move(password);
  return s;
}

TEST(RedisLink, AuthenticatesBeforeAnyCommandOnEveryConnect) {
  Link t(false, credentials("alice", "p@ss word"));
  t.redis.user = "alice";
  t.redis.password = "p@ss word";
  for (int round = 0; round < 2; ++round) {
    ASSERT_TRUE(t.connect());
    t.send({"SET", "k", "v"});
    ASSERT_TRUE(t.all_answered());
    EXPECT_EQ(t.replies.back()->kind, Kind::status) << t.replies.back()->str;
    t.link.close();
  }
  ASSERT_EQ(t.redis.commands.size(), 4u);
  EXPECT_EQ(t.redis.commands[0], (fake::Argv{"AUTH", "alice", "p@ss word"}));
  EXPECT_EQ(t.redis.commands[2], (fake::Argv{"AUTH", "alice", "p@ss word"}));
}

TEST(RedisLink, PasswordOnlyAuthSendsNoUser) {
  Link t(true, credentials("", "pw"));
  t.redis.password = "pw";
  std::vector<RespValue> pushes;
  t.link.set_push_handler([&](const RespValue* r) { pushes.push_back(*r); });
  ASSERT_TRUE(t.connect());
  EXPECT_EQ(t.redis.commands[0], (fake::Argv{"AUTH", "pw"}));
  t.link.command({"SUBSCRIBE", "a"});
  ASSERT_TRUE(run_until(t.io, [&] { return pushes.size() == 1; }));  // AUTH's +OK is not a push
  EXPECT_EQ(pushes[0].elements[0].str, "subscribe");
}

TEST(RedisLink, RejectedCredentialsAreARefusalWithoutThePassword) {
  Link t(false, credentials("", "wrong-secret"));
  t.redis.password = "right";
  auto r = t.try_connect();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, LinkError::Kind::refused);
  EXPECT_NE(r->text.find("WRONGPASS"), std::string::npos) << r->text;
  EXPECT_EQ(r->text.find("wrong-secret"), std::string::npos) << r->text;
  EXPECT_FALSE(t.link.is_open());
  EXPECT_EQ(t.downs, 0);
}

TEST(RedisLink, ARedisThatNeverAnswersAuthFailsTheConnectWithinTheTimeout) {
  Link t(false, credentials("", "pw"));
  t.redis.script = [](const fake::Argv&) { return fake::Redis::Reply{fake::Redis::Reply::raw, "+O"}; };  // mid-reply
  auto r = t.try_connect(std::chrono::seconds(10));
  ASSERT_TRUE(r.has_value()) << "connect() never reported";
  EXPECT_EQ(r->kind, LinkError::Kind::network);
  EXPECT_FALSE(t.link.is_open());
}

TEST(RedisLink, ConnectionDroppedDuringAuthFailsTheConnect) {
  Link t(false, credentials("", "pw"));
  t.redis.script = [](const fake::Argv&) { return fake::Redis::Reply{fake::Redis::Reply::drop, ""}; };
  auto r = t.try_connect();
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->kind, LinkError::Kind::network);
  EXPECT_EQ(t.downs, 0);
}

}  // namespace
