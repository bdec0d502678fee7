// libFuzzer target for history (--history): the operator's specs, the GET /api/history query,
// and a run of operations on the book of streams driven by the input. Besides "never crash":
// a rule taken is within its bounds; a query taken has a topic and a limit of 1..1000; within an
// epoch a topic's offsets are 1, 2, 3, ... without gaps; the byte cap holds (only a stream alone
// over it may keep its newest message); a recovery decision replays exactly the messages after
// the client's offset, all of them kept, and only in the stream's epoch; a history read stays
// within the kept messages and its limit.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/history.hpp"
#include "core/http_rules.hpp"

namespace {

using namespace boundary::realtime;
using namespace std::chrono_literals;

// Names the invariant that failed, so that a reproducer explains itself.
#define check(invariant)                                                            \
  do {                                                                              \
    if (!(invariant)) {                                                             \
      std::fprintf(stderr, "fuzz_history: %s (line %d)\n", #invariant, __LINE__); \
      __builtin_trap();                                                             \
    }                                                                               \
  } while (false)

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto comma = s.find(',', start);
    out.emplace_back(s.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

void rules(std::string_view input) {
  auto parsed = core::parse_history_rules(split(input));
  if (!parsed) {
    check(!parsed.error().empty());
    return;
  }
  for (const auto& r : *parsed) {
    check(!r.pattern.empty());
    check(r.size >= 1 && r.size <= core::max_history_size);
    check(r.ttl >= 1s && r.ttl <= core::max_history_ttl);
  }
}

void query(std::string_view input) {
  auto parsed = core::parse_history_query(input);
  if (!parsed) {
    check(parsed.error().status == 400);
    return;
  }
  check(!parsed->topic.empty());
  check(parsed->limit >= 1 && parsed->limit <= 1000);
}

struct Reader {
  std::string_view in;
  std::uint8_t byte() {
    if (in.empty()) return 0;
    const auto b = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    return b;
  }
};

// Operations on a small book: 4 topics, rules of 1..8 messages and 1..8 s, a cap of a few
// messages' worth, time moving forward by the input.
void book(std::string_view input) {
  Reader r{input};
  int epochs = 0;
  const std::size_t cap = 600 + 50 * (r.byte() % 16);
  core::HistoryBook b(cap, [&epochs] { return "e" + std::to_string(++epochs); });
  const std::string topics[] = {"a", "b", "c", "d"};
  // Per topic: the epoch and last offset seen, to check there is no gap within an epoch.
  std::map<std::string, std::pair<std::string, std::uint64_t>> seen;
  auto now = core::HistoryClock::time_point{} + 1h;
  while (!r.in.empty()) {
    const std::uint8_t op = r.byte();
    const std::string& topic = topics[op & 3];
    const core::HistoryRule rule{"**", static_cast<std::size_t>(1 + (op >> 2 & 7)), std::chrono::seconds(1 + (op >> 5))};
    switch (r.byte() % 5) {
      case 0:
      case 1: {
        const std::size_t pad = r.byte();
        auto appended = b.append(topic, rule, now, [&](std::uint64_t offset) {
          return Message::from_json(R"({"o":)" + std::to_string(offset) + R"(,"p":")" + std::string(pad, 'x') + "\"}");
        });
        const auto state = b.state(topic, now);
        check(state.has_value() && state->last == appended.offset);
        auto& [epoch, last] = seen[topic];
        if (epoch == state->epoch) check(appended.offset == last + 1);
        else check(appended.offset == 1);
        epoch = std::string(state->epoch);
        last = appended.offset;
        break;
      }
      case 2: now += std::chrono::milliseconds(250 * (r.byte() % 40)); break;
      case 3: (void)b.expire(now); break;
      case 4: {
        const auto state = b.state(topic, now);
        if (!state) break;
        check(state->first_kept == 0 || (state->first_kept >= 1 && state->first_kept <= state->last));
        const std::uint64_t offset = r.byte() % 12;
        const bool same_epoch = r.byte() & 1;
        const core::RecoverFrom from{offset, same_epoch ? std::string(state->epoch) : std::string("other")};
        const auto rec = core::decide_recovery(*state, from);
        if (rec.recovered) {
          check(from.epoch == state->epoch && offset <= state->last);
          // At the last offset there is nothing to replay.
          check(offset == state->last ? rec.replay.empty()
                                      : rec.replay.from == offset + 1 && rec.replay.to == state->last);
          if (!rec.replay.empty()) {
            check(state->first_kept != 0 && state->first_kept <= rec.replay.from);
            check(b.messages(topic, rec.replay).size() == rec.replay.size());
          }
        } else {
          check(rec.replay.empty());
        }
        const std::size_t limit = 1 + r.byte() % 10;
        const auto range = core::history_range(*state, offset, limit);
        check(range.size() <= limit);
        if (!range.empty()) {
          check(range.from > offset && range.from >= state->first_kept && range.to <= state->last);
          check(b.messages(topic, range).size() == range.size());
        }
        break;
      }
    }
    // The cap holds, except for one stream alone over it, which keeps only its newest message.
    check(b.bytes() <= cap || (b.stream_count() == 1 && b.message_count() == 1));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: rules(input); break;
    case 1: query(input); break;
    default: book(input); break;
  }
  return 0;
}
