#pragma once
// Test adapter for the Clock port: time moves only when the test says so. Starts at
// 2025-01-01T12:00:00.000Z so timestamps in expectations are readable and stable.
// Not thread-safe: set() and advance() belong to the test's own thread.

#include <chrono>

#include "boundary/realtime/ports/clock.hpp"

namespace boundary::realtime::testing {

class ManualClock final : public Clock {
 public:
  using time_point = std::chrono::system_clock::time_point;

  static time_point default_start() {
    using namespace std::chrono;
    return sys_days{year{2025} / January / 1} + hours{12};
  }

  explicit ManualClock(time_point start = default_start()) : now_(start) {}

  time_point now() const override { return now_; }
  void set(time_point t) { now_ = t; }
  void advance(std::chrono::system_clock::duration d) { now_ += d; }

 private:
  time_point now_;
};

}  // namespace boundary::realtime::testing
