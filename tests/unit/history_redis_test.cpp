#include "core/history_redis.hpp"

#include <set>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "core/cluster_codec.hpp"

namespace boundary::realtime::core {
namespace {

using Kind = RespValue::Kind;

RespValue str(std::string s) { return RespValue{Kind::string, std::move(s), 0, {}}; }
RespValue num(long long n) { return RespValue{Kind::integer, {}, n, {}}; }
RespValue arr(std::vector<RespValue> e) { return RespValue{Kind::array, {}, 0, std::move(e)}; }

TEST(HistoryRedisKeys, EverySlotHasATagThatHashesToIt) {
  std::set<std::string_view> seen;
  for (unsigned slot = 0; slot < cluster_slots; ++slot) {
    const auto tag = slot_tag(static_cast<std::uint16_t>(slot));
    ASSERT_FALSE(tag.empty());
    EXPECT_EQ(tag.find_first_of("{}"), std::string_view::npos);
    EXPECT_EQ(key_slot(tag), slot) << tag;
    seen.insert(tag);
  }
  EXPECT_EQ(seen.size(), cluster_slots);
}

TEST(HistoryRedisKeys, KeysShareTheSlotOfTheTopicChannel) {
  // Plain topics, topics with their own hash tag, braces that make no tag, and odd bytes.
  for (std::string topic : {"chat:a", "order:123", "room:{42}:x", "a{}b", "{", "}x{y", "x}{y}", "sp ace\r\n*"}) {
    SCOPED_TRACE(topic);
    const auto keys = stream_keys("rt", topic);
    const auto slot = key_slot(channel_for("rt", Route::topic, topic));
    EXPECT_EQ(key_slot(keys.meta), slot);
    EXPECT_EQ(key_slot(keys.list), slot);
    EXPECT_TRUE(keys.meta.starts_with("rt:h:{"));
    EXPECT_TRUE(keys.list.starts_with("rt:hl:{"));
    EXPECT_TRUE(keys.meta.ends_with("}" + topic));
    EXPECT_TRUE(keys.list.ends_with("}" + topic));
  }
  EXPECT_TRUE(stream_keys("app/1", "t").meta.starts_with("app/1:h:{"));
}

TEST(HistoryRedisTemplate, SplitsAroundTheOffsetDigits) {
  const auto now = std::chrono::system_clock::time_point{};
  auto t = stream_template(boost::json::parse(R"({"type":"note","offset":5,"n":1})").as_object(), now, "chat:a");
  ASSERT_TRUE(t);
  const auto json = t->head + "42" + t->tail;
  auto v = boost::json::parse(json).as_object();
  EXPECT_EQ(v.at("offset").to_number<std::uint64_t>(), 42u);  // the sender's offset is replaced
  EXPECT_EQ(v.at("topic").as_string(), "chat:a");
  EXPECT_EQ(v.at("timestamp").as_string(), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(v.at("n").as_int64(), 1);
}

TEST(HistoryRedisTemplate, APlaceholderInTheDataIsNotMistakenForTheOffset) {
  const auto now = std::chrono::system_clock::time_point{};
  auto m = boost::json::parse(R"({"type":"note","a":9007199254740993317,"b":"9007199254740993317"})").as_object();
  auto t = stream_template(m, now, "x");
  ASSERT_TRUE(t);
  auto v = boost::json::parse(t->head + "7" + t->tail).as_object();
  EXPECT_EQ(v.at("offset").to_number<std::uint64_t>(), 7u);
  EXPECT_EQ(v.at("a").to_number<std::uint64_t>(), 9007199254740993317u);
  EXPECT_EQ(v.at("b").as_string(), "9007199254740993317");
  // Both placeholders in the data: no template (the message then goes without history).
  m["c"] = "8118608165839882209";
  EXPECT_FALSE(stream_template(m, now, "x"));
}

TEST(HistoryRedisBody, DecodesOffsetAndJson) {
  auto b = decode_stream_body("17\n{\"a\":1}");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->offset, 17u);
  EXPECT_EQ(b->json, "{\"a\":1}");
  for (std::string_view bad : {"", "17", "0\n{}", "-1\n{}", "x\n{}", "\n{}", "18446744073709551616\n{}"})
    EXPECT_FALSE(decode_stream_body(bad)) << bad;
}

TEST(HistoryRedisRead, ReadsEpochOffsetsAndEntries) {
  // Entries are views into the reply, which must outlive them.
  const auto reply = arr({str("e1"), str("7"), str("4"), str("100 {\"offset\":6}"), str("101 {\"offset\":7}")});
  auto r = parse_stream_read(reply, 5);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->epoch, "e1");
  EXPECT_EQ((std::pair{r->first_kept, r->last}), (std::pair<std::uint64_t, std::uint64_t>{4, 7}));
  ASSERT_EQ(r->entries.size(), 2u);
  EXPECT_EQ(r->entries[0].offset, 6u);
  EXPECT_EQ(r->entries[0].json, "{\"offset\":6}");
  EXPECT_EQ(r->entries[1].offset, 7u);
  // From before the first kept: entries start at the first kept.
  const auto reply2 = arr({str("e1"), num(7), num(4), str("1 {}"), str("1 {}")});
  auto r2 = parse_stream_read(reply2, 0);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->entries[0].offset, 4u);
  // A missing stream in read mode.
  auto none = parse_stream_read(arr({str(""), num(0), num(0)}), 0);
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->epoch.empty());
}

TEST(HistoryRedisRead, RefusesWhatTheScriptCannotHaveAnswered) {
  const RespValue error{Kind::error, "NOSCRIPT", 0, {}};
  EXPECT_FALSE(parse_stream_read(error, 0));
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(1)}), 0));                     // too short
  EXPECT_FALSE(parse_stream_read(arr({num(1), num(1), num(1)}), 0));               // epoch not a string
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(3), num(5)}), 0));             // first after last
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(-1), num(0)}), 0));            // negative
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(3), num(1), str("x")}), 0));   // entry without time
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(3), num(3), str("1 {}"), str("1 {}")}), 0));  // too many
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(3), num(0), str("1 {}")}), 0));  // entries, none kept
  EXPECT_FALSE(parse_stream_read(arr({str("e"), num(3), num(1), num(5)}), 0));     // entry not a string
}

TEST(HistoryRedisScripts, UseOnlyTheirDeclaredKeys) {
  // Every key a script touches is KEYS[1] or KEYS[2] (Redis Cluster refuses others); the only
  // other name is the channel, given as ARGV[1].
  for (const auto* script : {&history_append_script, &history_read_script}) {
    EXPECT_EQ(script->find("KEYS[3]"), std::string::npos);
    EXPECT_NE(script->find("local meta, list = KEYS[1], KEYS[2]"), std::string::npos);
  }
  EXPECT_NE(history_append_script.find("redis.call(ARGV[2], ARGV[1]"), std::string::npos);
}

}  // namespace
}  // namespace boundary::realtime::core
