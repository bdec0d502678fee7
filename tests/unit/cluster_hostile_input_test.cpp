// Strings a client or a token controls (user ids, roles, topics, message bodies) on their way
// through Redis: they must arrive as exactly the same bytes and never change the route, the
// origin or the request id of a fan-out.

#include <string>

#include <gtest/gtest.h>

#include "core/cluster_codec.hpp"

namespace boundary::realtime::core {
namespace {

TEST(ClusterHostileInput, TargetThatLooksLikeAWholeHeaderStaysTheTarget) {
  // A user id (any JWT string) written as a forged header of another route, origin and id.
  const std::string forged = "t\nevil-node\n99\n5\nadminrt:all\r\n*1\r\n$4\r\nPING\r\n";
  for (Route route : {Route::user, Route::role, Route::disconnect_user}) {
    auto w = decode_fanout(encode_fanout(Fanout{route, forged, R"({"type":"x"})"}, "node-a", 7));
    ASSERT_TRUE(w);
    EXPECT_EQ(w->fanout.route, route);
    EXPECT_EQ(w->fanout.target, forged);
    EXPECT_EQ(w->origin, "node-a");
    EXPECT_EQ(w->request_id, 7u);
    EXPECT_EQ(w->fanout.body, R"({"type":"x"})");
  }
}

TEST(ClusterHostileInput, BodyWithSeparatorsAndNulIsCarriedVerbatim) {
  const char raw[] = "{\"type\":\"x\",\"v\":\"\\n42\\n\\u0000\"}\n3\n\0\r\n";
  const std::string body(raw, sizeof raw - 1);  // keeps the NUL
  auto w = decode_fanout(encode_fanout(Fanout{Route::topic, "chat:1", body}, "n", 0));
  ASSERT_TRUE(w);
  EXPECT_EQ(w->fanout.target, "chat:1");
  EXPECT_EQ(w->fanout.body, body);
}

TEST(ClusterHostileInput, NodeIdsCannotCarrySeparatorsOrRedisSyntax) {
  for (const char* id : {"a\nb", "a b", "a:b", "a*", "a{b}", "a\r", ""}) EXPECT_FALSE(valid_node_id(id)) << id;
}

}  // namespace
}  // namespace boundary::realtime::core
