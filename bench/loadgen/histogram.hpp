#pragma once
// Latency histogram in nanoseconds: log-linear buckets (exact below 256 ns, then 128 buckets
// per power of two, so every reported value is within 0.4% of a recorded one). Recording is
// O(1) with no allocation, which matters at millions of deliveries per run; a sample vector
// would cost 16 MB per 2M deliveries and a sort at the end.

#include <algorithm>
#include <array>
#include <bit>
#include <cstdint>

namespace loadgen {

class Histogram {
 public:
  void record(std::int64_t ns) noexcept {
    if (ns < 0) {  // clocks are shared and monotonic, so this means a corrupt "t"
      ++negative_;
      return;
    }
    const auto v = static_cast<std::uint64_t>(ns);
    ++counts_[index(v)];
    ++count_;
    max_ = std::max(max_, v);
    min_ = std::min(min_, v);
    sum_ += static_cast<double>(v);
  }

  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t negative() const noexcept { return negative_; }
  std::uint64_t max() const noexcept { return count_ ? max_ : 0; }
  std::uint64_t min() const noexcept { return count_ ? min_ : 0; }
  double mean() const noexcept { return count_ ? sum_ / static_cast<double>(count_) : 0.0; }

  // The value at quantile q (0..1]: the midpoint of the bucket holding the ceil(q*count)-th
  // smallest sample, clamped to the exact maximum.
  std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_));
    if (rank < 1) rank = 1;
    if (static_cast<double>(rank) < q * static_cast<double>(count_)) ++rank;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(midpoint(i), max_);
    }
    return max_;
  }

 private:
  static constexpr std::size_t linear = 256;
  static constexpr std::size_t per_octave = 128;
  static constexpr std::size_t buckets = linear + 56 * per_octave;

  static std::size_t index(std::uint64_t v) noexcept {
    if (v < linear) return static_cast<std::size_t>(v);
    const int shift = std::bit_width(v) - 8;  // >= 1; keeps 8 significant bits
    const auto mantissa = static_cast<std::size_t>(v >> shift);  // 128..255
    return linear + static_cast<std::size_t>(shift - 1) * per_octave + (mantissa - per_octave);
  }

  static std::uint64_t midpoint(std::size_t i) noexcept {
    if (i < linear) return i;
    const auto shift = static_cast<int>((i - linear) / per_octave) + 1;
    const std::uint64_t mantissa = (i - linear) % per_octave + per_octave;
    const std::uint64_t low = mantissa << shift;
    return low + ((std::uint64_t{1} << shift) >> 1);
  }

  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t negative_ = 0;
  std::uint64_t max_ = 0;
  std::uint64_t min_ = UINT64_MAX;
  double sum_ = 0;
};

}  // namespace loadgen
