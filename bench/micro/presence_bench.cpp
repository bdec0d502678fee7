// Presence: core::PresenceTable, the single-node store's decisions. A topic of 10,000 present
// users (ids of 8-12 characters, no `info`): the cost of a join + leave pair, of listing at the
// default cap (1,000) and all 10,000, and the heap bytes per present user (mallinfo2 before
// and after filling the table).

#include <malloc.h>

#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "core/presence.hpp"

namespace boundary::realtime::core {
namespace {

constexpr int members = 10'000;

std::vector<std::string> user_ids() {
  std::vector<std::string> ids;
  ids.reserve(members);
  for (int i = 0; i < members; ++i) ids.push_back("user-" + std::to_string(100000 + i));
  return ids;
}

void BM_PresenceJoinLeave(benchmark::State& state) {
  const auto ids = user_ids();
  PresenceTable table;
  for (const auto& id : ids) table.join("room:1", id, nullptr);
  std::size_t i = 0;
  for (auto _ : state) {
    // A second connection of a present user (no event) and a new user joining and leaving.
    benchmark::DoNotOptimize(table.join("room:1", ids[i % members], nullptr));
    benchmark::DoNotOptimize(table.leave("room:1", ids[i % members]));
    benchmark::DoNotOptimize(table.join("room:1", "newcomer", nullptr));
    benchmark::DoNotOptimize(table.leave("room:1", "newcomer"));
    ++i;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * 4);
}
BENCHMARK(BM_PresenceJoinLeave);

void BM_PresenceList(benchmark::State& state) {
  const auto ids = user_ids();
  PresenceTable table;
  for (const auto& id : ids) table.join("room:1", id, nullptr);
  const auto cap = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto listing = table.list("room:1", cap);
    benchmark::DoNotOptimize(listing.users.data());
  }
  state.counters["listed"] = static_cast<double>(std::min<std::size_t>(cap, members));
}
BENCHMARK(BM_PresenceList)->Arg(1000)->Arg(10000)->Unit(benchmark::kMicrosecond);

void BM_PresenceBytesPerUser(benchmark::State& state) {
  const auto ids = user_ids();
  double per_user = 0;
  for (auto _ : state) {
    const auto before = mallinfo2().uordblks;
    {
      PresenceTable table;
      for (const auto& id : ids) table.join("room:1", id, nullptr);
      per_user = static_cast<double>(mallinfo2().uordblks - before) / members;
      benchmark::DoNotOptimize(table.entry_count());
    }
  }
  state.counters["heap_bytes_per_user"] = per_user;
}
BENCHMARK(BM_PresenceBytesPerUser)->Iterations(3)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace boundary::realtime::core
