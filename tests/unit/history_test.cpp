#include "core/history.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shell/adapters/history_memory.hpp"

namespace boundary::realtime::core {
namespace {

using namespace std::chrono_literals;

HistoryRule rule(std::size_t size, std::chrono::seconds ttl = 300s) { return HistoryRule{"**", size, ttl}; }

Message padded(std::uint64_t offset, std::size_t pad) {
  return Message::from_json(R"({"type":"t","offset":)" + std::to_string(offset) + R"(,"p":")" + std::string(pad, 'x') + "\"}");
}

Message msg(std::uint64_t offset) { return padded(offset, 0); }

struct Epochs {
  int n = 0;
  HistoryBook::NewEpoch source() {
    return [this] { return "e" + std::to_string(++n); };
  }
};

std::vector<std::string> jsons(const std::vector<Message>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.emplace_back(m.json());
  return out;
}

// --- parse_history_rules

TEST(HistoryRules, ParsesSizeAndOptionalTtl) {
  auto r = parse_history_rules({"chat:**=100", "news:*=5/60"});
  ASSERT_TRUE(r) << r.error();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].pattern, "chat:**");
  EXPECT_EQ((*r)[0].size, 100u);
  EXPECT_EQ((*r)[0].ttl, default_history_ttl);
  EXPECT_EQ((*r)[1].size, 5u);
  EXPECT_EQ((*r)[1].ttl, 60s);
}

TEST(HistoryRules, RefusesBadSpecsNamingThem) {
  for (const char* spec : {"chat", "chat=", "chat=0", "chat=-1", "chat=1x", "chat=10/", "chat=10/0", "chat=10/x",
                           "=10", "**:a=10", "chat=1000001", "chat=1/2592001"}) {
    auto r = parse_history_rules({spec});
    ASSERT_FALSE(r) << spec;
    EXPECT_NE(r.error().find(spec), std::string::npos) << r.error();
  }
}

TEST(HistoryRules, FirstMatchingRuleWins) {
  HistoryRules rules(*parse_history_rules({"chat:vip=10", "chat:*=3", "x=1"}));
  ASSERT_NE(rules.find("chat:vip"), nullptr);
  EXPECT_EQ(rules.find("chat:vip")->size, 10u);
  EXPECT_EQ(rules.find("chat:a")->size, 3u);
  EXPECT_EQ(rules.find("chat:a:b"), nullptr);
  EXPECT_EQ(rules.find("other"), nullptr);
}

// --- subscribe_skip_through

TEST(SubscribeSkipThrough, ANewSubscriberSkipsWhatWasPublishedBeforeItsReply) {
  EXPECT_EQ(subscribe_skip_through(false, false, 9), 9u);
  EXPECT_EQ(subscribe_skip_through(false, true, 9), 9u);
}

TEST(SubscribeSkipThrough, AConnectionAlreadySubscribedSkipsOnlyWhatARecoveryReplayed) {
  EXPECT_EQ(subscribe_skip_through(true, false, 9), 0u);  // a plain subscribe again, or recovered:false
  EXPECT_EQ(subscribe_skip_through(true, true, 9), 9u);
}

// --- decide_recovery and history_range

TEST(Recovery, SameEpochAndEverythingKeptReplaysTheGap) {
  const StreamState s{4, 9, "e"};
  auto r = decide_recovery(s, {5, "e"});
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.replay.from, 6u);
  EXPECT_EQ(r.replay.to, 9u);
  r = decide_recovery(s, {3, "e"});  // 4 is the first kept: still whole
  EXPECT_TRUE(r.recovered);
  EXPECT_EQ(r.replay.size(), 6u);
}

TEST(Recovery, AtTheLastOffsetRecoversWithNothingToReplay) {
  auto r = decide_recovery({0, 9, "e"}, {9, "e"});  // nothing kept any more, nothing missed
  EXPECT_TRUE(r.recovered);
  EXPECT_TRUE(r.replay.empty());
}

TEST(Recovery, OtherEpochOffsetAheadOrGapGoneIsNotRecovered) {
  const StreamState s{4, 9, "e"};
  EXPECT_FALSE(decide_recovery(s, {5, "other"}).recovered);
  EXPECT_FALSE(decide_recovery(s, {10, "e"}).recovered);
  EXPECT_FALSE(decide_recovery(s, {2, "e"}).recovered);  // 3 is gone
  EXPECT_FALSE(decide_recovery({0, 9, "e"}, {8, "e"}).recovered);
  EXPECT_TRUE(decide_recovery(s, {2, "e"}).replay.empty());
}

TEST(HistoryRange, PagesFromSinceWithinWhatIsKept) {
  const StreamState s{4, 9, "e"};
  auto r = history_range(s, 0, 100);
  EXPECT_EQ(r.from, 4u);
  EXPECT_EQ(r.to, 9u);
  r = history_range(s, 5, 2);
  EXPECT_EQ(r.from, 6u);
  EXPECT_EQ(r.to, 7u);
  EXPECT_TRUE(history_range(s, 9, 10).empty());
  EXPECT_TRUE(history_range(s, 20, 10).empty());
  EXPECT_TRUE(history_range({0, 9, "e"}, 0, 10).empty());
}

// --- HistoryBook

TEST(HistoryBook, OffsetsCountFromOnePerTopic) {
  Epochs epochs;
  HistoryBook book(1 << 20, epochs.source());
  const auto now = HistoryClock::time_point{};
  for (std::uint64_t i = 1; i <= 3; ++i) EXPECT_EQ(book.append("a", rule(10), now, msg).offset, i);
  EXPECT_EQ(book.append("b", rule(10), now, msg).offset, 1u);
  auto a = book.state("a", now);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first_kept, 1u);
  EXPECT_EQ(a->last, 3u);
  EXPECT_EQ(a->epoch, "e1");
  EXPECT_EQ(book.state("b", now)->epoch, "e2");
  EXPECT_EQ(book.message_count(), 4u);
}

TEST(HistoryBook, SizeKeepsTheNewest) {
  Epochs epochs;
  HistoryBook book(1 << 20, epochs.source());
  const auto now = HistoryClock::time_point{};
  for (int i = 0; i < 5; ++i) book.append("a", rule(2), now, msg);
  auto s = book.state("a", now);
  EXPECT_EQ(s->first_kept, 4u);
  EXPECT_EQ(s->last, 5u);
  EXPECT_EQ(jsons(book.messages("a", {4, 5})), (std::vector<std::string>{msg(4).json().data(), msg(5).json().data()}));
  EXPECT_TRUE(book.messages("a", {3, 5}).empty());  // 3 is gone: never a partial answer
}

TEST(HistoryBook, TtlDropsMessagesThenTheStreamWithANewEpochAfter) {
  Epochs epochs;
  HistoryBook book(1 << 20, epochs.source());
  const auto t0 = HistoryClock::time_point{};
  book.append("a", rule(10, 10s), t0, msg);
  book.append("a", rule(10, 10s), t0 + 5s, msg);
  auto s = book.state("a", t0 + 10s);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->first_kept, 2u);
  EXPECT_FALSE(book.state("a", t0 + 15s));  // its newest message expired: the stream is gone
  EXPECT_EQ(book.expirations(), 1u);
  EXPECT_EQ(book.bytes(), 0u);
  auto again = book.append("a", rule(10, 10s), t0 + 16s, msg);
  EXPECT_EQ(again.offset, 1u);
  EXPECT_EQ(book.state("a", t0 + 16s)->epoch, "e2");
}

TEST(HistoryBook, OpenedEmptyStreamLivesForItsTtl) {
  Epochs epochs;
  HistoryBook book(1 << 20, epochs.source());
  const auto t0 = HistoryClock::time_point{};
  auto s = book.open("q", rule(10, 10s), t0);
  EXPECT_EQ(s.last, 0u);
  EXPECT_EQ(s.epoch, "e1");
  EXPECT_EQ(book.expire(t0 + 9s), 0u);
  EXPECT_EQ(book.append("q", rule(10, 10s), t0 + 9s, msg).offset, 1u);
  EXPECT_EQ(book.state("q", t0 + 9s)->epoch, "e1");
  EXPECT_EQ(book.expire(t0 + 19s), 1u);
  EXPECT_EQ(book.stream_count(), 0u);
}

TEST(HistoryBook, ByteCapDropsLeastRecentlyPublishedStreamsWhole) {
  Epochs epochs;
  const std::size_t one = padded(1, 1000).frame_bytes() + history_message_overhead + 1 + 2 + history_stream_overhead;
  HistoryBook book(3 * one + one / 2, epochs.source());
  const auto now = HistoryClock::time_point{};
  auto big = [](std::uint64_t o) { return padded(o, 1000); };
  book.append("a", rule(10), now, big);
  book.append("b", rule(10), now, big);
  book.append("c", rule(10), now, big);
  book.append("a", rule(10), now, big);  // a is now the most recent; b the least
  EXPECT_EQ(book.evictions(), 1u);
  EXPECT_FALSE(book.state("b", now));
  EXPECT_TRUE(book.state("a", now));
  EXPECT_TRUE(book.state("c", now));
  EXPECT_LE(book.bytes(), 3 * one + one / 2);
  EXPECT_EQ(book.append("b", rule(10), now, big).offset, 1u);  // new epoch, from 1
  EXPECT_EQ(book.state("b", now)->epoch, "e4");
}

TEST(HistoryBook, AStreamAloneOverTheCapKeepsItsNewestMessage) {
  Epochs epochs;
  HistoryBook book(3000, epochs.source());
  const auto now = HistoryClock::time_point{};
  for (int i = 0; i < 5; ++i) book.append("a", rule(10), now, [](std::uint64_t o) { return padded(o, 1000); });
  auto s = book.state("a", now);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->last, 5u);
  EXPECT_LE(book.bytes(), 3000u);
  EXPECT_EQ(s->epoch, "e1");
}

TEST(HistoryBook, BytesReturnToZeroWhenEverythingIsGone) {
  Epochs epochs;
  HistoryBook book(1 << 20, epochs.source());
  const auto t0 = HistoryClock::time_point{};
  for (int i = 0; i < 50; ++i) book.append("t" + std::to_string(i % 7), rule(3, 1s), t0, msg);
  EXPECT_GT(book.bytes(), 0u);
  book.expire(t0 + 2s);
  EXPECT_EQ(book.bytes(), 0u);
  EXPECT_EQ(book.message_count(), 0u);
}

}  // namespace
}  // namespace boundary::realtime::core

namespace boundary::realtime::shell {
namespace {

using core::HistoryClock;

// The adapter's atomic join: between two appends; a publish after it sees the join done.
TEST(HistoryMemory, JoinSitsBetweenTwoAppendsUnderConcurrentPublishing) {
  HistoryMemory store(core::HistoryRules(*core::parse_history_rules({"t=100000"})), 1 << 26);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};  // the offset last handed to publish
  std::thread publisher([&] {
    while (!stop.load()) {
      store.append("t", [](std::uint64_t o) { return Message::from_json(R"({"o":)" + std::to_string(o) + "}"); },
                   [&](const Message&, std::uint64_t o) { published.store(o); });
    }
  });
  for (int i = 0; i < 2000; ++i) {
    store.attach("t", HistoryRecover{0, ""}, [&](const HistorySnapshot& snap) {
      // No publish can run inside the join: the last offset published is the snapshot's.
      ASSERT_EQ(published.load(), snap.last);
    });
  }
  stop = true;
  publisher.join();
}

TEST(HistoryMemory, RecoverReplaysExactlyTheGap) {
  HistoryMemory store(core::HistoryRules(*core::parse_history_rules({"t=10"})), 1 << 20, {},
                      [] { return std::string("E"); });
  auto encode = [](std::uint64_t o) { return Message::from_json(R"({"o":)" + std::to_string(o) + "}"); };
  std::vector<std::uint64_t> offsets;
  for (int i = 0; i < 5; ++i) store.append("t", encode, [&](const Message&, std::uint64_t o) { offsets.push_back(o); });
  EXPECT_EQ(offsets, (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));
  HistorySnapshot got;
  store.attach("t", HistoryRecover{2, "E"}, [&](const HistorySnapshot& s) { got = s; });
  EXPECT_TRUE(got.recovered);
  EXPECT_EQ(got.last, 5u);
  ASSERT_EQ(got.messages.size(), 3u);
  EXPECT_EQ(got.messages[0].json(), R"({"o":3})");
  store.attach("t", HistoryRecover{2, "other"}, [&](const HistorySnapshot& s) { got = s; });
  EXPECT_FALSE(got.recovered);
  EXPECT_TRUE(got.messages.empty());
  EXPECT_EQ(store.usage().messages, 5u);
}

TEST(HistoryMemory, TopicWithoutARuleIsPublishedWithOffsetZeroAndNotKept) {
  HistoryMemory store(core::HistoryRules(*core::parse_history_rules({"t=10"})), 1 << 20);
  std::uint64_t offset = 99;
  store.append("other", [](std::uint64_t) { return Message::from_json("{}"); },
               [&](const Message&, std::uint64_t o) { offset = o; });
  EXPECT_EQ(offset, 0u);
  EXPECT_EQ(store.usage().streams, 0u);
}

}  // namespace
}  // namespace boundary::realtime::shell

#include "core/command.hpp"
#include "core/config_check.hpp"
#include "core/http_rules.hpp"

namespace boundary::realtime::core {
namespace {

TEST(HistoryCommands, SubscribeCarriesRecover) {
  auto c = parse_command(R"({"action":"subscribe","topic":"t","recover":{"offset":7,"epoch":"E"}})");
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->recover);
  EXPECT_EQ(c->recover->offset, 7u);
  EXPECT_EQ(c->recover->epoch, "E");
  EXPECT_FALSE(parse_command(R"({"action":"subscribe","topic":"t"})")->recover);
  for (const char* bad : {R"({"action":"subscribe","topic":"t","recover":{"offset":-1,"epoch":"E"}})",
                          R"({"action":"subscribe","topic":"t","recover":{"offset":1.5,"epoch":"E"}})",
                          R"({"action":"subscribe","topic":"t","recover":{"epoch":"E"}})",
                          R"({"action":"subscribe","topic":"t","recover":{"offset":1,"epoch":2}})",
                          R"({"action":"subscribe","topic":"t","recover":[1,"E"]})"}) {
    auto r = parse_command(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, CommandErrorCode::bad_request);
  }
}

TEST(HistoryCommands, HistoryActionHasSinceAndBoundedLimit) {
  auto c = parse_command(R"({"action":"history","topic":"t","since":3,"limit":20})");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->action, Action::history);
  EXPECT_EQ(c->since, 3u);
  EXPECT_EQ(c->limit, 20u);
  auto d = parse_command(R"({"action":"history","topic":"t"})");
  EXPECT_EQ(d->since, 0u);
  EXPECT_EQ(d->limit, default_history_limit);
  EXPECT_FALSE(parse_command(R"({"action":"history","topic":"t","limit":0})"));
  EXPECT_FALSE(parse_command(R"({"action":"history","topic":"t","limit":1001})"));
  EXPECT_FALSE(parse_command(R"({"action":"history","topic":"t","since":-2})"));
}

TEST(HistoryCommands, HistoryIsAuthorizedLikeSubscribe) {
  Identity who;
  who.user_id = "1";
  CommandRules rules;
  TokenBucketPolicy::Clock::time_point bucket{};
  auto d = decide_command(R"({"action":"history","topic":"user:2"})", who, rules, bucket, {});
  ASSERT_TRUE(std::holds_alternative<Refusal>(d));
  EXPECT_EQ(std::get<Refusal>(d).code, CommandErrorCode::forbidden);
  EXPECT_TRUE(std::holds_alternative<Command>(decide_command(R"({"action":"history","topic":"user:1"})", who, rules, bucket, {})));
}

TEST(HistoryCommands, RepliesCarryOffsetEpochAndMessagesAsStored) {
  EXPECT_EQ(reply_subscribed("t", 4, "E", true, nullptr),
            R"({"type":"subscribed","topic":"t","offset":4,"epoch":"E","recovered":true})");
  EXPECT_EQ(reply_subscribed("t", 0, "E", std::nullopt, 1), R"({"type":"subscribed","topic":"t","offset":0,"epoch":"E","ref":1})");
  EXPECT_EQ(reply_history("t", "E", 9, {R"({"a":1})", R"({"b":2})"}, "r"),
            R"({"type":"history","topic":"t","epoch":"E","offset":9,"ref":"r","messages":[{"a":1},{"b":2}]})");
  EXPECT_EQ(reply_history("t", "", 0, {}, nullptr), R"({"type":"history","topic":"t","epoch":"","offset":0,"messages":[]})");
  EXPECT_EQ(reply_published("t", 2, nullptr, 5), R"({"type":"published","topic":"t","delivered":2,"offset":5})");
}

TEST(HistoryQuery, ParsesTopicSinceAndLimit) {
  auto q = parse_history_query("/api/history?topic=chat%3Aa&since=4&limit=2");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->topic, "chat:a");
  EXPECT_EQ(q->since, 4u);
  EXPECT_EQ(q->limit, 2u);
  for (const char* bad : {"/api/history", "/api/history?topic=", "/api/history?topic=a&since=x",
                          "/api/history?topic=a&limit=0", "/api/history?topic=a&topic=b"}) {
    auto r = parse_history_query(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().status, 400u);
  }
}

TEST(HistoryConfig, BadRulesAndByteCapAreRefusedRedisIsNot) {
  Config c;
  c.api_key = std::string(32, 'k');
  c.jwt_secret = std::string(32, 's');
  c.history = {"chat=10"};
  EXPECT_NO_THROW(validate_config(c));
  c.history = {"chat=0"};
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c.history = {"chat=10"};
  c.history_max_bytes = 100;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c.history_max_bytes = 1 << 20;
  c.redis_url = "redis://127.0.0.1:6379";  // cluster mode keeps history in Redis
  EXPECT_NO_THROW(validate_config(c));
}

}  // namespace
}  // namespace boundary::realtime::core
