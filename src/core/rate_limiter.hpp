#pragma once
// Token bucket for client commands: `rate` commands per second on average, bursts up to
// `burst`. Time is passed in; the bucket holds two numbers, so it costs nothing per connection.

#include <chrono>
#include <cstdint>

namespace boundary::realtime::core {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  // rate 0 disables limiting.
  TokenBucket(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst), tokens_(burst) {}

  bool try_take(Clock::time_point now) noexcept {
    if (rate_ <= 0) return true;
    if (last_ != Clock::time_point{}) {
      const double elapsed = std::chrono::duration<double>(now - last_).count();
      tokens_ = tokens_ + elapsed * rate_ > burst_ ? burst_ : tokens_ + elapsed * rate_;
    }
    last_ = now;
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

 private:
  float rate_;
  float burst_;
  float tokens_;
  Clock::time_point last_{};
};

}  // namespace boundary::realtime::core
