#pragma once
// The production Clock: std::chrono::system_clock.

#include <chrono>

#include "boundary/realtime/ports/clock.hpp"

namespace boundary::realtime {

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override { return std::chrono::system_clock::now(); }
};

}  // namespace boundary::realtime
