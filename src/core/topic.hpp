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

// --subscribe-policy. `open`: the built-in rule alone. `claims`: the built-in rule, and a topic
// outside the connection's own `user:<id>` / `role:<r>` topics must match one of its token's
// `topics` patterns. `proxy`: the built-in rule, then the backend at --subscribe-proxy (the
// shell asks it; see subscribe_proxy.hpp).
enum class SubscribePolicy { open, claims, proxy };
std::optional<SubscribePolicy> parse_subscribe_policy(std::string_view name);

// Built-in rule: `user:<id>` / `user:<id>:...` only for that user, `role:<r>` / `role:<r>:...`
// only for holders of role r, every other topic for everyone (under `open` and `proxy`) or for
// connections whose `topics` claim matches it (under `claims`). Returns the refusal, if any.
std::optional<CommandErrorCode> check_subscribe(const Identity& who, std::string_view topic,
                                                SubscribePolicy policy = SubscribePolicy::open);

// Topic patterns (--publish-patterns, the JWT `topics` claim): `:`-separated segments, `*`
// matches exactly one segment, `**` (last segment only) matches one or more remaining segments;
// wildcards never match an empty segment. No pattern = nothing allowed.
class TopicPatterns {
 public:
  TopicPatterns() = default;
  // Throws std::invalid_argument for an empty pattern or `**` anywhere but last.
  explicit TopicPatterns(const std::vector<std::string>& patterns);
  bool allows(std::string_view topic) const noexcept;
  bool empty() const noexcept { return patterns_.empty(); }

  // Why `pattern` is not a pattern (empty, `**` before the last segment), or nullopt.
  static std::optional<std::string> invalid(std::string_view pattern);
  // One pattern, unsplit (claims are matched where they are kept, without a compiled copy per
  // connection). `pattern` must be valid.
  static bool matches(std::string_view pattern, std::string_view topic) noexcept;

 private:
  std::vector<std::vector<std::string>> patterns_;  // split into segments once
};

std::vector<std::string> split_list(std::string_view comma_separated);

// `presence-join` and `presence-leave` are the server's own events on a topic (docs/presence.md):
// nobody may publish a message of these types to a topic, or subscribers could be told of users
// who never came.
inline bool is_reserved_topic_type(std::string_view type) noexcept {
  return type == "presence-join" || type == "presence-leave";
}
inline constexpr std::string_view reserved_type_refusal = "message types presence-join and presence-leave are the server's";

}  // namespace boundary::realtime::core
