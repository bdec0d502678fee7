#pragma once
// Token bucket for client commands: `rate` commands per second on average, bursts up to
// `burst`. Time is passed in; per bucket the state is one time point (the policy, two
// durations, can be shared).
//
// Kept in integer clock ticks (the GCRA form of a token bucket) rather than fractional tokens:
// floating-point refills drift (ten refills of 0.1 token in double are not one token, so a
// 100/s limit checked every millisecond granted 91/s; float rounds 0.999999999 up to a whole
// token and grants early).

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace boundary::realtime::core {

// The rate and burst, shared by every bucket with the same limit. A bucket's own state is
// one time point, so a server keeps one policy and a time point per connection.
class TokenBucketPolicy {
 public:
  using Clock = std::chrono::steady_clock;

  // rate 0 disables limiting; a burst below 1 refuses everything.
  TokenBucketPolicy(double rate_per_second, double burst)
      : interval_(rate_per_second > 0 ? std::max(to_ticks(1.0 / rate_per_second), Clock::duration(1))
                                      : Clock::duration::zero()),
        tolerance_(to_ticks((burst - 1) * std::chrono::duration<double>(interval_).count())) {}

  // `full_at`: the bucket's state, when it is full again (start with time_point::min()).
  bool try_take(Clock::time_point& full_at, Clock::time_point now) const noexcept {
    if (interval_ == Clock::duration::zero()) return true;
    const auto at = std::max(full_at, now);
    // Tokens available now = burst - (at - now) / interval: at least one is needed.
    if (at - now > tolerance_) return false;
    full_at = at + interval_;
    return true;
  }

 private:
  // Clamped to ~31 years so absurd configurations cannot overflow the tick count.
  static Clock::duration to_ticks(double seconds) noexcept {
    seconds = std::clamp(seconds, -1e9, 1e9);
    return std::chrono::round<Clock::duration>(std::chrono::duration<double>(seconds));
  }

  Clock::duration interval_;   // time that earns one command; zero = unlimited
  Clock::duration tolerance_;  // (burst - 1) intervals: how far full_at may run ahead of now
};

}  // namespace boundary::realtime::core
