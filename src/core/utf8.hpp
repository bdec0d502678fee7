#pragma once
// UTF-8, the one validator: text frames, close reasons, topic names. Pure.
// Valid means Unicode's well-formed UTF-8 (Table 3-7): no overlong forms, no surrogates, nothing
// above U+10FFFF.

#include <string_view>

namespace boundary::realtime::core {

bool is_valid_utf8(std::string_view s) noexcept;

// Validates `s` and calls `visit(code_point)` for each code point at or above U+0080 (ASCII is
// skipped a word at a time). False when `s` is not valid UTF-8 or when `visit` returns false.
template <class Visit>
bool visit_non_ascii(std::string_view s, Visit&& visit) noexcept;

// `s` cut to at most `n` bytes without splitting a sequence.
std::string_view truncate_utf8(std::string_view s, std::size_t n) noexcept;

namespace detail {
// Length of the valid multi-byte sequence at `p` (2 to 4) and its code point, or 0.
std::size_t decode_multibyte(const unsigned char* p, std::size_t avail, char32_t& code_point) noexcept;
// Bytes of ASCII at the front of [p, end), in whole 8-byte words.
std::size_t ascii_words(const unsigned char* p, const unsigned char* end) noexcept;
}  // namespace detail

template <class Visit>
bool visit_non_ascii(std::string_view s, Visit&& visit) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* const end = p + s.size();
  while (p != end) {
    p += detail::ascii_words(p, end);
    if (p == end) break;
    if (*p < 0x80) {
      ++p;
      continue;
    }
    char32_t c = 0;
    const std::size_t n = detail::decode_multibyte(p, static_cast<std::size_t>(end - p), c);
    if (n == 0 || !visit(c)) return false;
    p += n;
  }
  return true;
}

}  // namespace boundary::realtime::core
