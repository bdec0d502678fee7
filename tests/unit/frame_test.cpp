#include "core/frame.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace boundary::realtime::core {
namespace {

using Kind = DecodeStep::Kind;
using Bytes = std::vector<std::uint8_t>;

constexpr std::array<std::uint8_t, 4> kMask{0x37, 0xfa, 0x21, 0x3d};
constexpr std::size_t kLimit = 64 * 1024;

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }

Bytes client(Opcode op, std::string_view payload, bool fin = true) {
  return to_bytes(encode_client_frame(op, payload, kMask, fin));
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

// A masked client header with a raw first byte and an explicit length field (for malformed frames).
Bytes raw_header(std::uint8_t b0, std::uint8_t len7, std::initializer_list<std::uint8_t> ext = {}) {
  Bytes out{b0, static_cast<std::uint8_t>(0x80 | len7)};
  out.insert(out.end(), ext);
  out.insert(out.end(), kMask.begin(), kMask.end());
  return out;
}

DecodeStep decode(Bytes& buf, std::size_t limit = kLimit) {
  InboundDecoder decoder(limit);
  return decoder.next(buf);
}

FrameError decode_error(Bytes buf, std::size_t limit = kLimit) {
  const auto step = decode(buf, limit);
  EXPECT_EQ(step.kind, Kind::error);
  EXPECT_EQ(step.consumed, 0u);
  return step.error;
}

struct Event {
  Kind kind;
  std::string payload;
  std::uint16_t close_code = 0;
  FrameError error{};
  bool operator==(const Event&) const = default;
};

// Mimics the connection's read loop: append what arrived, decode every complete frame, advance by
// `consumed`, keep the unconsumed tail for the next read.
class ShellSim {
 public:
  explicit ShellSim(std::size_t limit = kLimit) : decoder_(limit) {}

  void feed(std::span<const std::uint8_t> chunk) {
    pending_.insert(pending_.end(), chunk.begin(), chunk.end());
    while (!failed_) {
      const auto step = decoder_.next(pending_);
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

  void feed_byte_at_a_time(const Bytes& all) {
    for (std::size_t i = 0; i < all.size(); ++i) feed(std::span(all).subspan(i, 1));
  }

  std::size_t pending_size() const { return pending_.size(); }
  InboundDecoder& decoder() { return decoder_; }

  std::vector<Event> events;

 private:
  InboundDecoder decoder_;
  Bytes pending_;
  bool failed_ = false;
};

// ---- error mapping ----

TEST(FrameError, ProtocolViolationsCloseWith1002) {
  for (auto e : {FrameError::reserved_bits, FrameError::reserved_opcode, FrameError::unmasked_frame,
                 FrameError::fragmented_control, FrameError::control_too_long,
                 FrameError::non_minimal_length, FrameError::length_high_bit,
                 FrameError::unexpected_continuation, FrameError::expected_continuation,
                 FrameError::bad_close_payload}) {
    EXPECT_EQ(close_code_for(e), CloseCode::protocol_error) << to_string(e);
  }
}

TEST(FrameError, BinaryClosesWith1003) {
  EXPECT_EQ(close_code_for(FrameError::binary_message), CloseCode::unsupported_data);
  EXPECT_EQ(static_cast<int>(close_code_for(FrameError::binary_message)), 1003);
}

TEST(FrameError, InvalidUtf8ClosesWith1007) {
  EXPECT_EQ(static_cast<int>(close_code_for(FrameError::invalid_utf8)), 1007);
}

TEST(FrameError, MessageTooBigClosesWith1009) {
  EXPECT_EQ(static_cast<int>(close_code_for(FrameError::message_too_big)), 1009);
}

TEST(FrameError, EveryErrorHasADistinctName) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(FrameError::message_too_big); ++i) {
    const auto name = to_string(static_cast<FrameError>(i));
    EXPECT_FALSE(name.empty());
    EXPECT_NE(name, "unknown frame error");
    names.insert(name);
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(FrameError::message_too_big) + 1);
}

// ---- single frames ----

TEST(FrameDecoder, TextFrameIsUnmaskedInPlaceWithoutCopy) {
  auto buf = client(Opcode::text, R"({"action":"ping"})");
  const auto step = decode(buf);
  ASSERT_EQ(step.kind, Kind::text);
  EXPECT_EQ(step.payload, R"({"action":"ping"})");
  EXPECT_EQ(step.consumed, buf.size());
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(step.payload.data()), buf.data() + 6);
}

TEST(FrameDecoder, EmptyTextFrameIsDelivered) {
  auto buf = client(Opcode::text, "");
  const auto step = decode(buf);
  EXPECT_EQ(step.kind, Kind::text);
  EXPECT_TRUE(step.payload.empty());
  EXPECT_EQ(step.consumed, 6u);
}

TEST(FrameDecoder, ConsumesOnlyTheFrontFrame) {
  auto buf = concat({client(Opcode::text, "one"), client(Opcode::text, "two")});
  InboundDecoder decoder(kLimit);
  const auto first = decoder.next(buf);
  ASSERT_EQ(first.kind, Kind::text);
  EXPECT_EQ(first.payload, "one");
  EXPECT_EQ(first.consumed, 9u);
  const auto second = decoder.next(std::span(buf).subspan(first.consumed));
  EXPECT_EQ(second.payload, "two");
  EXPECT_EQ(second.consumed, 9u);
}

TEST(FrameDecoder, IncompleteHeaderNeedsMoreAndConsumesNothing) {
  const auto full = client(Opcode::text, std::string(300, 'a'));  // 2 + 2 + 4 byte header
  for (std::size_t n = 0; n < 8; ++n) {
    Bytes part(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    const auto step = decode(part);
    EXPECT_EQ(step.kind, Kind::need_more) << n;
    EXPECT_EQ(step.consumed, 0u) << n;
  }
}

TEST(FrameDecoder, IncompletePayloadNeedsMoreAndLeavesBytesMasked) {
  const auto full = client(Opcode::text, "hello world");
  Bytes part(full.begin(), full.end() - 1);
  const Bytes before = part;
  const auto step = decode(part);
  EXPECT_EQ(step.kind, Kind::need_more);
  EXPECT_EQ(step.consumed, 0u);
  EXPECT_EQ(part, before);  // unmasking early would corrupt the retry
}

TEST(FrameDecoder, SevenBitLengthUpTo125) {
  auto buf = client(Opcode::text, std::string(125, 'x'));
  ASSERT_EQ(buf[1], 0x80 | 125);
  const auto step = decode(buf);
  EXPECT_EQ(step.kind, Kind::text);
  EXPECT_EQ(step.payload.size(), 125u);
}

TEST(FrameDecoder, SixteenBitLengthFrom126To65535) {
  for (std::size_t n : {126u, 65535u}) {
    auto buf = client(Opcode::text, std::string(n, 'x'));
    ASSERT_EQ(buf[1], 0x80 | 126);
    const auto step = decode(buf);
    EXPECT_EQ(step.kind, Kind::text);
    EXPECT_EQ(step.payload.size(), n);
    EXPECT_EQ(step.consumed, n + 8);
  }
}

TEST(FrameDecoder, SixtyFourBitLengthFrom65536) {
  auto buf = client(Opcode::text, std::string(65536, 'x'));
  ASSERT_EQ(buf[1], 0x80 | 127);
  const auto step = decode(buf, 1 << 20);
  EXPECT_EQ(step.kind, Kind::text);
  EXPECT_EQ(step.payload.size(), 65536u);
  EXPECT_EQ(step.consumed, 65536u + 14);
}

TEST(FrameDecoder, PingPayloadIsAViewIntoTheBuffer) {
  auto buf = client(Opcode::ping, "are you there");
  const auto step = decode(buf);
  ASSERT_EQ(step.kind, Kind::ping);
  EXPECT_EQ(step.payload, "are you there");
  EXPECT_EQ(reinterpret_cast<const std::uint8_t*>(step.payload.data()), buf.data() + 6);
}

TEST(FrameDecoder, PongIsDelivered) {
  auto buf = client(Opcode::pong, "beat");
  const auto step = decode(buf);
  EXPECT_EQ(step.kind, Kind::pong);
  EXPECT_EQ(step.payload, "beat");
}

TEST(FrameDecoder, ControlFrameOf125BytesIsAccepted) {
  auto buf = client(Opcode::ping, std::string(125, 'p'));
  EXPECT_EQ(decode(buf).kind, Kind::ping);
}

TEST(FrameDecoder, PingDoesNotCountAgainstTheMessageLimit) {
  auto buf = client(Opcode::ping, std::string(100, 'p'));
  EXPECT_EQ(decode(buf, 10).kind, Kind::ping);
}

// ---- header violations ----

TEST(FrameDecoder, ReservedBitsAreRejected) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10}) {
    EXPECT_EQ(decode_error(raw_header(0x81 | rsv, 0)), FrameError::reserved_bits);
  }
}

TEST(FrameDecoder, ReservedOpcodesAreRejected) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    EXPECT_EQ(decode_error(raw_header(0x80 | op, 0)), FrameError::reserved_opcode) << int(op);
  }
}

TEST(FrameDecoder, UnmaskedFrameIsRejected) {
  EXPECT_EQ(decode_error(to_bytes(encode_frame(Opcode::text, "hi"))), FrameError::unmasked_frame);
}

TEST(FrameDecoder, FragmentedControlFrameIsRejected) {
  EXPECT_EQ(decode_error(client(Opcode::ping, "x", false)), FrameError::fragmented_control);
  EXPECT_EQ(decode_error(client(Opcode::close, "", false)), FrameError::fragmented_control);
}

TEST(FrameDecoder, ControlFrameOver125IsRejectedFromTheFirstTwoBytes) {
  EXPECT_EQ(decode_error(Bytes{0x89, 0x80 | 126}), FrameError::control_too_long);
  EXPECT_EQ(decode_error(Bytes{0x88, 0x80 | 127}), FrameError::control_too_long);
}

TEST(FrameDecoder, NonMinimalSixteenBitLengthIsRejected) {
  EXPECT_EQ(decode_error(raw_header(0x81, 126, {0x00, 125})), FrameError::non_minimal_length);
}

TEST(FrameDecoder, NonMinimalSixtyFourBitLengthIsRejected) {
  EXPECT_EQ(decode_error(raw_header(0x81, 127, {0, 0, 0, 0, 0, 0, 0xFF, 0xFF})),
            FrameError::non_minimal_length);
}

TEST(FrameDecoder, SixtyFourBitLengthWithHighBitIsRejected) {
  EXPECT_EQ(decode_error(Bytes{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}),
            FrameError::length_high_bit);
}

TEST(FrameDecoder, ContinuationWithoutMessageIsRejected) {
  EXPECT_EQ(decode_error(client(Opcode::continuation, "x")), FrameError::unexpected_continuation);
}

TEST(FrameDecoder, NewTextFrameWhileFragmentedIsRejected) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "a", false), client(Opcode::text, "b")}));
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].error, FrameError::expected_continuation);
}

TEST(FrameDecoder, BinaryFrameIsRejectedWith1003) {
  const auto e = decode_error(client(Opcode::binary, "\x01\x02"));
  EXPECT_EQ(e, FrameError::binary_message);
  EXPECT_EQ(static_cast<int>(close_code_for(e)), 1003);
}

TEST(FrameDecoder, BinaryFrameIsRejectedFromTheFirstTwoBytes) {
  EXPECT_EQ(decode_error(Bytes{0x82, 0x80 | 127}), FrameError::binary_message);
}

TEST(FrameDecoder, InvalidUtf8TextIsRejectedWith1007) {
  const auto e = decode_error(client(Opcode::text, "bad \xC3\x28"));
  EXPECT_EQ(e, FrameError::invalid_utf8);
  EXPECT_EQ(static_cast<int>(close_code_for(e)), 1007);
}

// ---- limits ----

TEST(FrameDecoder, MessageOverLimitIsRejectedBeforePayloadArrives) {
  // Only the 10-byte length header of a 1 GiB frame: no mask key, no payload yet.
  const Bytes header{0x81, 0x80 | 127, 0, 0, 0, 0, 0x40, 0, 0, 0};
  EXPECT_EQ(decode_error(header), FrameError::message_too_big);
  EXPECT_EQ(static_cast<int>(close_code_for(FrameError::message_too_big)), 1009);
}

TEST(FrameDecoder, MessageAtTheLimitIsAccepted) {
  auto buf = client(Opcode::text, std::string(100, 'a'));
  EXPECT_EQ(decode(buf, 100).kind, Kind::text);
  auto over = client(Opcode::text, std::string(101, 'a'));
  EXPECT_EQ(decode(over, 100).error, FrameError::message_too_big);
}

TEST(FrameDecoder, FragmentsOverLimitAreRejectedAtTheHeaderThatCrossesIt) {
  ShellSim sim(100);
  sim.feed(client(Opcode::text, std::string(60, 'a'), false));
  ASSERT_TRUE(sim.events.empty());
  const auto next = client(Opcode::continuation, std::string(41, 'b'));
  sim.feed(std::span(next).first(8));  // header and mask key only
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].error, FrameError::message_too_big);
}

TEST(FrameDecoder, FragmentsExactlyAtLimitAreAccepted) {
  ShellSim sim(100);
  sim.feed(concat({client(Opcode::text, std::string(60, 'a'), false),
                   client(Opcode::continuation, std::string(40, 'b'))}));
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].kind, Kind::text);
  EXPECT_EQ(sim.events[0].payload.size(), 100u);
}

// ---- fragmentation ----

TEST(FrameDecoder, NonFinalFragmentIsConsumedWithNeedMore) {
  auto buf = client(Opcode::text, "part", false);
  InboundDecoder decoder(kLimit);
  const auto step = decoder.next(buf);
  EXPECT_EQ(step.kind, Kind::need_more);
  EXPECT_EQ(step.consumed, buf.size());
  auto last = client(Opcode::continuation, "!");
  const auto done = decoder.next(last);  // the message is open: a continuation completes it
  EXPECT_EQ(done.kind, Kind::text);
  EXPECT_EQ(done.payload, "part!");
}

TEST(FrameDecoder, FragmentsAreAssembledAroundAnInterleavedPing) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "Hel", false), client(Opcode::continuation, "lo, ", false),
                   client(Opcode::ping, "p"), client(Opcode::continuation, "", false),
                   client(Opcode::continuation, "world")}));
  const std::vector<Event> expected{{Kind::ping, "p"}, {Kind::text, "Hello, world"}};
  EXPECT_EQ(sim.events, expected);
  auto stray = client(Opcode::continuation, "x");  // the message is closed: nothing to continue
  EXPECT_EQ(sim.decoder().next(stray).error, FrameError::unexpected_continuation);
  EXPECT_EQ(sim.pending_size(), 0u);
}

TEST(FrameDecoder, CloseInsideAFragmentedMessageIsDelivered) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "half", false), client(Opcode::close, "\x03\xE8")}));
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].kind, Kind::close);
  EXPECT_EQ(sim.events[0].close_code, 1000);
}

TEST(FrameDecoder, NewMessageMayStartAfterAnAssembledOne) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "a", false), client(Opcode::continuation, "b"),
                   client(Opcode::text, "c"), client(Opcode::text, "d", false),
                   client(Opcode::continuation, "e")}));
  const std::vector<Event> expected{{Kind::text, "ab"}, {Kind::text, "c"}, {Kind::text, "de"}};
  EXPECT_EQ(sim.events, expected);
}

TEST(FrameDecoder, ContinuationAfterTheFinalFragmentIsRejected) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "a", false), client(Opcode::continuation, "b"),
                   client(Opcode::continuation, "c")}));
  ASSERT_EQ(sim.events.size(), 2u);
  EXPECT_EQ(sim.events[1].error, FrameError::unexpected_continuation);
}

TEST(FrameDecoder, ByteAtATimeFeedingDeliversEveryMessage) {
  const auto stream = concat({client(Opcode::text, "first"), client(Opcode::text, "fr\xC3", false),
                              client(Opcode::ping, ""), client(Opcode::continuation, "\xA9 og"),
                              client(Opcode::text, std::string(300, 'z')),
                              client(Opcode::close, "\x0F\xA0" "bye")});
  ShellSim sim;
  sim.feed_byte_at_a_time(stream);
  const std::vector<Event> expected{{Kind::text, "first"},
                                    {Kind::ping, ""},
                                    {Kind::text, "fr\xC3\xA9 og"},
                                    {Kind::text, std::string(300, 'z')},
                                    {Kind::close, "bye", 4000}};
  EXPECT_EQ(sim.events, expected);
  EXPECT_EQ(sim.pending_size(), 0u);
}

// ---- UTF-8 ----

TEST(Utf8, AcceptsBoundaryCodePoints) {
  for (std::string_view s : {"", "\x7F", "\xC2\x80", "\xDF\xBF", "\xE0\xA0\x80", "\xED\x9F\xBF",
                             "\xEE\x80\x80", "\xEF\xBF\xBF", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF",
                             "\xF0\x9F\x98\x80"}) {
    EXPECT_TRUE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(Utf8, RejectsOverlongForms) {
  for (std::string_view s : {"\xC0\x80", "\xC1\xBF", "\xE0\x9F\xBF", "\xF0\x8F\xBF\xBF"}) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(Utf8, RejectsSurrogates) {
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));
}

TEST(Utf8, RejectsCodePointsAbove10FFFF) {
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xFF"));
}

TEST(Utf8, RejectsTruncatedAndStraySequences) {
  for (std::string_view s : {"\xC3", "\xE2\x82", "\xF0\x9F\x98", "\x80", "a\xBF", "\xE2\x28\xA1"}) {
    EXPECT_FALSE(is_valid_utf8(s)) << testing::PrintToString(s);
  }
}

TEST(Utf8, ChecksBytesAfterTheAsciiFastPath) {
  const std::string ascii(23, 'a');
  EXPECT_TRUE(is_valid_utf8(ascii));
  EXPECT_FALSE(is_valid_utf8(ascii + "\xC3"));
  EXPECT_FALSE(is_valid_utf8(std::string(16, 'a') + "\x80" + std::string(16, 'a')));
  EXPECT_TRUE(is_valid_utf8(std::string(16, 'a') + "\xF0\x9F\x98\x80" + std::string(16, 'a')));
}

TEST(FrameDecoder, FourByteCharacterIsAccepted) {
  auto buf = client(Opcode::text, "\xF0\x9F\x98\x80");
  EXPECT_EQ(decode(buf).kind, Kind::text);
}

TEST(FrameDecoder, OverlongEncodingIsRejectedWith1007) {
  EXPECT_EQ(decode_error(client(Opcode::text, "\xC0\xAF")), FrameError::invalid_utf8);
}

TEST(FrameDecoder, SurrogateIsRejectedWith1007) {
  EXPECT_EQ(decode_error(client(Opcode::text, "\xED\xA0\x80")), FrameError::invalid_utf8);
}

TEST(FrameDecoder, CharacterSplitBetweenFragmentsIsValid) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "\xF0\x9F", false), client(Opcode::continuation, "\x98", false),
                   client(Opcode::continuation, "\x80")}));
  const std::vector<Event> expected{{Kind::text, "\xF0\x9F\x98\x80"}};
  EXPECT_EQ(sim.events, expected);
}

TEST(FrameDecoder, CharacterTruncatedAtTheEndOfAFragmentedMessageIsRejected) {
  ShellSim sim;
  sim.feed(concat({client(Opcode::text, "ok", false), client(Opcode::continuation, "\xE2\x82")}));
  ASSERT_EQ(sim.events.size(), 1u);
  EXPECT_EQ(sim.events[0].error, FrameError::invalid_utf8);
}

// ---- close frames ----

TEST(FrameDecoder, EmptyCloseReportsNoStatus1005) {
  auto buf = client(Opcode::close, "");
  const auto step = decode(buf);
  ASSERT_EQ(step.kind, Kind::close);
  EXPECT_EQ(step.close_code, 1005);
  EXPECT_TRUE(step.payload.empty());
  EXPECT_EQ(step.consumed, 6u);
}

TEST(FrameDecoder, OneByteClosePayloadIsRejected) {
  EXPECT_EQ(decode_error(client(Opcode::close, "\x03")), FrameError::bad_close_payload);
}

TEST(FrameDecoder, ReceivableCloseCodesAreAccepted) {
  for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    const std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    auto buf = client(Opcode::close, payload);
    const auto step = decode(buf);
    ASSERT_EQ(step.kind, Kind::close) << code;
    EXPECT_EQ(step.close_code, code);
  }
}

TEST(FrameDecoder, ReservedAndUnassignedCloseCodesAreRejected) {
  for (int code : {0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535}) {
    const std::string payload{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    EXPECT_EQ(decode_error(client(Opcode::close, payload)), FrameError::bad_close_payload) << code;
  }
}

TEST(FrameDecoder, CloseReasonIsThePayloadAfterTheCode) {
  auto buf = client(Opcode::close, "\x03\xE9going away \xE2\x9C\x93");
  const auto step = decode(buf);
  ASSERT_EQ(step.kind, Kind::close);
  EXPECT_EQ(step.close_code, 1001);
  EXPECT_EQ(step.payload, "going away \xE2\x9C\x93");
}

TEST(FrameDecoder, CloseReasonWithInvalidUtf8IsRejectedWith1007) {
  EXPECT_EQ(decode_error(client(Opcode::close, "\x03\xE8\xFF")), FrameError::invalid_utf8);
}

// ---- encoders ----

TEST(FrameEncoder, SevenBitHeader) {
  std::array<std::uint8_t, 10> out{};
  EXPECT_EQ(write_frame_header(out, Opcode::text, 125), 2u);
  EXPECT_EQ(out[0], 0x81);
  EXPECT_EQ(out[1], 125);
}

TEST(FrameEncoder, SixteenBitHeader) {
  std::array<std::uint8_t, 10> out{};
  EXPECT_EQ(write_frame_header(out, Opcode::text, 126), 4u);
  EXPECT_EQ((Bytes{out.begin(), out.begin() + 4}), (Bytes{0x81, 126, 0x00, 126}));
  EXPECT_EQ(write_frame_header(out, Opcode::text, 65535), 4u);
  EXPECT_EQ((Bytes{out.begin(), out.begin() + 4}), (Bytes{0x81, 126, 0xFF, 0xFF}));
}

TEST(FrameEncoder, SixtyFourBitHeader) {
  std::array<std::uint8_t, 10> out{};
  EXPECT_EQ(write_frame_header(out, Opcode::ping, 0x0102030405060708ULL), 10u);
  EXPECT_EQ(Bytes(out.begin(), out.end()),
            (Bytes{0x89, 127, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08}));
  EXPECT_EQ(write_frame_header(out, Opcode::text, 65536), 10u);
  EXPECT_EQ(Bytes(out.begin(), out.end()), (Bytes{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}));
}

TEST(FrameEncoder, NonFinalHeaderClearsFin) {
  std::array<std::uint8_t, 10> out{};
  write_frame_header(out, Opcode::continuation, 3, false);
  EXPECT_EQ(out[0], 0x00);
}

TEST(FrameEncoder, ServerFrameIsUnmaskedHeaderPlusPayload) {
  const auto frame = encode_frame(Opcode::text, "hello");
  EXPECT_EQ(frame, std::string("\x81\x05hello", 7));
  const auto big = encode_frame(Opcode::text, std::string(70000, 'q'));
  EXPECT_EQ(big.size(), 70010u);
  EXPECT_EQ(static_cast<std::uint8_t>(big[1]), 127);  // mask bit clear
}

TEST(FrameEncoder, CloseFrameCarriesBigEndianCodeAndReason) {
  EXPECT_EQ(encode_close_frame(CloseCode::going_away, "bye"), std::string("\x88\x05\x03\xE9" "bye", 7));
  EXPECT_EQ(encode_close_frame(CloseCode::message_too_big), std::string("\x88\x02\x03\xF1", 4));
}

TEST(FrameEncoder, CloseReasonIsTruncatedTo125BytePayload) {
  const auto frame = encode_close_frame(CloseCode::normal, std::string(500, 'r'));
  EXPECT_EQ(static_cast<std::uint8_t>(frame[1]), 125);
  EXPECT_EQ(frame.size(), 127u);
}

TEST(FrameEncoder, CloseReasonIsNotTruncatedInsideACharacter) {
  // 122 ASCII bytes then a 3-byte character straddling the 123-byte reason budget.
  const auto frame = encode_close_frame(CloseCode::normal, std::string(122, 'r') + "\xE2\x9C\x93");
  EXPECT_EQ(static_cast<std::uint8_t>(frame[1]), 124);
  EXPECT_TRUE(is_valid_utf8(std::string_view(frame).substr(4)));
}

TEST(FrameEncoder, ClientFrameIsMaskedWithTheKey) {
  const auto frame = encode_client_frame(Opcode::text, "Hi", {0x01, 0x02, 0x03, 0x04});
  EXPECT_EQ(frame, std::string("\x81\x82\x01\x02\x03\x04" "\x49\x6B", 8));
}

TEST(FrameEncoder, ClientFramesRoundTripThroughTheDecoder) {
  for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 125u, 126u, 127u, 65535u, 65536u, 100001u}) {
    std::string payload;
    for (std::size_t i = 0; i < n; ++i) payload.push_back(static_cast<char>('a' + i % 26));
    auto buf = client(Opcode::text, payload);
    const auto step = decode(buf, 1 << 20);
    ASSERT_EQ(step.kind, Kind::text) << n;
    EXPECT_EQ(step.payload, payload) << n;
    EXPECT_EQ(step.consumed, buf.size()) << n;
  }
}

TEST(FrameEncoder, CloseFrameRoundTripsWhenMasked) {
  const auto server = encode_close_frame(CloseCode::policy_violation, "slow consumer");
  auto buf = client(Opcode::close, std::string_view(server).substr(2));
  const auto step = decode(buf);
  ASSERT_EQ(step.kind, Kind::close);
  EXPECT_EQ(step.close_code, 1008);
  EXPECT_EQ(step.payload, "slow consumer");
}

}  // namespace
}  // namespace boundary::realtime::core
