#pragma once
// Logging of refused requests (upgrades and API calls), at info, rate-limited: at most one line a
// second per kind, so a scan, a misconfigured page retrying or a flood at --max-connections cannot
// flood the log. Lines held back are counted and reported ("... and K more refused") on the next
// line of that kind, or by flush() from a loop's sweep once the second is over.
// Callers pass what may be logged: never a token or key, a path without its query string.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/admission.hpp"

namespace boundary::realtime::shell {

class RefusalLog {
 public:
  // An upgrade refusal's kind is its core::RefusalReason; one more for 401s on /api/*.
  static constexpr std::size_t api_unauthorized = core::refusal_reason_count;
  static constexpr std::size_t kinds = core::refusal_reason_count + 1;

  // Logs "<what> refused (<reason>): <detail>" unless a line of this kind went out within the
  // last second. Safe from any thread.
  void refused(std::size_t kind, std::string_view detail) noexcept;
  // Reports lines held back in kinds whose second is over. Called about once a second.
  void flush() noexcept;

 private:
  struct Window {
    std::atomic<std::int64_t> last_ms{-1000000};  // when the last line of this kind went out
    std::atomic<std::uint64_t> held_back{0};
  };
  std::array<Window, kinds> windows_;
};

}  // namespace boundary::realtime::shell
