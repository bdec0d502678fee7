#include "core/presence_redis.hpp"

#include <gtest/gtest.h>

#include "core/cluster_codec.hpp"

namespace boundary::realtime::core {
namespace {

RespValue str(std::string s) { return RespValue{RespValue::Kind::string, std::move(s), 0, {}}; }
RespValue num(long long n) { return RespValue{RespValue::Kind::integer, {}, n, {}}; }
RespValue arr(std::vector<RespValue> v) { return RespValue{RespValue::Kind::array, {}, 0, std::move(v)}; }

TEST(PresenceRedisKeys, AllInTheSlotOfTheTopicsChannel) {
  const auto k = presence_keys("rt", "room:{x}1");
  const auto slot = key_slot(channel_for("rt", Route::topic, "room:{x}1"));
  for (const auto& key : {k.users, k.info, k.version, k.instances, k.entries + "0123abcd"}) EXPECT_EQ(key_slot(key), slot) << key;
  EXPECT_EQ(k.users.rfind("rt:pc:{", 0), 0u);
  EXPECT_EQ(k.users.substr(k.users.size() - 10), "}room:{x}1");
  EXPECT_EQ(k.entries.back(), ':');
  EXPECT_EQ(k.all().size(), 5u);
}

TEST(PresenceRedisBody, DecodesJoinsLeavesAndMarks) {
  auto j = decode_presence_body("7\nj\n5\nalice{\"n\":1}");
  ASSERT_TRUE(j);
  EXPECT_EQ(j->version, 7u);
  EXPECT_EQ(j->kind, 'j');
  EXPECT_EQ(j->user, "alice");
  EXPECT_EQ(j->info, "{\"n\":1}");
  // A user id may hold newlines: its length says where it ends.
  auto l = decode_presence_body("8\nl\n3\na\nb");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->user, "a\nb");
  EXPECT_EQ(l->info, "");
  auto m = decode_presence_body("9\nm\n0\n");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->kind, 'm');
}

TEST(PresenceRedisBody, RefusesMalformedBodies) {
  for (const char* bad : {"", "7", "7\nj", "7\nj\n5", "7\nj\n6\nalice", "0\nj\n1\na", "x\nj\n1\na", "7\nq\n1\na",
                          "7\nj\n0\n", "7\nm\n1\na", "7\njj\n1\na", "7\nj\n-1\na", "18446744073709551616\nj\n1\na"})
    EXPECT_FALSE(decode_presence_body(bad)) << bad;
}

TEST(PresenceRedisList, ParsesTheListScriptsReply) {
  auto reply = arr({str("12"), num(3), str("5"), str("a"), str("2"), str("{\"n\":1}"), str("b"), str("3"), str("")});
  auto r = parse_presence_list(reply, 10);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->version, 12u);
  EXPECT_EQ(r->stats.users, 3u);
  EXPECT_EQ(r->stats.connections, 5u);
  ASSERT_EQ(r->listing.users.size(), 2u);
  EXPECT_TRUE(r->listing.truncated);  // 3 present, 2 listed
  EXPECT_EQ(r->listing.users[0].user_id, "a");
  EXPECT_EQ(r->listing.users[0].connections, 2u);
  EXPECT_EQ(*r->listing.users[0].info, "{\"n\":1}");
  EXPECT_EQ(r->listing.users[1].info, nullptr);
  auto stats_only = parse_presence_list(arr({str("0"), num(0), str("0")}), 0);
  ASSERT_TRUE(stats_only);
  EXPECT_FALSE(stats_only->listing.truncated);
}

TEST(PresenceRedisList, RefusesMalformedReplies) {
  EXPECT_FALSE(parse_presence_list(num(1), 10));
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(1)}), 10));
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(1), str("1"), str("a"), str("1")}), 10));  // not triples
  EXPECT_FALSE(parse_presence_list(arr({str("x"), num(1), str("1")}), 10));
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(-1), str("1")}), 10));
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(1), str("1"), str(""), str("1"), str("")}), 10));   // no user
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(1), str("1"), str("a"), str("0"), str("")}), 10));  // 0 connections
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(1), str("1"), str("a"), str("1"), num(3)}), 10));   // info not text
  EXPECT_FALSE(parse_presence_list(arr({str("1"), num(2), str("2"), str("a"), str("1"), str(""), str("b"), str("1"), str("")}), 1));
}

}  // namespace
}  // namespace boundary::realtime::core
