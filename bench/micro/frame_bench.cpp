// Frame decode (client -> server) and frame encode (server -> client) micro-benchmarks.
//
// Inputs are client commands as JSON text of an exact size (20, 100, 4,000 bytes), masked as a
// browser masks them. Items are frames, bytes are wire bytes (decode) or payload bytes (encode).

#include <array>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "boundary/realtime/message.hpp"
#include "core/frame.hpp"

namespace boundary::realtime {
namespace {

// A client command of exactly `bytes` bytes of ASCII JSON: a `publish` with a chat text when there
// is room for one, otherwise a `ping` padded with JSON whitespace.
std::string command_json(std::size_t bytes) {
  static constexpr std::string_view prefix =
      R"({"action":"publish","topic":"chat:room-42","ref":17,"message":{"type":"chat-message","text":")";
  static constexpr std::string_view suffix = R"("}})";
  static constexpr std::string_view words = "the quick brown fox jumps over the lazy dog, 0123456789. ";
  std::string out;
  if (bytes >= prefix.size() + suffix.size()) {
    out = prefix;
    for (std::size_t i = 0; out.size() + suffix.size() < bytes; ++i) out += words[i % words.size()];
    out += suffix;
  } else {
    out = R"({"action":"ping"})";
    if (out.size() < bytes) out.append(bytes - out.size(), ' ');
  }
  if (out.size() != bytes) throw std::logic_error("command_json: cannot build this size");
  return out;
}

// Every mask byte below 0x80 (a random mask has that property one time in 16). Decoding unmasks
// in place, so a buffer decoded twice is masked again; with ASCII text and such a mask both the
// unmasked and the re-masked payload are ASCII, so every iteration does exactly the same work
// (unmask + UTF-8 fast path) on the same hot buffer without re-copying it inside the timed loop.
// Nothing in the decoder depends on the mask's value (frame.cpp: unmask() XORs 8 bytes at a time).
constexpr std::array<std::uint8_t, 4> ascii_mask{0x1f, 0x5c, 0x3a, 0x67};

std::vector<std::uint8_t> masked_frames(std::string_view payload, int count) {
  const std::string one = core::encode_client_frame(core::Opcode::text, payload, ascii_mask);
  std::vector<std::uint8_t> out;
  out.reserve(one.size() * static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) out.insert(out.end(), one.begin(), one.end());
  return out;
}

// Decodes every frame in `buf`; returns the number of text frames or -1 on anything else.
int decode_all(core::InboundDecoder& decoder, std::span<std::uint8_t> buf) {
  int frames = 0;
  while (!buf.empty()) {
    const auto step = decoder.next(buf);
    if (step.kind != core::DecodeStep::Kind::text) return -1;
    benchmark::DoNotOptimize(step.payload.data());
    benchmark::DoNotOptimize(step.payload.size());
    buf = buf.subspan(step.consumed);
    ++frames;
  }
  return frames;
}

// Args: payload bytes, frames back to back in one read buffer.
void BM_FrameDecode(benchmark::State& state) {
  const auto payload_bytes = static_cast<std::size_t>(state.range(0));
  const int frames = static_cast<int>(state.range(1));
  const std::string payload = command_json(payload_bytes);
  auto buf = masked_frames(payload, frames);
  core::InboundDecoder decoder(64 * 1024);  // the server's default --max-message-bytes

  // The trick above holds: one pass yields the text, the second restores the masked buffer.
  const auto original = buf;
  const auto first = decoder.next(buf);
  if (first.kind != core::DecodeStep::Kind::text || first.payload != payload ||
      decode_all(decoder, std::span(buf).subspan(first.consumed)) != frames - 1 ||
      decode_all(decoder, buf) != frames || buf != original) {
    state.SkipWithError("decoder did not round-trip the masked buffer");
    return;
  }

  for (auto _ : state) {
    if (decode_all(decoder, buf) != frames) {
      state.SkipWithError("decode failed");
      break;
    }
    benchmark::ClobberMemory();  // the in-place unmask must really happen every iteration
  }
  state.SetItemsProcessed(state.iterations() * frames);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(buf.size()));
}
BENCHMARK(BM_FrameDecode)
    ->ArgNames({"payload", "frames"})
    ->ArgsProduct({{20, 100, 4000}, {1, 64}});

// core::encode_frame: a server frame into a new std::string (close frames, replies built by hand).
void BM_EncodeFrame(benchmark::State& state) {
  const std::string payload = command_json(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    std::string frame = core::encode_frame(core::Opcode::text, payload);
    benchmark::DoNotOptimize(frame.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_EncodeFrame)->ArgName("payload")->Arg(100)->Arg(4000);

// Message::from_json: what every delivery is framed with, once per send (make_envelope ends here).
void BM_MessageFromJson(benchmark::State& state) {
  const std::string json = command_json(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) {
    Message m = Message::from_json(json);
    benchmark::DoNotOptimize(m.frame().data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_MessageFromJson)->ArgName("payload")->Arg(100)->Arg(4000);

}  // namespace
}  // namespace boundary::realtime
