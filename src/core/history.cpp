#include "core/history.hpp"

#include <charconv>

namespace boundary::realtime::core {
namespace {

std::optional<std::uint64_t> parse_count(std::string_view s) {
  std::uint64_t v = 0;
  if (s.empty()) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

}  // namespace

boost::system::result<std::vector<HistoryRule>, std::string> parse_history_rules(const std::vector<std::string>& specs) {
  std::vector<HistoryRule> rules;
  for (const auto& spec : specs) {
    auto bad = [&spec](std::string_view why) { return "--history: \"" + spec + "\": " + std::string(why); };
    const auto eq = spec.rfind('=');
    if (eq == std::string::npos) return bad("expected PATTERN=SIZE[/TTL]");
    HistoryRule r;
    r.pattern = spec.substr(0, eq);
    if (auto why = TopicPatterns::invalid(r.pattern)) return bad(*why);
    std::string_view rest = std::string_view(spec).substr(eq + 1);
    std::string_view size = rest, ttl;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
      size = rest.substr(0, slash);
      ttl = rest.substr(slash + 1);
    }
    auto n = parse_count(size);
    if (!n || *n == 0 || *n > max_history_size)
      return bad("SIZE must be a whole number from 1 to " + std::to_string(max_history_size));
    r.size = static_cast<std::size_t>(*n);
    if (size.size() != rest.size()) {
      auto t = parse_count(ttl);
      if (!t || *t == 0 || *t > static_cast<std::uint64_t>(max_history_ttl.count()))
        return bad("TTL must be a whole number of seconds from 1 to " + std::to_string(max_history_ttl.count()));
      r.ttl = std::chrono::seconds(*t);
    }
    rules.push_back(std::move(r));
  }
  return rules;
}

const HistoryRule* HistoryRules::find(std::string_view topic) const noexcept {
  for (const auto& r : rules_)
    if (TopicPatterns::matches(r.pattern, topic)) return &r;
  return nullptr;
}

Recovery decide_recovery(const StreamState& stream, const RecoverFrom& from) noexcept {
  if (from.epoch != stream.epoch || from.offset > stream.last) return {};
  if (from.offset == stream.last) return {true, {}};
  // Something after the client's offset exists: its first message must still be kept.
  if (stream.first_kept == 0 || stream.first_kept > from.offset + 1) return {};
  return {true, {from.offset + 1, stream.last}};
}

OffsetRange history_range(const StreamState& stream, std::uint64_t since, std::size_t limit) noexcept {
  if (stream.first_kept == 0 || limit == 0 || since >= stream.last) return {};
  const std::uint64_t from = std::max(since + 1, stream.first_kept);
  const std::uint64_t to = std::min<std::uint64_t>(stream.last, from + limit - 1);
  return {from, to};
}

HistoryBook::Stream& HistoryBook::stream_for(std::string_view topic, const HistoryRule& rule,
                                             HistoryClock::time_point now) {
  auto it = streams_.find(topic);
  if (it != streams_.end()) {
    if (trim_expired(it->second, now)) {
      ++expirations_;
      drop(it);
      it = streams_.end();
    }
  }
  if (it == streams_.end()) {
    it = streams_.try_emplace(std::string(topic)).first;
    Stream& s = it->second;
    s.epoch = new_epoch_();
    s.lru = lru_.insert(lru_.end(), it->first);
    bytes_ += it->first.size() + s.epoch.size() + history_stream_overhead;
  }
  // The rule is the one matching now (a stream keeps its topic's rule; rules do not change at
  // run time).
  it->second.size = rule.size;
  it->second.ttl = rule.ttl;
  it->second.alive_until = now + rule.ttl;
  lru_.splice(lru_.end(), lru_, it->second.lru);
  return it->second;
}

HistoryBook::Appended HistoryBook::commit(Stream& s, std::uint64_t offset, Message m, HistoryClock::time_point now) {
  s.last = offset;
  bytes_ += cost(m);
  ++messages_;
  s.kept.push_back(Kept{std::move(m), now + s.ttl});
  while (s.kept.size() > s.size) pop_front(s);
  // Over the cap: the least recently published streams go first; this one (now the most
  // recent) only when it is alone, and then it keeps its newest message.
  while (bytes_ > max_bytes_ && lru_.size() > 1) {
    ++evictions_;
    drop(streams_.find(lru_.front()));
  }
  while (bytes_ > max_bytes_ && s.kept.size() > 1) pop_front(s);
  return {offset, &s.kept.back().message};
}

void HistoryBook::pop_front(Stream& s) {
  bytes_ -= cost(s.kept.front().message);
  --messages_;
  s.kept.pop_front();
}

void HistoryBook::drop(Map::iterator it) {
  Stream& s = it->second;
  while (!s.kept.empty()) pop_front(s);
  bytes_ -= it->first.size() + s.epoch.size() + history_stream_overhead;
  lru_.erase(s.lru);
  streams_.erase(it);
}

bool HistoryBook::trim_expired(Stream& s, HistoryClock::time_point now) {
  while (!s.kept.empty() && s.kept.front().expires <= now) pop_front(s);
  return s.kept.empty() && s.alive_until <= now;
}

StreamState HistoryBook::state_of(const Stream& s) noexcept {
  return StreamState{s.kept.empty() ? 0 : s.last - s.kept.size() + 1, s.last, s.epoch};
}

StreamState HistoryBook::open(std::string_view topic, const HistoryRule& rule, HistoryClock::time_point now) {
  return state_of(stream_for(topic, rule, now));
}

std::optional<StreamState> HistoryBook::state(std::string_view topic, HistoryClock::time_point now) {
  auto it = streams_.find(topic);
  if (it == streams_.end()) return std::nullopt;
  if (trim_expired(it->second, now)) {
    ++expirations_;
    drop(it);
    return std::nullopt;
  }
  return state_of(it->second);
}

std::vector<Message> HistoryBook::messages(std::string_view topic, OffsetRange range) const {
  std::vector<Message> out;
  auto it = streams_.find(topic);
  if (it == streams_.end() || range.empty()) return out;
  const Stream& s = it->second;
  const std::uint64_t first = s.last - s.kept.size() + 1;
  if (range.from < first || range.to > s.last) return out;
  out.reserve(range.size());
  for (std::uint64_t o = range.from; o <= range.to; ++o) out.push_back(s.kept[o - first].message);
  return out;
}

std::size_t HistoryBook::expire(HistoryClock::time_point now) {
  std::size_t dropped = 0;
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (trim_expired(it->second, now)) {
      auto next = std::next(it);
      drop(it);
      ++expirations_;
      ++dropped;
      it = next;
    } else {
      ++it;
    }
  }
  return dropped;
}

}  // namespace boundary::realtime::core
