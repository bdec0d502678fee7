#pragma once
// Small parsing helpers shared by the core's parsers.

#include <charconv>
#include <optional>
#include <string_view>

#include <boost/json/value.hpp>

namespace boundary::realtime::core {

// The whole of `s` as a decimal number of type T; nullopt for empty text, a sign where T has
// none, trailing bytes or overflow.
template <class T>
std::optional<T> parse_number(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// False when a number anywhere in `v` is not finite. Boost.JSON reads a number past double's
// range (1e400) as infinity, and serializing it would write `Infinity`, which is not JSON: a
// message holding one must be refused before it is framed for anybody. Nesting is bounded by
// the parser (depth 32), so the recursion is too.
bool all_numbers_finite(const boost::json::value& v);

enum class JsonProblem { none, invalid, duplicate_key };

struct StrictJson {
  boost::json::value value;  // null unless problem == none
  JsonProblem problem = JsonProblem::none;
};

// Strict RFC 8259 JSON (no comments or trailing commas, UTF-8 checked, depth at most 32), and
// no object with the same key twice (RFC 8259 §4 leaves the meaning open; parsers disagree on
// which one wins, so a text that holds two is refused rather than guessed at). Every JSON text
// that comes from outside (tokens, client commands, API bodies, proxy replies) goes through it.
StrictJson parse_strict_json(std::string_view text);

}  // namespace boundary::realtime::core
