#pragma once
// Port: the wall clock. Read at the edges (token `exp`/`nbf`, message timestamps) and passed into
// the core as a value, so everything time-dependent can be tested with ManualClock (testing/).
// Guarantees of every adapter: now() never blocks and never throws, and is safe to call from any
// thread.

#include <chrono>

namespace boundary::realtime {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

}  // namespace boundary::realtime
