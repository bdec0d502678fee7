#include "core/topic.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/utf8.hpp"

namespace boundary::realtime::core {
namespace {

std::vector<std::string_view> segments(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(':', start);
    out.push_back(s.substr(start, pos == std::string_view::npos ? std::string_view::npos : pos - start));
    if (pos == std::string_view::npos) return out;
    start = pos + 1;
  }
}

// True when `topic` is `<prefix><name>` or `<prefix><name>:...`; `name` receives <name>.
bool scoped(std::string_view topic, std::string_view prefix, std::string_view& name) {
  if (topic.substr(0, prefix.size()) != prefix) return false;
  auto rest = topic.substr(prefix.size());
  name = rest.substr(0, rest.find(':'));
  return true;
}

// True when `topic` is `<prefix><id>` or `<prefix><id>:...` with `id` whole, so that an id
// holding ':' (`a:b`) owns `user:a:b` (which `scoped` cuts to `a`).
bool owned_by(std::string_view topic, std::string_view prefix, std::string_view id) {
  if (id.empty() || !topic.starts_with(prefix)) return false;
  auto rest = topic.substr(prefix.size());
  return rest.starts_with(id) && (rest.size() == id.size() || rest[id.size()] == ':');
}

// Unicode White_Space and C1 controls beyond ASCII: as invisible in logs and UIs as their ASCII
// counterparts, so refused the same way.
constexpr bool is_space_or_control(char32_t c) noexcept {
  return (c >= 0x80 && c <= 0xA0) || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
         c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace

bool is_valid_topic(std::string_view topic) noexcept {
  if (topic.empty() || topic.size() > max_topic_bytes) return false;
  for (unsigned char c : topic)
    if (c <= 0x20 || c == 0x7F) return false;
  return visit_non_ascii(topic, [](char32_t c) { return !is_space_or_control(c); });
}

std::optional<SubscribePolicy> parse_subscribe_policy(std::string_view name) {
  if (name == "open") return SubscribePolicy::open;
  if (name == "claims") return SubscribePolicy::claims;
  if (name == "proxy") return SubscribePolicy::proxy;
  return std::nullopt;
}

std::optional<CommandErrorCode> check_subscribe(const Identity& who, std::string_view topic, SubscribePolicy policy) {
  if (!is_valid_topic(topic)) return CommandErrorCode::invalid_topic;
  std::string_view name;
  // Byte-exact: no case folding or Unicode normalization, so look-alike ids own nothing of
  // each other's. An id with ':' is ambiguous (`user:a:b` is `a`'s and `a:b`'s), see
  // docs/security.md "Known limits".
  if (scoped(topic, "user:", name)) {
    const bool own = name == who.user_id || owned_by(topic, "user:", who.user_id);
    return own ? std::nullopt : std::optional(CommandErrorCode::forbidden);
  }
  if (scoped(topic, "role:", name)) {
    bool held = who.has_role(name);
    for (const auto& role : who.roles) held = held || owned_by(topic, "role:", role);
    return held ? std::nullopt : std::optional(CommandErrorCode::forbidden);
  }
  if (policy != SubscribePolicy::claims) return std::nullopt;
  for (const auto& pattern : who.topics())
    if (TopicPatterns::matches(pattern, topic)) return std::nullopt;
  return CommandErrorCode::forbidden;
}

namespace {
// The one matcher, for pre-split (publish) and unsplit (claims) patterns alike.
template <class Segment>
bool match_segments(const std::vector<Segment>& pattern, const std::vector<std::string_view>& topic_segs) {
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == "**") {
      // Like `*`, `**` stands for real segments: "chat:" and "chat::x" are not under "chat:**".
      return i < topic_segs.size() &&
             std::none_of(topic_segs.begin() + static_cast<std::ptrdiff_t>(i), topic_segs.end(),
                          [](std::string_view seg) { return seg.empty(); });
    }
    if (i >= topic_segs.size()) return false;
    if (pattern[i] == "*" ? topic_segs[i].empty() : pattern[i] != topic_segs[i]) return false;
  }
  return topic_segs.size() == pattern.size();
}
}  // namespace

std::optional<std::string> TopicPatterns::invalid(std::string_view pattern) {
  if (pattern.empty()) return std::string("empty pattern");
  const auto segs = segments(pattern);
  for (std::size_t i = 0; i + 1 < segs.size(); ++i)
    if (segs[i] == "**") return "pattern '" + std::string(pattern) + "': '**' may only be the last segment";
  return std::nullopt;
}

bool TopicPatterns::matches(std::string_view pattern, std::string_view topic) noexcept {
  return match_segments(segments(pattern), segments(topic));
}

TopicPatterns::TopicPatterns(const std::vector<std::string>& patterns) {
  for (const auto& p : patterns) {
    if (auto why = invalid(p)) throw std::invalid_argument(*why);
    std::vector<std::string> segs;
    for (auto s : segments(p)) segs.emplace_back(s);
    patterns_.push_back(std::move(segs));
  }
}

bool TopicPatterns::allows(std::string_view topic) const noexcept {
  const auto topic_segs = segments(topic);
  for (const auto& pattern : patterns_)
    if (match_segments(pattern, topic_segs)) return true;
  return false;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    auto pos = s.find(',');
    auto item = s.substr(0, pos);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    if (pos == std::string_view::npos) break;
    s.remove_prefix(pos + 1);
  }
  return out;
}

}  // namespace boundary::realtime::core
