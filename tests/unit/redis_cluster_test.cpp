#include "core/redis_cluster.hpp"

#include <gtest/gtest.h>

using namespace boundary::realtime::core;
using K = RespValue::Kind;

namespace {
RespValue str(std::string s) { return RespValue{K::string, std::move(s), 0, {}}; }
RespValue num(long long n) { return RespValue{K::integer, {}, n, {}}; }
RespValue arr(std::vector<RespValue> v) { return RespValue{K::array, {}, 0, std::move(v)}; }
RespValue range(long long first, long long last, std::string host, long long port) {
  return arr({num(first), num(last), arr({str(std::move(host)), num(port), str("0123456789abcdef"), arr({})}),
              arr({str("10.0.0.9"), num(7000), str("replica-id")})});
}
}  // namespace

TEST(Crc16, MatchesTheRedisClusterReferenceValue) {
  EXPECT_EQ(crc16("123456789"), 0x31C3);  // the check value in Redis's crc16.c
  EXPECT_EQ(crc16(""), 0);
}

TEST(KeySlot, MatchesRedisForPlainKeys) {
  EXPECT_EQ(key_slot("foo"), 12182);
  EXPECT_EQ(key_slot("bar"), 5061);
  EXPECT_EQ(key_slot("somekey"), 11058);
  EXPECT_EQ(key_slot(""), 0);
}

TEST(KeySlot, HashTagsFollowTheClusterSpec) {
  EXPECT_EQ(key_slot("foo{hash_tag}"), 2515);
  EXPECT_EQ(key_slot("{user1000}.following"), key_slot("user1000"));
  EXPECT_EQ(key_slot("foo{bar}{zap}"), key_slot("bar"));      // the first tag only
  EXPECT_EQ(key_slot("foo{{bar}}zap"), key_slot("{bar"));     // up to the first '}'
  EXPECT_EQ(key_slot("foo{}{bar}"), crc16("foo{}{bar}") % 16384);  // an empty tag hashes everything
  EXPECT_EQ(key_slot("foo{bar"), crc16("foo{bar") % 16384);   // unclosed
}

TEST(ClusterUrl, ParsesSeedList) {
  ASSERT_TRUE(is_cluster_url("redis-cluster://a"));
  EXPECT_FALSE(is_cluster_url("redis://a"));
  auto one = parse_cluster_url("redis-cluster://10.0.0.1");
  ASSERT_TRUE(one) << one.error();
  EXPECT_EQ(*one, (std::vector<Endpoint>{{"10.0.0.1", 6379}}));
  auto many = parse_cluster_url("redis-cluster://a:7000,b,[::1]:7002/");
  ASSERT_TRUE(many) << many.error();
  EXPECT_EQ(*many, (std::vector<Endpoint>{{"a", 7000}, {"b", 6379}, {"::1", 7002}}));
  EXPECT_EQ(to_string((*many)[2]), "[::1]:7002");
}

TEST(ClusterUrl, RejectsWhatItCannotUse) {
  for (auto bad : {"redis://a:1", "redis-cluster://", "redis-cluster://a:1,", "redis-cluster://a:0",
                   "redis-cluster://a:x", "redis-cluster://a:1/0", "redis-cluster://u:p@a:1", "redis-cluster://[::1",
                   "redis-cluster://a:70000"})
    EXPECT_FALSE(parse_cluster_url(bad)) << bad;
}

TEST(ClusterSlots, MapsEverySlotToItsMaster) {
  auto map = parse_cluster_slots(
      arr({range(0, 5460, "127.0.0.1", 7000), range(10923, 16383, "127.0.0.1", 7002), range(5461, 10922, "", 7001)}),
      "10.1.1.1");
  ASSERT_TRUE(map) << map.error();
  ASSERT_EQ(map->masters.size(), 3u);
  EXPECT_EQ(*map->master_for(0), (Endpoint{"127.0.0.1", 7000}));
  EXPECT_EQ(*map->master_for(5460), (Endpoint{"127.0.0.1", 7000}));
  EXPECT_EQ(*map->master_for(5461), (Endpoint{"10.1.1.1", 7001}));  // unknown address: the node asked
  EXPECT_EQ(*map->master_for(key_slot("foo")), (Endpoint{"127.0.0.1", 7002}));
  EXPECT_EQ(*map->master_for(16383), (Endpoint{"127.0.0.1", 7002}));
}

TEST(ClusterSlots, OneMasterWithSeveralRangesIsListedOnce) {
  auto map = parse_cluster_slots(arr({range(0, 99, "h", 1), range(100, 16000, "g", 2), range(16001, 16383, "h", 1)}), "x");
  ASSERT_TRUE(map) << map.error();
  EXPECT_EQ(map->masters.size(), 2u);
  EXPECT_EQ(map->master_for(16383), map->master_for(0));
}

TEST(ClusterSlots, RejectsPartialOrMalformedMaps) {
  EXPECT_FALSE(parse_cluster_slots(arr({range(0, 16000, "h", 1)}), "x"));  // slots unserved
  EXPECT_FALSE(parse_cluster_slots(arr({}), "x"));
  EXPECT_FALSE(parse_cluster_slots(str("ERR This instance has cluster support disabled"), "x"));
  EXPECT_FALSE(parse_cluster_slots(arr({range(0, 16384, "h", 1)}), "x"));
  EXPECT_FALSE(parse_cluster_slots(arr({range(5, 4, "h", 1)}), "x"));
  EXPECT_FALSE(parse_cluster_slots(arr({range(0, 16383, "h", 0)}), "x"));
  EXPECT_FALSE(parse_cluster_slots(arr({arr({num(0), num(16383)})}), "x"));
  EXPECT_FALSE(parse_cluster_slots(arr({arr({num(0), num(16383), arr({num(1), num(1)})})}), "x"));
}

TEST(Redirect, ParsesMovedAndAsk) {
  auto moved = parse_redirect("MOVED 3999 127.0.0.1:6381");
  ASSERT_TRUE(moved);
  EXPECT_FALSE(moved->ask);
  EXPECT_EQ(moved->slot, 3999);
  EXPECT_EQ(moved->to, (Endpoint{"127.0.0.1", 6381}));
  auto ask = parse_redirect("ASK 12182 ::1:7002");
  ASSERT_TRUE(ask);
  EXPECT_TRUE(ask->ask);
  EXPECT_EQ(ask->to, (Endpoint{"::1", 7002}));
  auto no_host = parse_redirect("MOVED 1 :7000");
  ASSERT_TRUE(no_host);
  EXPECT_EQ(no_host->to, (Endpoint{"", 7000}));
}

TEST(Redirect, OtherErrorsAreNotRedirects) {
  for (auto e : {"ERR unknown command", "MOVED", "MOVED 3999", "MOVED x h:1", "MOVED 16384 h:1", "ASK 1 h", "ASK 1 h:0",
                 "CLUSTERDOWN Hash slot not served", "TRYAGAIN Multiple keys"})
    EXPECT_FALSE(parse_redirect(e)) << e;
}
