// Outbound envelope (once per send) and client command parsing (once per inbound command).

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/command.hpp"
#include "core/envelope.hpp"

namespace boundary::realtime {
namespace {

// A typical application message: 100 bytes serialized, before the server adds timestamp/topic.
boost::json::object order_update() {
  return {{"type", "order-updated"}, {"order-id", "ord-1834"}, {"status", "shipped"}, {"carrier", "UPS"},
          {"eta", "2026-12-01"}};
}

// The server moves the parsed API body into make_envelope (server.cpp), so each call needs an
// object of its own. Copies are made in batches outside the timed region; the pause costs
// about a microsecond per batch, i.e. well under 1 ns per call.
constexpr std::size_t batch = 1024;

// `topic` empty: delivery to a user/role/everyone (adds timestamp); else a topic publish (adds both).
void BM_MakeEnvelope(benchmark::State& state, std::string_view topic) {
  const boost::json::object source = order_update();
  const std::size_t source_bytes = boost::json::serialize(source).size();
  if (source_bytes != 100) {
    state.SkipWithError("message object is not 100 bytes");
    return;
  }
  const auto now = std::chrono::system_clock::now();
  std::vector<boost::json::object> pool(batch, source);
  std::size_t next = 0;
  std::size_t frame_bytes = 0;
  for (auto _ : state) {
    if (next == pool.size()) {
      state.PauseTiming();
      for (auto& o : pool) o = source;
      next = 0;
      state.ResumeTiming();
    }
    Message m = core::make_envelope(std::move(pool[next++]), now, topic);
    frame_bytes = m.frame_bytes();
    benchmark::DoNotOptimize(m.frame().data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(source_bytes));
  state.counters["frame_bytes"] = static_cast<double>(frame_bytes);
}
BENCHMARK_CAPTURE(BM_MakeEnvelope, to_user, std::string_view{});
BENCHMARK_CAPTURE(BM_MakeEnvelope, to_topic, std::string_view{"order:1834"});

// Part of the envelope: the ISO 8601 timestamp (snprintf + calendar arithmetic).
void BM_FormatTimestamp(benchmark::State& state) {
  auto now = std::chrono::system_clock::now();
  for (auto _ : state) {
    std::string ts = core::format_timestamp(now);
    benchmark::DoNotOptimize(ts.data());
    now += std::chrono::milliseconds(1);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_FormatTimestamp);

// subscribe: 51 bytes; publish: the 100-byte message object inside a 160-byte command.
void BM_ParseCommand(benchmark::State& state, core::Action expected) {
  const std::string text =
      expected == core::Action::subscribe
          ? std::string(R"({"action":"subscribe","topic":"order:1834","ref":1})")
          : R"({"action":"publish","topic":"order:1834","message":)" + boost::json::serialize(order_update()) +
                R"(,"ref":2})";
  for (auto _ : state) {
    auto cmd = core::parse_command(text);
    if (!cmd || cmd->action != expected) {
      state.SkipWithError("command did not parse");
      break;
    }
    benchmark::DoNotOptimize(cmd->topic.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
  state.SetLabel(std::to_string(text.size()) + " B");
}
BENCHMARK_CAPTURE(BM_ParseCommand, subscribe, core::Action::subscribe);
BENCHMARK_CAPTURE(BM_ParseCommand, publish, core::Action::publish);

}  // namespace
}  // namespace boundary::realtime
