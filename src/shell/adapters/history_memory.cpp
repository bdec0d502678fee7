#include "shell/adapters/history_memory.hpp"

#include "shell/adapters/random.hpp"

namespace boundary::realtime::shell {

HistoryMemory::HistoryMemory(core::HistoryRules rules, std::size_t max_bytes, Now now, NewEpoch new_epoch)
    : rules_(std::move(rules)),
      now_(now ? std::move(now) : Now([] { return core::HistoryClock::now(); })),
      book_(max_bytes, new_epoch ? std::move(new_epoch) : NewEpoch([] { return random_hex(8); })) {}

void HistoryMemory::append(std::string_view topic, const Encode& encode, const Publish& publish) {
  const core::HistoryRule* rule = rules_.find(topic);
  if (!rule) {
    publish(encode(0), 0);
    return;
  }
  std::lock_guard lock(mutex_);
  auto a = book_.append(topic, *rule, now_(), encode);
  publish(*a.message, a.offset);
}

void HistoryMemory::attach(std::string_view topic, const std::optional<HistoryRecover>& recover, const Join& join) {
  HistorySnapshot snap;
  const core::HistoryRule* rule = rules_.find(topic);
  std::lock_guard lock(mutex_);
  if (rule) {
    const auto state = book_.open(topic, *rule, now_());
    snap.last = state.last;
    snap.epoch = std::string(state.epoch);
    if (recover) {
      auto r = core::decide_recovery(state, core::RecoverFrom{recover->offset, recover->epoch});
      snap.recovered = r.recovered;
      snap.messages = book_.messages(topic, r.replay);
    }
  }
  join(snap);
}

void HistoryMemory::read(std::string_view topic, std::uint64_t since, std::size_t limit, Done done) {
  HistorySnapshot snap;
  {
    std::lock_guard lock(mutex_);
    if (auto state = book_.state(topic, now_())) {
      snap.last = state->last;
      snap.epoch = std::string(state->epoch);
      snap.messages = book_.messages(topic, core::history_range(*state, since, limit));
    }
  }
  done(std::move(snap));
}

void HistoryMemory::expire() {
  std::lock_guard lock(mutex_);
  book_.expire(now_());
}

HistoryUsage HistoryMemory::usage() const {
  std::lock_guard lock(mutex_);
  return {book_.stream_count(), book_.message_count(), book_.bytes(), book_.evictions(), book_.expirations()};
}

}  // namespace boundary::realtime::shell
