#include "core/utf8.hpp"

#include <cstdint>
#include <cstring>

namespace boundary::realtime::core {
namespace detail {

// Overlong forms, surrogates and code points above U+10FFFF are excluded by narrowing the
// allowed range of the second byte (Unicode Table 3-7).
std::size_t decode_multibyte(const unsigned char* p, std::size_t avail, char32_t& code_point) noexcept {
  const unsigned char lead = p[0];
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  std::size_t n = 0;
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3;
    if (lead == 0xE0) lo = 0xA0;  // overlong
    if (lead == 0xED) hi = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4;
    if (lead == 0xF0) lo = 0x90;  // overlong
    if (lead == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (avail < n || p[1] < lo || p[1] > hi) return 0;
  char32_t c = lead & (0xFF >> (n + 1));
  for (std::size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    c = (c << 6) | (p[i] & 0x3F);
  }
  code_point = c;
  return n;
}

// Protocol traffic is mostly ASCII JSON: skip it a word at a time.
std::size_t ascii_words(const unsigned char* p, const unsigned char* end) noexcept {
  constexpr std::uint64_t high_bits = 0x8080808080808080ULL;
  std::size_t skipped = 0;
  while (end - p >= 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, p, sizeof word);
    if ((word & high_bits) != 0) break;
    p += 8;
    skipped += 8;
  }
  return skipped;
}

}  // namespace detail

bool is_valid_utf8(std::string_view s) noexcept {
  return visit_non_ascii(s, [](char32_t) { return true; });
}

std::string_view truncate_utf8(std::string_view s, std::size_t n) noexcept {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

}  // namespace boundary::realtime::core
