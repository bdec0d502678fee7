#include "core/connection_policy.hpp"

#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {
using namespace std::chrono_literals;
const SteadyTime t0 = SteadyTime{} + 1h;
constexpr auto timeout = 60s;

TEST(IdleAction, ActiveConnectionIsLeftAlone) {
  EXPECT_EQ(idle_action({t0, false, {}}, t0 + 29s, timeout), IdleAction::none);
}

TEST(IdleAction, SilentForHalfTheTimeoutIsPingedOnce) {
  EXPECT_EQ(idle_action({t0, false, {}}, t0 + 30s, timeout), IdleAction::ping);
  EXPECT_EQ(idle_action({t0, true, t0 + 30s}, t0 + 45s, timeout), IdleAction::none);  // waiting for the pong
}

TEST(IdleAction, UnansweredPingAtTheTimeoutCloses) {
  EXPECT_EQ(idle_action({t0, true, t0 + 30s}, t0 + 60s, timeout), IdleAction::close);
}

TEST(IdleAction, APingSentLateStillGetsHalfTheTimeoutToBeAnswered) {
  // The check ran rarely: the ping left only at 59 s. Closing at 60 s would punish a live client.
  EXPECT_EQ(idle_action({t0, true, t0 + 59s}, t0 + 60s, timeout), IdleAction::none);
  EXPECT_EQ(idle_action({t0, true, t0 + 59s}, t0 + 89s, timeout), IdleAction::close);
}

TEST(FitsOutbound, QueuesUpToTheLimitInclusive) {
  EXPECT_TRUE(fits_outbound(0, 100, 100));
  EXPECT_TRUE(fits_outbound(900, 100, 1000));
  EXPECT_FALSE(fits_outbound(901, 100, 1000));
}

TEST(FitsOutbound, HugeFramesDoNotOverflowTheCheck) {
  EXPECT_FALSE(fits_outbound(10, SIZE_MAX, 1000));
  EXPECT_FALSE(fits_outbound(SIZE_MAX, 10, 1000));
}

}  // namespace
}  // namespace boundary::realtime::core
