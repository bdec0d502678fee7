#include "core/jwks_refresh.hpp"

#include <algorithm>
#include <cstdint>

namespace boundary::realtime::core {

bool should_fetch_for_unknown_kid(const JwksFetchState& state, std::chrono::steady_clock::time_point now) noexcept {
  if (state.in_flight) return false;
  return !state.last_start || now - *state.last_start >= unknown_kid_floor;
}

std::chrono::seconds next_refresh_delay(const JwksFetchState& state, std::optional<std::chrono::seconds> max_age) noexcept {
  if (state.consecutive_failures > 0) {
    // 10, 20, 40, ... s; the shift is bounded before it could overflow.
    const unsigned doublings = std::min(state.consecutive_failures - 1, 16u);
    const auto delay = first_retry_delay * (std::int64_t{1} << doublings);
    return std::min<std::chrono::seconds>(delay, default_refresh_interval);
  }
  if (!max_age) return default_refresh_interval;
  return std::clamp<std::chrono::seconds>(*max_age, min_refresh_interval, max_refresh_interval);
}

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::chrono::seconds> cache_control_max_age(std::string_view header) noexcept {
  std::optional<std::chrono::seconds> out;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const auto directive = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    const auto eq = directive.find('=');
    const auto name = trim(directive.substr(0, eq));
    if (iequals(name, "no-store") || iequals(name, "no-cache")) return std::chrono::seconds(0);
    if (eq == std::string_view::npos || !iequals(name, "max-age")) continue;
    auto value = trim(directive.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (value.empty()) continue;
    value = value.substr(0, 18);  // 18 digits fit an int64 and are far past the upper bound anyway
    std::int64_t n = 0;
    bool digits = true;
    for (char c : value) {
      if (c < '0' || c > '9') digits = false;
      else n = n * 10 + (c - '0');
    }
    if (digits) out = std::chrono::seconds(n);
  }
  return out;
}

}  // namespace boundary::realtime::core
