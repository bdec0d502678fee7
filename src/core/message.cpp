#include "boundary/realtime/message.hpp"

#include <array>
#include <cstring>

#include "core/deflate_codec.hpp"
#include "core/frame.hpp"

namespace boundary::realtime {
namespace {
constexpr std::uint8_t rsv1_bit = 0x40;
}  // namespace

Message Message::from_json(std::string_view json) {
  std::array<std::uint8_t, 10> header{};
  const auto header_bytes = core::write_frame_header(header, core::Opcode::text, json.size());
  auto body = std::make_shared<Body>();
  body->wire.reserve(header_bytes + json.size());
  body->wire.append(reinterpret_cast<const char*>(header.data()), header_bytes);
  body->wire.append(json);
  body->header_bytes = static_cast<std::uint32_t>(header_bytes);
  body->compressible = true;
  Message m;
  m.body_ = std::move(body);
  return m;
}

Message Message::from_wire(std::string bytes, std::size_t header_bytes) {
  auto body = std::make_shared<Body>();
  body->header_bytes = static_cast<std::uint32_t>(header_bytes <= bytes.size() ? header_bytes : bytes.size());
  body->wire = std::move(bytes);
  Message m;
  m.body_ = std::move(body);
  return m;
}

Message Message::compressed_for(std::uint8_t window_bits) const {
  if (!body_ || !body_->compressible || deflated_) return *this;
  const std::string_view payload = json();
  if (payload.size() < core::min_deflate_payload) return *this;
  if (window_bits < 15 && payload.size() > (std::size_t{1} << window_bits)) return *this;
  Body& body = *body_;
  std::call_once(body.deflate_once, [&body, payload] {
    std::string compressed = core::deflate_message(payload);
    if (compressed.empty()) return;
    std::array<std::uint8_t, 10> header{};
    const auto n = core::write_frame_header(header, core::Opcode::text, compressed.size());
    header[0] |= rsv1_bit;
    body.deflated_wire.reserve(n + compressed.size());
    body.deflated_wire.append(reinterpret_cast<const char*>(header.data()), n);
    body.deflated_wire.append(compressed);
  });
  if (body.deflated_wire.empty()) return *this;
  Message m = *this;
  m.deflated_ = true;
  return m;
}

const Message::Alternate& Message::alternate(AlternateBuilder build) const {
  static const Alternate none;
  if (!body_) return none;
  Body& body = *body_;
  std::call_once(body.alternate_once, [&body, this, build] {
    body.alternate = std::make_unique<Alternate>(build(json()));
  });
  return *body.alternate;
}

}  // namespace boundary::realtime
