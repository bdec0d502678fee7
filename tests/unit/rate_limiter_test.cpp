#include "core/rate_limiter.hpp"

#include <chrono>

#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {
using namespace std::chrono_literals;
using Clock = TokenBucketPolicy::Clock;

// One bucket as the server keeps it: a shared policy and the connection's time point.
struct TokenBucket {
  TokenBucket(double rate_per_second, double burst) : policy(rate_per_second, burst) {}
  bool try_take(Clock::time_point now) { return policy.try_take(full_at, now); }
  TokenBucketPolicy policy;
  Clock::time_point full_at = Clock::time_point::min();
};

// An arbitrary, realistic steady-clock reading.
const Clock::time_point t0 = Clock::time_point{} + 3600s;

int takes(TokenBucket& bucket, Clock::time_point now, int attempts) {
  int granted = 0;
  for (int i = 0; i < attempts; ++i) granted += bucket.try_take(now) ? 1 : 0;
  return granted;
}

TEST(TokenBucket, BurstThenRefusal) {
  TokenBucket bucket(1, 3);
  EXPECT_TRUE(bucket.try_take(t0));
  EXPECT_TRUE(bucket.try_take(t0));
  EXPECT_TRUE(bucket.try_take(t0));
  EXPECT_FALSE(bucket.try_take(t0));
  EXPECT_FALSE(bucket.try_take(t0));
}

TEST(TokenBucket, RefillsAtTheRate) {
  TokenBucket bucket(2, 2);  // one token every 500 ms
  ASSERT_EQ(takes(bucket, t0, 2), 2);
  EXPECT_FALSE(bucket.try_take(t0 + 499ms));
  EXPECT_TRUE(bucket.try_take(t0 + 500ms));
  EXPECT_FALSE(bucket.try_take(t0 + 500ms));
  EXPECT_EQ(takes(bucket, t0 + 1500ms, 5), 2);
}

TEST(TokenBucket, RefillIsCappedAtTheBurst) {
  TokenBucket bucket(100, 5);
  ASSERT_EQ(takes(bucket, t0, 5), 5);
  EXPECT_EQ(takes(bucket, t0 + 1h, 50), 5);
}

TEST(TokenBucket, RefusedAttemptsDoNotLoseAccruedTime) {
  TokenBucket bucket(10, 1);  // one token every 100 ms
  ASSERT_TRUE(bucket.try_take(t0));
  EXPECT_FALSE(bucket.try_take(t0 + 30ms));
  EXPECT_FALSE(bucket.try_take(t0 + 70ms));
  EXPECT_TRUE(bucket.try_take(t0 + 100ms));
}

TEST(TokenBucket, FractionalRefillIsExactEnough) {
  // Three tokens a second: two nanoseconds short of one third of a second the bucket holds
  // 0.999999996 of a token, which is not one (float storage rounded it up and granted).
  TokenBucket bucket(3, 1);
  ASSERT_TRUE(bucket.try_take(t0));
  EXPECT_FALSE(bucket.try_take(t0 + 333'333'332ns));
  EXPECT_TRUE(bucket.try_take(t0 + 333'333'334ns));
}

TEST(TokenBucket, SustainedRateMatchesConfiguration) {
  TokenBucket bucket(100, 1);
  int granted = 0;
  for (int ms = 0; ms < 10'000; ++ms) granted += bucket.try_take(t0 + std::chrono::milliseconds(ms)) ? 1 : 0;
  EXPECT_EQ(granted, 1000);  // 10 s at 100/s
}

TEST(TokenBucket, ServerDefaultsAllow200AtOnceThen100PerSecond) {
  TokenBucket bucket(100, 200);
  EXPECT_EQ(takes(bucket, t0, 250), 200);
  EXPECT_FALSE(bucket.try_take(t0 + 9ms));
  EXPECT_TRUE(bucket.try_take(t0 + 10ms));
  EXPECT_EQ(takes(bucket, t0 + 1010ms, 250), 100);
}

TEST(TokenBucket, ZeroRateMeansUnlimited) {
  TokenBucket bucket(0, 0);
  EXPECT_EQ(takes(bucket, t0, 10'000), 10'000);
}

TEST(TokenBucket, TimeStartingAtTheClockEpochStillRefills) {
  const Clock::time_point epoch{};
  TokenBucket bucket(1, 1);
  ASSERT_TRUE(bucket.try_take(epoch));
  EXPECT_FALSE(bucket.try_take(epoch));
  EXPECT_TRUE(bucket.try_take(epoch + 1s));
}

TEST(TokenBucket, ClockGoingBackwardsGrantsNothing) {
  TokenBucket bucket(1, 2);
  ASSERT_EQ(takes(bucket, t0, 2), 2);
  EXPECT_FALSE(bucket.try_take(t0 - 10s));
  EXPECT_FALSE(bucket.try_take(t0 + 500ms));
  EXPECT_TRUE(bucket.try_take(t0 + 1s));
}

}  // namespace
}  // namespace boundary::realtime::core
