#pragma once
// The single-node history store: core::HistoryBook behind one mutex. Every append of a topic
// hands out its offset and runs `publish` under the mutex, and attach runs `join` under it, so
// a join sits between two appends exactly (the port's "Atomic join"). `publish` only posts to
// the loops, so the mutex is held for microseconds; one mutex for all topics because the byte
// cap is one budget across them.
//
// Epochs are 16 random hex digits drawn when a stream is created: after a restart, an eviction
// or an expiry the same topic gets a new one.

#include <functional>
#include <mutex>

#include "boundary/realtime/ports/history_store.hpp"
#include "core/history.hpp"

namespace boundary::realtime::shell {

class HistoryMemory final : public HistoryStore {
 public:
  using Now = std::function<core::HistoryClock::time_point()>;
  using NewEpoch = core::HistoryBook::NewEpoch;
  // Empty `now` / `new_epoch`: the steady clock and random epochs.
  HistoryMemory(core::HistoryRules rules, std::size_t max_bytes, Now now = {}, NewEpoch new_epoch = {});

  bool keeps(std::string_view topic) const noexcept override { return rules_.find(topic) != nullptr; }
  void append(std::string_view topic, const Encode& encode, const Publish& publish) override;
  void attach(std::string_view topic, const std::optional<HistoryRecover>& recover, const Join& join) override;
  void read(std::string_view topic, std::uint64_t since, std::size_t limit, Done done) override;
  void expire() override;
  HistoryUsage usage() const override;

 private:
  const core::HistoryRules rules_;
  Now now_;
  mutable std::mutex mutex_;
  core::HistoryBook book_;
};

}  // namespace boundary::realtime::shell
