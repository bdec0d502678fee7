#include "core/cluster_codec.hpp"

#include <gtest/gtest.h>

namespace rt = boundary::realtime;
using rt::Fanout;
using rt::Route;
using namespace rt::core;

TEST(ClusterChannels, NamesFollowTheRoute) {
  EXPECT_EQ(channel_for("rt", Route::user, "42"), "rt:u:42");
  EXPECT_EQ(channel_for("rt", Route::role, "admin"), "rt:r:admin");
  EXPECT_EQ(channel_for("rt", Route::topic, "order:1"), "rt:t:order:1");
  for (Route r : {Route::all, Route::connection, Route::subscribe, Route::unsubscribe, Route::disconnect, Route::count})
    EXPECT_EQ(channel_for("rt", r, "00000000-0000-4000-8000-000000000000"), "rt:all");
  EXPECT_EQ(reply_channel("rt", "n1"), "rt:reply:n1");
  EXPECT_EQ(node_key("rt", "n1"), "rt:node:n1");
}

TEST(ClusterChannels, EveryNameStartsWithThePrefix) {
  for (Route r : {Route::user, Route::role, Route::topic, Route::all, Route::connection, Route::disconnect_user})
    EXPECT_TRUE(channel_for("app/eu-1", r, "x").starts_with("app/eu-1:")) << static_cast<char>(r);
  EXPECT_EQ(all_channel("app/eu-1"), "app/eu-1:all");
  EXPECT_EQ(reply_channel("app/eu-1", "n1"), "app/eu-1:reply:n1");
  EXPECT_EQ(node_key("app/eu-1", "n1"), "app/eu-1:node:n1");
}

TEST(ClusterChannels, TopicListingPatternsMatchTheirPrefixLiterally) {
  EXPECT_EQ(topic_channel_pattern("rt", ""), "rt:t:*");
  EXPECT_EQ(topic_channel_pattern("rt", "presence-"), "rt:t:presence-*");
  // Glob characters in a prefix match only themselves.
  EXPECT_EQ(topic_channel_pattern("rt", "a*b?[c]\\d"), "rt:t:a\\*b\\?\\[c\\]\\\\d*");
  EXPECT_EQ(topic_of_channel("rt", "rt:t:order:1"), "order:1");
  EXPECT_EQ(topic_of_channel("app/eu-1", "app/eu-1:t:x"), "x");
  EXPECT_EQ(topic_of_channel("rt", "rt:t:"), "");
  for (std::string_view other : {"rt:u:x", "rt:all", "rt", "rtx:t:a", "other:t:a", ""})
    EXPECT_EQ(topic_of_channel("rt", other), std::nullopt) << other;
}

TEST(ClusterChannels, ATargetIsAppendedByteForByte) {
  // Names are bulk strings on the wire: CRLF, spaces and '*' stay inside the one channel name.
  EXPECT_EQ(channel_for("rt", Route::topic, "a b\r\n*3\r\n{x}"), "rt:t:a b\r\n*3\r\n{x}");
}

TEST(ClusterChannels, DisconnectUserGoesOnlyToNodesWithThatUser) {
  // disconnect_user is addressed like a user send, so nodes without the user never see it.
  EXPECT_EQ(channel_for("rt", Route::disconnect_user, "42"), "rt:u:42");
}

TEST(FanoutCodec, RoundTripsEveryField) {
  Fanout f{Route::topic, "chat:general", R"({"type":"x","topic":"chat:general","timestamp":"t"})"};
  auto w = decode_fanout(encode_fanout(f, "node-a", 17));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->origin, "node-a");
  EXPECT_EQ(w->request_id, 17u);
  EXPECT_EQ(w->fanout.route, Route::topic);
  EXPECT_EQ(w->fanout.target, "chat:general");
  EXPECT_EQ(w->fanout.body, f.body);
}

TEST(FanoutCodec, StreamFanoutGoesOnTheTopicChannel) {
  EXPECT_EQ(channel_for("rt", Route::stream, "chat:a"), channel_for("rt", Route::topic, "chat:a"));
  // The header the history script is given, then its body: "<offset>\n<json>".
  const auto header = encode_fanout(Fanout{Route::stream, "chat:a", {}}, "node-a", 9);
  auto w = decode_fanout(header + "3\n{\"offset\":3}");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->fanout.route, Route::stream);
  EXPECT_EQ(w->fanout.target, "chat:a");
  EXPECT_EQ(w->fanout.body, "3\n{\"offset\":3}");
  EXPECT_EQ(w->request_id, 9u);
}

TEST(FanoutCodec, TargetMayHoldNewlinesAndBinary) {
  std::string target("user\n1\0x", 8);
  Fanout f{Route::user, target, "{\"type\":\"a\"}"};
  auto w = decode_fanout(encode_fanout(f, "n", 0));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->fanout.target, target);
  EXPECT_EQ(w->fanout.body, "{\"type\":\"a\"}");
  EXPECT_EQ(w->request_id, 0u);
}

TEST(FanoutCodec, EmptyTargetAndBody) {
  auto w = decode_fanout(encode_fanout(Fanout{Route::count, "", ""}, "n", 3));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->fanout.route, Route::count);
  EXPECT_TRUE(w->fanout.target.empty());
  EXPECT_TRUE(w->fanout.body.empty());
}

TEST(FanoutCodec, RejectsMalformedPayloads) {
  const std::string good = encode_fanout(Fanout{Route::user, "42", "{}"}, "n", 1);
  EXPECT_FALSE(decode_fanout(""));
  EXPECT_FALSE(decode_fanout("Zn\n1\n2\n42{}"));            // unknown route
  EXPECT_FALSE(decode_fanout("un\n1\n99\n42{}"));           // target longer than the rest
  EXPECT_FALSE(decode_fanout("un\nx\n2\n42{}"));            // bad request id
  EXPECT_FALSE(decode_fanout("ubad node\n1\n2\n42{}"));     // invalid origin
  EXPECT_FALSE(decode_fanout("un\n1\n"));                   // truncated header
  for (std::size_t i = 0; i < good.size(); ++i) (void)decode_fanout(good.substr(0, i));  // no crash
  EXPECT_TRUE(decode_fanout(good));
}

TEST(ReplyCodec, RoundTripsAndRejectsGarbage) {
  auto r = decode_reply(encode_reply(9, 1234));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->request_id, 9u);
  EXPECT_EQ(r->count, 1234u);
  EXPECT_FALSE(decode_reply("9"));
  EXPECT_FALSE(decode_reply("0 3"));
  EXPECT_FALSE(decode_reply("9 -1"));
  EXPECT_FALSE(decode_reply("a 1"));
}

TEST(RedisUrl, ParsesHostPortAndDb) {
  auto u = parse_redis_url("redis://127.0.0.1:6380/2");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2u);
  auto d = parse_redis_url("redis://cache");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->host, "cache");
  EXPECT_EQ(d->port, 6379);
  EXPECT_EQ(d->db, 0u);
}

TEST(RedisUrl, RejectsWhatItCannotUse) {
  EXPECT_FALSE(parse_redis_url("http://h:1"));
  EXPECT_FALSE(parse_redis_url("redis://:6379"));
  EXPECT_FALSE(parse_redis_url("redis://h:0"));
  EXPECT_FALSE(parse_redis_url("redis://h:99999"));
  EXPECT_FALSE(parse_redis_url("redis://h:1/x"));
  EXPECT_FALSE(parse_redis_url("redis://user:pw@h:1"));
}

TEST(NodeId, OnlySafeCharacters) {
  EXPECT_TRUE(valid_node_id("node-1.eu_west"));
  EXPECT_FALSE(valid_node_id(""));
  EXPECT_FALSE(valid_node_id("a b"));
  EXPECT_FALSE(valid_node_id("a\nb"));
  EXPECT_FALSE(valid_node_id(std::string(65, 'a')));
}

using Clock = ReplyGather::Clock;

TEST(ReplyGather, CompletesWhenEveryReceiverAnswered) {
  ReplyGather g;
  const auto t0 = Clock::now();
  g.start(1, t0 + std::chrono::seconds(1));
  EXPECT_FALSE(g.published(1, 3));
  EXPECT_FALSE(g.answered(1, 2));
  EXPECT_FALSE(g.answered(1, 0));  // the origin's own echo
  auto o = g.answered(1, 5);
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->complete);
  EXPECT_EQ(o->count, 7u);
  EXPECT_EQ(g.pending(), 0u);
}

TEST(ReplyGather, AnswersMayArriveBeforeThePublishReply) {
  ReplyGather g;
  g.start(4, Clock::now() + std::chrono::seconds(1));
  EXPECT_FALSE(g.answered(4, 1));
  EXPECT_FALSE(g.answered(4, 1));
  auto o = g.published(4, 2);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->count, 2u);
}

TEST(ReplyGather, NoReceiversCompletesAtOnce) {
  ReplyGather g;
  g.start(2, Clock::now() + std::chrono::seconds(1));
  auto o = g.published(2, 0);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->count, 0u);
  EXPECT_TRUE(o->complete);
}

TEST(ReplyGather, DeadlineAnswersWithWhatArrivedInOrder) {
  ReplyGather g;
  const auto t0 = Clock::now();
  g.start(1, t0 + std::chrono::milliseconds(10));
  g.start(2, t0 + std::chrono::milliseconds(20));
  g.published(1, 3);
  g.answered(1, 4);
  auto early = g.expire(t0 + std::chrono::milliseconds(15));
  ASSERT_EQ(early.size(), 1u);
  EXPECT_EQ(early[0].request_id, 1u);
  EXPECT_EQ(early[0].count, 4u);
  EXPECT_FALSE(early[0].complete);
  EXPECT_FALSE(g.answered(1, 9));  // late answer: ignored
  auto late = g.expire(t0 + std::chrono::milliseconds(25));
  ASSERT_EQ(late.size(), 1u);
  EXPECT_EQ(late[0].request_id, 2u);
}

TEST(ReplyGather, FailedAndDrainedRequestsAreIncomplete) {
  ReplyGather g;
  g.start(1, Clock::now() + std::chrono::seconds(1));
  g.start(2, Clock::now() + std::chrono::seconds(1));
  auto f = g.failed(1);
  ASSERT_TRUE(f);
  EXPECT_FALSE(f->complete);
  EXPECT_FALSE(g.failed(1));
  auto d = g.drain();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].request_id, 2u);
  EXPECT_EQ(g.pending(), 0u);
}

#include "shell/adapters/broker_memory.hpp"

TEST(BrokerMemory, SingleNodeFansOutToNobodyAtOnce) {
  boundary::realtime::shell::BrokerMemory b;
  EXPECT_FALSE(b.distributed());
  EXPECT_TRUE(b.connected());
  bool called = false;
  b.publish(Fanout{Route::all, "", "{}"}, true, [&](rt::FanoutResult r) {
    called = true;
    EXPECT_TRUE(r.reached);
    EXPECT_EQ(r.count, 0u);
  });
  EXPECT_TRUE(called);
  bool ready = false;
  b.when_ready([&] { ready = true; });
  EXPECT_TRUE(ready);
}
