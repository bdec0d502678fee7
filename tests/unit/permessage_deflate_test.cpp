// RFC 7692 negotiation (core/permessage_deflate), the codec (core/deflate_codec), the decoder's
// RSV1 handling and Message's shared compressed frame.
#include <gtest/gtest.h>

#include <string>

#include "boundary/realtime/message.hpp"
#include "core/deflate_codec.hpp"
#include "core/frame.hpp"
#include "core/permessage_deflate.hpp"

namespace boundary::realtime::core {
namespace {

std::optional<DeflateAgreement> agreement(std::uint8_t bits, bool client_nct) {
  return DeflateAgreement{bits, client_nct};
}

TEST(PermessageDeflate, PlainOfferIsAccepted) {
  EXPECT_EQ(negotiate_deflate("permessage-deflate"), agreement(0, false));
  EXPECT_EQ(negotiate_deflate("Permessage-Deflate"), agreement(0, false));
}

TEST(PermessageDeflate, BrowserOfferIsAccepted) {
  EXPECT_EQ(negotiate_deflate("permessage-deflate; client_max_window_bits"), agreement(0, false));
}

TEST(PermessageDeflate, ParametersAreRead) {
  EXPECT_EQ(negotiate_deflate("permessage-deflate; client_no_context_takeover; server_max_window_bits=10"),
            agreement(10, true));
  EXPECT_EQ(negotiate_deflate("permessage-deflate;server_max_window_bits=\"8\""), agreement(8, false));
  EXPECT_EQ(negotiate_deflate("permessage-deflate; server_no_context_takeover; client_max_window_bits=15"),
            agreement(0, false));
}

TEST(PermessageDeflate, InvalidOffersAreDeclined) {
  for (const char* offer : {
           "permessage-deflate; server_max_window_bits=7", "permessage-deflate; server_max_window_bits=16",
           "permessage-deflate; server_max_window_bits=08", "permessage-deflate; server_max_window_bits",
           "permessage-deflate; client_max_window_bits=1", "permessage-deflate; client_no_context_takeover=true",
           "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
           "permessage-deflate; client_max_window_bits; client_max_window_bits=9", "permessage-deflate; unknown",
           "permessage-deflate; server_max_window_bits=\"1 0\"", "x-webkit-deflate-frame", ""}) {
    EXPECT_EQ(negotiate_deflate(offer), std::nullopt) << offer;
  }
}

TEST(PermessageDeflate, NextOfferIsTriedAfterADeclinedOne) {
  EXPECT_EQ(negotiate_deflate("permessage-deflate; unknown, permessage-deflate; server_max_window_bits=12"),
            agreement(12, false));
  EXPECT_EQ(negotiate_deflate("foo, , permessage-deflate"), agreement(0, false));
}

TEST(PermessageDeflate, MalformedHeaderDeclinesEverything) {
  for (const char* header : {"permessage-deflate;", "permessage-deflate; a=", "permessage-deflate; a=\"unterminated",
                             "permessage-deflate x", ";permessage-deflate", "permessage-deflate; =1"}) {
    EXPECT_EQ(negotiate_deflate(header), std::nullopt) << header;
  }
}

TEST(PermessageDeflate, ResponseAlwaysHasServerNoContextTakeover) {
  EXPECT_EQ(deflate_response({0, false}), "permessage-deflate; server_no_context_takeover");
  EXPECT_EQ(deflate_response({9, true}),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9");
}

std::string sample_json() {
  std::string s = R"({"type":"order","items":[)";
  for (int i = 0; i < 20; ++i) s += R"({"sku":"SKU-)" + std::to_string(i) + R"(","name":"Blue widget"},)";
  s += R"({}]})";
  return s;
}

TEST(DeflateCodec, RoundTripsAndShrinks) {
  const std::string json = sample_json();
  const std::string packed = deflate_message(json);
  ASSERT_FALSE(packed.empty());
  EXPECT_LT(packed.size(), json.size() / 3);
  Inflater inflater;
  std::string out;
  EXPECT_EQ(inflater.inflate(packed, json.size(), out, true), Inflater::Result::ok);
  EXPECT_EQ(out, json);
}

TEST(DeflateCodec, SmallOrIncompressibleStaysPlain) {
  EXPECT_TRUE(deflate_message(R"({"type":"x"})").empty());
  std::string noise;
  std::uint32_t x = 12345;
  for (int i = 0; i < 300; ++i) noise += static_cast<char>((x = x * 1103515245 + 12345) >> 24);
  EXPECT_TRUE(deflate_message(noise).empty());
}

TEST(DeflateCodec, OutputNeverPassesTheLimit) {
  const std::string big(1 << 20, 'a');
  const std::string packed = deflate_message(big);
  ASSERT_FALSE(packed.empty());
  Inflater inflater;
  std::string out;
  EXPECT_EQ(inflater.inflate(packed, 1000, out, false), Inflater::Result::too_big);
  EXPECT_LE(out.size(), 1000u);
  EXPECT_LE(out.capacity(), 64u * 1024);  // grown in chunks up to the limit, not to the claim
  // The stream was reset: it serves the next message.
  EXPECT_EQ(inflater.inflate(deflate_message(sample_json()), 1 << 20, out, false), Inflater::Result::ok);
  EXPECT_EQ(out, sample_json());
}

TEST(DeflateCodec, CorruptDataIsReported) {
  Inflater inflater;
  std::string out;
  EXPECT_EQ(inflater.inflate("\xff\xff\xff\xff", 1000, out, true), Inflater::Result::corrupt);
}

TEST(DeflateCodec, MemoryIsCounted) {
  Inflater inflater;
  const auto initial = inflater.memory_bytes();
  EXPECT_GT(initial, 0u);
  std::string out;
  ASSERT_EQ(inflater.inflate(deflate_message(sample_json()), 1 << 20, out, false), Inflater::Result::ok);
  EXPECT_GE(inflater.memory_bytes(), initial + 32 * 1024);  // the window, once a message needed it
}

TEST(InboundDecoderDeflate, Rsv1IsAnErrorUntilNegotiated) {
  auto frame = encode_client_frame(Opcode::text, "abc", {1, 2, 3, 4});
  frame[0] = static_cast<char>(frame[0] | 0x40);
  InboundDecoder plain(1000);
  auto bytes = std::span(reinterpret_cast<std::uint8_t*>(frame.data()), frame.size());
  EXPECT_EQ(plain.next(bytes).error, FrameError::reserved_bits);

  auto frame2 = encode_client_frame(Opcode::text, "\xff\xfe", {1, 2, 3, 4});  // not UTF-8: not checked yet
  frame2[0] = static_cast<char>(frame2[0] | 0x40);
  InboundDecoder negotiated(1000);
  negotiated.accept_compressed();
  const auto step = negotiated.next(std::span(reinterpret_cast<std::uint8_t*>(frame2.data()), frame2.size()));
  EXPECT_EQ(step.kind, DecodeStep::Kind::text);
  EXPECT_TRUE(step.compressed);
}

TEST(InboundDecoderDeflate, Rsv1OnControlOrContinuationIsAnError) {
  InboundDecoder d(1000);
  d.accept_compressed();
  auto ping = encode_client_frame(Opcode::ping, "", {1, 2, 3, 4});
  ping[0] = static_cast<char>(ping[0] | 0x40);
  EXPECT_EQ(d.next(std::span(reinterpret_cast<std::uint8_t*>(ping.data()), ping.size())).error,
            FrameError::reserved_bits);

  InboundDecoder f(1000);
  f.accept_compressed();
  auto first = encode_client_frame(Opcode::text, "ab", {1, 2, 3, 4}, false);
  first[0] = static_cast<char>(first[0] | 0x40);
  EXPECT_EQ(f.next(std::span(reinterpret_cast<std::uint8_t*>(first.data()), first.size())).kind,
            DecodeStep::Kind::need_more);
  auto cont = encode_client_frame(Opcode::continuation, "cd", {1, 2, 3, 4});
  cont[0] = static_cast<char>(cont[0] | 0x40);
  EXPECT_EQ(f.next(std::span(reinterpret_cast<std::uint8_t*>(cont.data()), cont.size())).error,
            FrameError::reserved_bits);
}

TEST(MessageDeflate, CompressedFrameIsBuiltOnceAndShared) {
  const auto m = Message::from_json(sample_json());
  const auto a = m.compressed_for(15);
  const auto b = Message(m).compressed_for(15);
  ASSERT_TRUE(a.compressed());
  EXPECT_EQ(a.frame().data(), b.frame().data());        // one buffer for every recipient
  EXPECT_EQ(m.frame()[0], '\x81');                       // the plain frame is untouched
  EXPECT_EQ(static_cast<unsigned char>(a.frame()[0]), 0xC1u);  // FIN + RSV1 + text
  EXPECT_EQ(a.json(), m.json());
  EXPECT_LT(a.frame_bytes(), m.frame_bytes());
}

TEST(MessageDeflate, PlainWhenTooSmallTooLongForTheWindowOrControl) {
  EXPECT_FALSE(Message::from_json(R"({"type":"x"})").compressed_for(15).compressed());
  const auto m = Message::from_json(sample_json());  // about 900 bytes
  EXPECT_FALSE(m.compressed_for(9).compressed());     // longer than a 512-byte window
  EXPECT_TRUE(m.compressed_for(10).compressed());
  EXPECT_FALSE(Message::from_wire(std::string(200, 'a')).compressed_for(15).compressed());
}

}  // namespace
}  // namespace boundary::realtime::core
