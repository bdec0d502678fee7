#include "core/envelope.hpp"

#include <chrono>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "boundary/realtime/message.hpp"

namespace boundary::realtime::core {
namespace {
namespace json = boost::json;
using namespace std::chrono;

system_clock::time_point noon_2025() { return sys_days{year{2025} / January / 1} + hours{12}; }

json::object parsed(const Message& m) { return json::parse(m.json()).as_object(); }

// ---------------------------------------------------------------------------------------------
// Timestamps

TEST(Timestamp, FormatsIso8601UtcWithMilliseconds) {
  EXPECT_EQ(format_timestamp(noon_2025()), "2025-01-01T12:00:00.000Z");
  EXPECT_EQ(format_timestamp(noon_2025() + minutes{34} + seconds{56} + milliseconds{789}),
            "2025-01-01T12:34:56.789Z");
}

TEST(Timestamp, RoundsDownToTheMillisecond) {
  EXPECT_EQ(format_timestamp(noon_2025() + microseconds{999}), "2025-01-01T12:00:00.000Z");
  EXPECT_EQ(format_timestamp(noon_2025() + nanoseconds{999'999'999}), "2025-01-01T12:00:00.999Z");
  EXPECT_EQ(format_timestamp(noon_2025() + milliseconds{1} + microseconds{999}), "2025-01-01T12:00:00.001Z");
}

TEST(Timestamp, HandlesDayAndYearBoundaries) {
  EXPECT_EQ(format_timestamp(system_clock::time_point{}), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_timestamp(sys_days{year{2024} / February / 29} + hours{23} + minutes{59} + seconds{59} +
                             milliseconds{999}),
            "2024-02-29T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(sys_days{year{2026} / January / 1} - milliseconds{1}), "2025-12-31T23:59:59.999Z");
  EXPECT_EQ(format_timestamp(sys_days{year{2100} / March / 1} + hours{7}), "2100-03-01T07:00:00.000Z");
}

// ---------------------------------------------------------------------------------------------
// make_envelope

TEST(Envelope, AddsTimestampWhenAbsent) {
  auto m = make_envelope({{"type", "note"}, {"n", 1}}, noon_2025());
  EXPECT_EQ(parsed(m), json::parse(R"({"type":"note","n":1,"timestamp":"2025-01-01T12:00:00.000Z"})"));
}

TEST(Envelope, KeepsExistingTimestamp) {
  auto m = make_envelope({{"type", "note"}, {"timestamp", "yesterday"}}, noon_2025());
  EXPECT_EQ(parsed(m).at("timestamp"), json::value("yesterday"));
  auto n = make_envelope({{"type", "note"}, {"timestamp", 17}}, noon_2025());
  EXPECT_EQ(parsed(n).at("timestamp"), json::value(17));
}

TEST(Envelope, AddsTopicOnlyForTopicSends) {
  EXPECT_FALSE(parsed(make_envelope({{"type", "note"}}, noon_2025())).contains("topic"));
  EXPECT_EQ(parsed(make_envelope({{"type", "note"}}, noon_2025(), "order:1")).at("topic"), json::value("order:1"));
}

TEST(Envelope, KeepsExistingTopic) {
  auto m = make_envelope({{"type", "note"}, {"topic", "mine"}}, noon_2025(), "order:1");
  EXPECT_EQ(parsed(m).at("topic"), json::value("mine"));
}

TEST(Envelope, KeepsEveryOtherField) {
  auto m = make_envelope(json::parse(R"({"type":"t","a":{"b":[1,"x",null]},"c":true})").as_object(),
                         noon_2025(), "tp");
  EXPECT_EQ(parsed(m), json::parse(R"({"type":"t","a":{"b":[1,"x",null]},"c":true,"topic":"tp",)"
                                   R"("timestamp":"2025-01-01T12:00:00.000Z"})"));
}

TEST(Envelope, ConnectedCarriesTheIdentityAndATimestamp) {
  Identity who{"42", {"admin", "user"}, {}, {}, {}};
  auto m = make_connected("c-1", who, noon_2025());
  EXPECT_EQ(parsed(m), json::parse(R"({"type":"connected","connection-id":"c-1","user-id":"42",)"
                                   R"("roles":["admin","user"],"timestamp":"2025-01-01T12:00:00.000Z"})"));
}

// ---------------------------------------------------------------------------------------------
// Message framing

TEST(MessageFrame, IsHeaderPlusJson) {
  auto m = Message::from_json(R"({"type":"x"})");
  ASSERT_EQ(m.frame_bytes(), 2 + m.json().size());
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[0]), 0x81);  // FIN + text, never masked
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[1]), m.json().size());
  EXPECT_EQ(m.frame().substr(2), R"({"type":"x"})");
  EXPECT_EQ(m.json(), R"({"type":"x"})");
}

TEST(MessageFrame, PayloadOf125BytesUsesTheShortForm) {
  const std::string json = R"({"type":")" + std::string(125 - 11, 'a') + "\"}";
  ASSERT_EQ(json.size(), 125u);
  auto m = Message::from_json(json);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[1]), 125);
  EXPECT_EQ(m.frame_bytes(), 127u);
  EXPECT_EQ(m.json(), json);
}

TEST(MessageFrame, PayloadOver125BytesUses16BitLength) {
  const std::string json = R"({"type":")" + std::string(126 - 11, 'a') + "\"}";
  ASSERT_EQ(json.size(), 126u);
  auto m = Message::from_json(json);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[0]), 0x81);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[1]), 126);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[2]), 0);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[3]), 126);
  EXPECT_EQ(m.frame_bytes(), 4 + json.size());
  EXPECT_EQ(m.json(), json);

  const std::string big = R"({"type":")" + std::string(65535 - 11, 'b') + "\"}";
  ASSERT_EQ(big.size(), 65535u);
  auto b = Message::from_json(big);
  EXPECT_EQ(static_cast<unsigned char>(b.frame()[1]), 126);
  EXPECT_EQ(static_cast<unsigned char>(b.frame()[2]), 0xFF);
  EXPECT_EQ(static_cast<unsigned char>(b.frame()[3]), 0xFF);
  EXPECT_EQ(b.json(), big);
}

TEST(MessageFrame, PayloadOver65535BytesUses64BitLength) {
  const std::string json = R"({"type":")" + std::string(70000 - 11, 'c') + "\"}";
  ASSERT_EQ(json.size(), 70000u);
  auto m = Message::from_json(json);
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[1]), 127);
  std::uint64_t length = 0;
  for (int i = 2; i < 10; ++i) length = (length << 8) | static_cast<unsigned char>(m.frame()[i]);
  EXPECT_EQ(length, 70000u);
  EXPECT_EQ(m.frame_bytes(), 10 + json.size());
  EXPECT_EQ(m.json(), json);
}

TEST(MessageFrame, CopiesShareOneBuffer) {
  auto m = Message::from_json(R"({"type":"x"})");
  Message copy = m;
  EXPECT_EQ(copy.frame().data(), m.frame().data());
  EXPECT_TRUE(static_cast<bool>(copy));
  EXPECT_FALSE(static_cast<bool>(Message{}));
  EXPECT_TRUE(Message{}.json().empty());
}

TEST(MessageFrame, EnvelopeProducesOneFramedMessage) {
  auto m = make_envelope({{"type", "note"}}, noon_2025(), "t");
  EXPECT_EQ(m.frame().substr(m.frame_bytes() - m.json().size()), m.json());
  EXPECT_EQ(static_cast<unsigned char>(m.frame()[1]), m.json().size());
}

}  // namespace
}  // namespace boundary::realtime::core
