#pragma once
// Topic names, the default subscribe policy and client publish patterns. Pure.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/identity.hpp"

namespace boundary::realtime::core {

inline constexpr std::size_t max_topic_bytes = 256;

// 1-256 bytes of valid UTF-8 without whitespace or control characters: ASCII (bytes <= 0x20 and
// 0x7F) and beyond (C1 controls, U+00A0, U+2028 and the other Unicode White_Space characters).
bool is_valid_topic(std::string_view topic) noexcept;

// Default policy: `user:<id>` / `user:<id>:...` only for that user, `role:<r>` / `role:<r>:...`
// only for holders of role r, every other topic for everyone. Returns the refusal, if any.
std::optional<CommandErrorCode> check_subscribe(const Identity& who, std::string_view topic);

// Client publish patterns: `:`-separated segments, `*` matches exactly one segment, `**` (last
// segment only) matches one or more remaining segments; wildcards never match an empty segment.
// No pattern = client publish forbidden.
class PublishPatterns {
 public:
  PublishPatterns() = default;
  // Throws std::invalid_argument for an empty pattern or `**` anywhere but last.
  explicit PublishPatterns(const std::vector<std::string>& patterns);
  bool allows(std::string_view topic) const noexcept;
  bool empty() const noexcept { return patterns_.empty(); }

 private:
  std::vector<std::vector<std::string>> patterns_;  // split into segments once
};

std::vector<std::string> split_list(std::string_view comma_separated);

}  // namespace boundary::realtime::core
