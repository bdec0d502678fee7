#pragma once
// Token bucket for client commands: `rate` commands per second on average, bursts up to
// `burst`. Time is passed in; the bucket holds two durations and a time point, so it costs
// little per connection.
//
// Kept in integer clock ticks (the GCRA form of a token bucket) rather than fractional tokens:
// floating-point refills drift (ten refills of 0.1 token in double are not one token, so a
// 100/s limit checked every millisecond granted 91/s; float rounds 0.999999999 up to a whole
// token and grants early).

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace boundary::realtime::core {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // rate 0 disables limiting; a burst below 1 refuses everything.
  TokenBucket(double rate_per_second, double burst)
      : interval_(rate_per_second > 0 ? std::max(to_ticks(1.0 / rate_per_second), Clock::duration(1))
                                      : Clock::duration::zero()),
        tolerance_(to_ticks((burst - 1) * std::chrono::duration<double>(interval_).count())) {}

  bool try_take(Clock::time_point now) noexcept {
    if (interval_ == Clock::duration::zero()) return true;
    const auto full_at = std::max(full_at_, now);
    // Tokens available now = burst - (full_at - now) / interval: at least one is needed.
    if (full_at - now > tolerance_) return false;
    full_at_ = full_at + interval_;
    return true;
  }

 private:
  // Clamped to ~31 years so absurd configurations cannot overflow the tick count.
  static Clock::duration to_ticks(double seconds) noexcept {
    seconds = std::clamp(seconds, -1e9, 1e9);
    return std::chrono::round<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  Clock::duration interval_;   // time that earns one command; zero = unlimited
  Clock::duration tolerance_;  // (burst - 1) intervals: how far full_at_ may run ahead of now
  Clock::time_point full_at_ = Clock::time_point::min();  // when the bucket is full again
};

}  // namespace boundary::realtime::core
