// libFuzzer target for the inbound frame decoder.
//
// Input layout: byte 0 picks the chunking (0 = all at once, 1 = byte at a time, else pseudo-random
// chunks of 1..byte0), byte 1 picks the message limit, byte 2 picks the round-trip fragmentation
// and masks; the rest is the stream. Each input is decoded twice, chunked and whole, and the two
// event sequences must match: decoding must not depend on how TCP split the bytes. The same bytes
// are also used as a message, encoded with encode_client_frame and decoded back.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/frame.hpp"

namespace {

using namespace boundary::realtime::core;
using Kind = DecodeStep::Kind;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Event {
  Kind kind;
  std::string payload;
  std::uint16_t close_code;
  FrameError error;
  bool operator==(const Event&) const = default;
};

bool is_receivable_close_code(std::uint16_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

bool points_into(std::string_view v, std::span<const std::uint8_t> range) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  return p >= range.data() && p + v.size() <= range.data() + range.size();
}

// Bytes of the complete frame at the front of `b` (header, mask key and payload), or 0 while it is
// incomplete: the test's own reading of RFC 6455 section 5.2, independent of the decoder's.
std::size_t complete_frame_bytes(std::span<const std::uint8_t> b) {
  if (b.size() < 2) return 0;
  const std::size_t len7 = b[1] & 0x7F;
  const std::size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
  const std::size_t header = 2 + ext + ((b[1] & 0x80) != 0 ? 4 : 0);
  if (b.size() < 2 + ext) return 0;
  std::uint64_t length = len7;
  if (ext != 0) {
    length = 0;
    for (std::size_t i = 0; i < ext; ++i) length = (length << 8) | b[2 + i];
  }
  if (length > b.size() || header + length > b.size()) return 0;
  return header + static_cast<std::size_t>(length);
}

constexpr std::uint8_t fin_bit = 0x80;
constexpr std::uint8_t op_continuation = 0x0;
constexpr std::uint8_t op_text = 0x1;

// The connection's read loop, with every documented guarantee of InboundDecoder checked.
class Shell {
 public:
  explicit Shell(std::size_t limit) : decoder_(limit), limit_(limit) {}

  void feed(std::span<const std::uint8_t> chunk) {
    pending_.insert(pending_.end(), chunk.begin(), chunk.end());
    while (!failed_) {
      const auto step = decoder_.next(pending_);
      check_step(step);
      if (step.kind != Kind::need_more) {
        events.push_back({step.kind, std::string(step.payload), step.close_code, step.error});
      }
      if (step.kind == Kind::error) {
        failed_ = true;
        return;
      }
      pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(step.consumed));
      if (step.consumed == 0) return;
    }
  }

  bool failed() const { return failed_; }
  std::vector<Event> events;

 private:
  void check_step(const DecodeStep& step) {
    const std::span<const std::uint8_t> all(pending_);
    check(step.consumed <= all.size());
    if (step.kind == Kind::error) {
      check(step.consumed == 0);
      return;
    }
    if (step.kind == Kind::need_more && step.consumed == 0) {
      check(complete_frame_bytes(all) == 0);
      return;
    }
    // Anything else consumed exactly one complete frame.
    check(step.consumed > 0);
    check(complete_frame_bytes(all.first(step.consumed)) == step.consumed);
    const std::uint8_t b0 = all[0];  // the header is not unmasked in place: still as sent
    const std::uint8_t op = b0 & 0x0F;
    if (step.kind == Kind::need_more) {
      // Only a non-final fragment of a text message is absorbed.
      check((b0 & fin_bit) == 0 && (op == op_text ? !fragment_open_ : op == op_continuation && fragment_open_));
      fragment_open_ = true;
      return;
    }
    if (step.kind == Kind::text) {
      // A whole text frame outside a message, or the final continuation of the open one.
      check((b0 & fin_bit) != 0 && (op == op_text ? !fragment_open_ : op == op_continuation && fragment_open_));
      fragment_open_ = false;
    }
    check_payload(step, all.first(step.consumed));
  }

  void check_payload(const DecodeStep& step, std::span<const std::uint8_t> frame) const {
    // Reading every byte lets ASan catch a view that runs past its buffer.
    volatile unsigned sum = 0;
    for (char c : step.payload) sum = sum + static_cast<unsigned char>(c);
    (void)sum;
    const bool in_frame = points_into(step.payload, frame);
    switch (step.kind) {
      case Kind::text:
        check(step.payload.size() <= limit_);
        check(is_valid_utf8(step.payload));
        check(in_frame || step.payload.empty() || !points_into(step.payload, pending_));
        break;
      case Kind::ping:
      case Kind::pong:
        check(in_frame && step.payload.size() <= 125);
        break;
      case Kind::close:
        check(in_frame || step.payload.empty());
        check(step.payload.size() <= 123 && is_valid_utf8(step.payload));
        check(step.close_code == 1005 ? step.payload.empty()
                                      : is_receivable_close_code(step.close_code));
        break;
      default:
        check(false);
    }
  }

  InboundDecoder decoder_;
  std::size_t limit_;
  std::vector<std::uint8_t> pending_;
  bool failed_ = false;
  bool fragment_open_ = false;  // a text message's first fragments were absorbed
};

// Feeds `stream` in chunks chosen by `mode`, as described at the top of the file.
void feed_chunked(Shell& shell, std::span<const std::uint8_t> stream, std::uint8_t mode) {
  std::uint32_t state = mode * 2654435761u + 1;
  std::size_t pos = 0;
  while (pos < stream.size()) {
    std::size_t n = stream.size() - pos;
    if (mode == 1) n = 1;
    if (mode > 1) {
      state = state * 1103515245u + 12345u;
      n = std::min<std::size_t>(n, 1 + (state >> 16) % mode);
    }
    shell.feed(stream.subspan(pos, n));
    pos += n;
  }
}

void fuzz_stream(std::span<const std::uint8_t> stream, std::uint8_t mode, std::size_t limit) {
  Shell chunked(limit);
  feed_chunked(chunked, stream, mode);
  Shell whole(limit);
  whole.feed(stream);
  check(chunked.events == whole.events);
}

std::string encode_fragments(std::string_view message, std::uint8_t shape) {
  const std::size_t fragments = 1 + shape % 4;
  const bool ping_between = (shape & 0x10) != 0;
  const std::array<std::uint8_t, 4> mask{shape, static_cast<std::uint8_t>(shape * 7), 0x5a, 0xc3};
  std::string out;
  const std::size_t step = message.size() / fragments;
  for (std::size_t i = 0; i < fragments; ++i) {
    const bool last = i + 1 == fragments;
    const auto part = message.substr(i * step, last ? std::string_view::npos : step);
    out += encode_client_frame(i == 0 ? Opcode::text : Opcode::continuation, part, mask, last);
    if (ping_between && !last) out += encode_client_frame(Opcode::ping, "p", mask);
  }
  return out;
}

void fuzz_round_trip(std::string_view message, std::uint8_t shape, std::uint8_t mode,
                     std::size_t limit) {
  const std::string encoded = encode_fragments(message, shape);
  const std::span bytes(reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size());
  Shell shell(limit);
  feed_chunked(shell, bytes, mode);
  check(!shell.events.empty());
  const Event& last = shell.events.back();
  if (message.size() > limit) {
    check(last.kind == Kind::error && last.error == FrameError::message_too_big);
  } else if (!is_valid_utf8(message)) {
    check(last.kind == Kind::error && last.error == FrameError::invalid_utf8);
  } else {
    check(last.kind == Kind::text && last.payload == message);
  }
  for (std::size_t i = 0; i + 1 < shell.events.size(); ++i) {
    check(shell.events[i].kind == Kind::ping && shell.events[i].payload == "p");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t mode = data[0];
  // 0 exercises the zero limit; most values stay small so the limit is actually reached.
  const std::size_t limit = data[1] == 255 ? (1u << 20) : std::size_t{data[1]} * 16;
  const std::span<const std::uint8_t> rest(data + 3, size - 3);
  fuzz_stream(rest, mode, limit);
  fuzz_round_trip(std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size()), data[2],
                  mode, limit);
  return 0;
}
