#pragma once
// When to fetch the JWKS again (--jwt-jwks-url). Pure: the shell passes the time in and carries
// out the answer (src/shell/adapters/jwks_source.*).
//
// - Periodic: after a good fetch, again after the document's Cache-Control max-age, bounded to
//   [min_refresh_interval, max_refresh_interval], or default_refresh_interval without one.
// - After a failed fetch (unreachable, not 200, not a usable JWKS): again after 10 s, doubling
//   with each further failure up to default_refresh_interval, so a server started while the
//   endpoint is down gets its keys soon after the endpoint comes back.
// - On demand: a token whose `kid` is not in the set asks for a fetch, which starts only when
//   none is running and none started in the last unknown_kid_floor, whatever started it. Random
//   `kid`s in forged tokens therefore cost the identity provider at most one request per 10 s.

#include <chrono>
#include <optional>
#include <string_view>

namespace boundary::realtime::core {

inline constexpr std::chrono::seconds unknown_kid_floor{10};
inline constexpr std::chrono::seconds default_refresh_interval{300};
inline constexpr std::chrono::seconds min_refresh_interval{60};
inline constexpr std::chrono::seconds max_refresh_interval{3600};
inline constexpr std::chrono::seconds first_retry_delay{10};

// What the fetcher knows about its past; times are on a monotonic clock.
struct JwksFetchState {
  bool in_flight = false;
  std::optional<std::chrono::steady_clock::time_point> last_start;  // of the latest fetch
  unsigned consecutive_failures = 0;                                // since the last good fetch
};

// A token with an unknown `kid` arrived at `now`: fetch now?
bool should_fetch_for_unknown_kid(const JwksFetchState& state, std::chrono::steady_clock::time_point now) noexcept;

// How long after a fetch ended to start the next periodic one. `max_age` is the good reply's
// Cache-Control max-age, if any; it is ignored after a failure.
std::chrono::seconds next_refresh_delay(const JwksFetchState& state, std::optional<std::chrono::seconds> max_age) noexcept;

// `max-age=N` from a Cache-Control header value (case-insensitive directive, optional quotes);
// nullopt when absent or unreadable. `no-store`/`no-cache` read as max-age 0 (then bounded up to
// min_refresh_interval by next_refresh_delay).
std::optional<std::chrono::seconds> cache_control_max_age(std::string_view header) noexcept;

}  // namespace boundary::realtime::core
