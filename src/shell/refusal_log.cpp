#include "shell/refusal_log.hpp"

#include <chrono>
#include <string>

#include <spdlog/spdlog.h>

namespace boundary::realtime::shell {
namespace {

constexpr std::int64_t window_ms = 1000;

std::int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string_view kind_name(std::size_t kind) noexcept {
  return kind == RefusalLog::api_unauthorized ? "unauthorized" : core::to_string(static_cast<core::RefusalReason>(kind));
}

std::string_view what(std::size_t kind) noexcept { return kind == RefusalLog::api_unauthorized ? "API call" : "upgrade"; }

// True for the one caller that may write a line of this window now.
bool take_turn(std::atomic<std::int64_t>& last_ms, std::int64_t now) noexcept {
  std::int64_t last = last_ms.load(std::memory_order_relaxed);
  return now - last >= window_ms && last_ms.compare_exchange_strong(last, now, std::memory_order_relaxed);
}

}  // namespace

void RefusalLog::refused(std::size_t kind, std::string_view detail) noexcept {
  if (kind >= kinds) return;
  auto& w = windows_[kind];
  if (!take_turn(w.last_ms, now_ms())) {
    w.held_back.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto more = w.held_back.exchange(0, std::memory_order_relaxed);
  try {
    if (more == 0)
      spdlog::info("{} refused ({}): {}", what(kind), kind_name(kind), detail);
    else
      spdlog::info("{} refused ({}): {} ... and {} more refused", what(kind), kind_name(kind), detail, more);
  } catch (...) {  // logging must not take a connection's handler down
  }
}

void RefusalLog::flush() noexcept {
  const auto now = now_ms();
  for (std::size_t kind = 0; kind < kinds; ++kind) {
    auto& w = windows_[kind];
    if (w.held_back.load(std::memory_order_relaxed) == 0 || !take_turn(w.last_ms, now)) continue;
    const auto more = w.held_back.exchange(0, std::memory_order_relaxed);
    if (more == 0) continue;
    try {
      spdlog::info("{} refused ({}): ... and {} more refused", what(kind), kind_name(kind), more);
    } catch (...) {
    }
  }
}

}  // namespace boundary::realtime::shell
