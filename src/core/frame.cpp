#include "core/frame.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "boundary/realtime/errors.hpp"
#include "core/utf8.hpp"

namespace boundary::realtime::core {

namespace {

constexpr std::uint8_t fin_bit = 0x80;
constexpr std::uint8_t rsv_bits = 0x70;
constexpr std::uint8_t rsv1_bit = 0x40;
constexpr std::uint8_t opcode_bits = 0x0F;
constexpr std::uint8_t mask_bit = 0x80;
constexpr std::uint8_t length_bits = 0x7F;
constexpr std::size_t max_control_payload = 125;
constexpr std::size_t mask_key_size = 4;
// A client frame is always masked, so no complete header is shorter than this.
constexpr std::size_t min_client_header = 2 + mask_key_size;

constexpr bool is_control(std::uint8_t op) noexcept { return (op & 0x8) != 0; }

constexpr bool is_known_opcode(std::uint8_t op) noexcept {
  return op <= 0x2 || (op >= 0x8 && op <= 0xA);
}

// Size of the extended length field that follows the first two header bytes: 0, 2 or 8.
constexpr std::size_t extended_length_size(std::uint8_t b1) noexcept {
  const auto len7 = b1 & length_bits;
  return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

// Requires 2 + extended_length_size(bytes[1]) bytes.
std::uint64_t read_length(std::span<const std::uint8_t> bytes) noexcept {
  const std::size_t ext = extended_length_size(bytes[1]);
  if (ext == 0) return bytes[1] & length_bits;
  std::uint64_t length = 0;
  for (std::size_t i = 0; i < ext; ++i) length = (length << 8) | bytes[2 + i];
  return length;
}

// Every violation visible in the first two bytes, given whether a fragmented message is open.
// RSV1 is allowed only when `accept_rsv1` (permessage-deflate) and only on a message's first
// frame (RFC 7692 6.1).
std::optional<FrameError> check_first_bytes(std::uint8_t b0, std::uint8_t b1,
                                            bool fragmented, bool accept_rsv1) noexcept {
  const std::uint8_t op = b0 & opcode_bits;
  const std::uint8_t allowed = accept_rsv1 && (op == 0x1 || op == 0x2) ? rsv1_bit : 0;
  if ((b0 & rsv_bits & ~allowed) != 0) return FrameError::reserved_bits;
  if (!is_known_opcode(op)) return FrameError::reserved_opcode;
  if ((b1 & mask_bit) == 0) return FrameError::unmasked_frame;
  if (is_control(op)) {
    if ((b0 & fin_bit) == 0) return FrameError::fragmented_control;
    // Any 126/127 length form already means > 125, so this needs no extended length bytes.
    if ((b1 & length_bits) > max_control_payload) return FrameError::control_too_long;
    return std::nullopt;
  }
  const auto opcode = static_cast<Opcode>(op);
  if (opcode == Opcode::binary) return FrameError::binary_message;
  if (opcode == Opcode::continuation && !fragmented) return FrameError::unexpected_continuation;
  if (opcode == Opcode::text && fragmented) return FrameError::expected_continuation;
  return std::nullopt;
}

std::optional<FrameError> check_length_form(std::uint8_t len7, std::uint64_t length) noexcept {
  if (len7 == 126 && length < 126) return FrameError::non_minimal_length;
  if (len7 == 127) {
    if ((length >> 63) != 0) return FrameError::length_high_bit;
    if (length <= 0xFFFF) return FrameError::non_minimal_length;
  }
  return std::nullopt;
}

// XOR eight bytes at a time: payloads are unmasked in place on every inbound frame.
void unmask(std::span<std::uint8_t> payload, const std::array<std::uint8_t, 4>& key) noexcept {
  std::array<std::uint8_t, 8> key8{};
  std::copy(key.begin(), key.end(), key8.begin());
  std::copy(key.begin(), key.end(), key8.begin() + 4);
  std::uint64_t key64 = 0;
  std::memcpy(&key64, key8.data(), sizeof key64);
  std::size_t i = 0;
  for (; i + 8 <= payload.size(); i += 8) {
    std::uint64_t word = 0;
    std::memcpy(&word, payload.data() + i, sizeof word);
    word ^= key64;
    std::memcpy(payload.data() + i, &word, sizeof word);
  }
  for (; i < payload.size(); ++i) payload[i] ^= key[i % 4];
}

std::string_view as_view(std::span<const std::uint8_t> bytes) noexcept {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

DecodeStep error_step(FrameError e) noexcept {
  DecodeStep step;
  step.kind = DecodeStep::Kind::error;
  step.error = e;
  return step;
}

DecodeStep payload_step(DecodeStep::Kind kind, std::string_view payload) noexcept {
  DecodeStep step;
  step.kind = kind;
  step.payload = payload;
  return step;
}

DecodeStep text_step(std::string_view message, bool compressed) noexcept {
  if (!compressed && !is_valid_utf8(message)) return error_step(FrameError::invalid_utf8);
  DecodeStep step = payload_step(DecodeStep::Kind::text, message);
  step.compressed = compressed;
  return step;
}

// RFC 6455 7.4: 1004-1006 and 1015 are reserved for local use and must never be on the wire;
// 1012-1014 and 1016-2999 are unassigned here, 3000-4999 are for libraries and applications.
constexpr bool is_receivable_close_code(std::uint16_t c) noexcept {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1011) || (c >= 3000 && c <= 4999);
}

DecodeStep close_step(std::string_view payload) noexcept {
  DecodeStep step = payload_step(DecodeStep::Kind::close, {});
  if (payload.empty()) {
    step.close_code = 1005;  // "no status received", as RFC 6455 7.1.5 reports it
    return step;
  }
  if (payload.size() == 1) return error_step(FrameError::bad_close_payload);
  const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(payload[0]) << 8) |
                                               static_cast<std::uint8_t>(payload[1]));
  if (!is_receivable_close_code(code)) return error_step(FrameError::bad_close_payload);
  const auto reason = payload.substr(2);
  if (!is_valid_utf8(reason)) return error_step(FrameError::invalid_utf8);
  step.close_code = code;
  step.payload = reason;
  return step;
}

}  // namespace

CloseCode close_code_for(FrameError e) noexcept {
  switch (e) {
    case FrameError::binary_message: return CloseCode::unsupported_data;
    case FrameError::invalid_utf8: return CloseCode::invalid_payload;
    case FrameError::bad_compressed_data: return CloseCode::invalid_payload;
    case FrameError::message_too_big: return CloseCode::message_too_big;
    default: return CloseCode::protocol_error;
  }
}

std::string_view to_string(FrameError e) noexcept {
  switch (e) {
    case FrameError::reserved_bits: return "reserved bits set";
    case FrameError::reserved_opcode: return "reserved opcode";
    case FrameError::unmasked_frame: return "unmasked client frame";
    case FrameError::fragmented_control: return "fragmented control frame";
    case FrameError::control_too_long: return "control frame payload over 125 bytes";
    case FrameError::non_minimal_length: return "non-minimal payload length encoding";
    case FrameError::length_high_bit: return "64-bit payload length with the high bit set";
    case FrameError::unexpected_continuation: return "continuation frame without a message";
    case FrameError::expected_continuation: return "new message before the previous one ended";
    case FrameError::bad_close_payload: return "invalid close frame payload";
    case FrameError::binary_message: return "binary messages are not supported";
    case FrameError::invalid_utf8: return "invalid UTF-8";
    case FrameError::message_too_big: return "message too big";
    case FrameError::bad_compressed_data: return "invalid compressed data";
  }
  return "unknown frame error";
}

struct InboundDecoder::Header {
  std::uint8_t opcode = 0;
  bool fin = false;
  bool rsv1 = false;
  std::uint64_t length = 0;
  std::size_t size = 0;  // header bytes, mask key included
  std::array<std::uint8_t, 4> mask{};
};

DecodeStep InboundDecoder::next(std::span<std::uint8_t> bytes) {
  if (release_pending_) {
    assembly_.reset();  // clear() would keep the capacity of the largest message
    release_pending_ = false;
  }
  Header h;
  FrameError e{};
  switch (parse_header(bytes, h, e)) {
    case HeaderStatus::error: return error_step(e);
    case HeaderStatus::incomplete: return {};
    case HeaderStatus::complete: break;
  }
  if (bytes.size() - h.size < h.length) return {};
  const auto payload = bytes.subspan(h.size, static_cast<std::size_t>(h.length));
  unmask(payload, h.mask);
  DecodeStep step = dispatch(h, payload);
  if (step.kind != DecodeStep::Kind::error) step.consumed = h.size + payload.size();
  return step;
}

// Reports a violation as soon as the bytes that show it are present, so an oversized or
// malformed frame is refused before its payload is waited for.
auto InboundDecoder::parse_header(std::span<const std::uint8_t> bytes, Header& h,
                                  FrameError& e) const -> HeaderStatus {
  if (bytes.size() < 2) return HeaderStatus::incomplete;
  if (auto err = check_first_bytes(bytes[0], bytes[1], fragmented_, accept_compressed_)) {
    e = *err;
    return HeaderStatus::error;
  }
  const std::size_t ext = extended_length_size(bytes[1]);
  if (bytes.size() < 2 + ext) return HeaderStatus::incomplete;
  h.opcode = bytes[0] & opcode_bits;
  h.fin = (bytes[0] & fin_bit) != 0;
  h.rsv1 = (bytes[0] & rsv1_bit) != 0;
  h.length = read_length(bytes);
  if (auto err = check_length_form(bytes[1] & length_bits, h.length)) {
    e = *err;
    return HeaderStatus::error;
  }
  // assembly_ never exceeds the limit, so the subtraction cannot wrap.
  const bool continues = h.opcode == static_cast<std::uint8_t>(Opcode::continuation);
  const std::size_t assembled = continues && assembly_ ? assembly_->size() : 0;
  if (!is_control(h.opcode) && h.length > max_message_bytes_ - assembled) {
    e = FrameError::message_too_big;
    return HeaderStatus::error;
  }
  h.size = 2 + ext + mask_key_size;
  if (bytes.size() < h.size) return HeaderStatus::incomplete;
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(2 + ext), mask_key_size, h.mask.begin());
  return HeaderStatus::complete;
}

DecodeStep InboundDecoder::dispatch(const Header& h, std::span<std::uint8_t> payload) {
  const auto view = as_view(payload);
  switch (static_cast<Opcode>(h.opcode)) {
    case Opcode::text: return on_text(h, view);
    case Opcode::continuation: return on_continuation(h, view);
    case Opcode::ping: return payload_step(DecodeStep::Kind::ping, view);
    case Opcode::pong: return payload_step(DecodeStep::Kind::pong, view);
    case Opcode::close: return close_step(view);
    case Opcode::binary: break;  // refused by parse_header
  }
  return error_step(FrameError::binary_message);
}

DecodeStep InboundDecoder::on_text(const Header& h, std::string_view payload) {
  if (h.fin) return text_step(payload, h.rsv1);  // the common case: no copy
  assembly_ = std::make_unique<std::string>(payload);
  fragmented_ = true;
  compressed_ = h.rsv1;
  return {};
}

// UTF-8 is checked once over the whole message: a code point may straddle fragments.
DecodeStep InboundDecoder::on_continuation(const Header& h, std::string_view payload) {
  assembly_->append(payload);  // parse_header refuses a continuation outside a fragmented message
  if (!h.fin) return {};
  fragmented_ = false;
  release_pending_ = true;  // the returned view points into assembly_ until the next call
  return text_step(*assembly_, compressed_);
}

std::size_t write_frame_header(std::span<std::uint8_t, 10> out, Opcode op, std::uint64_t length,
                               bool fin) noexcept {
  out[0] = static_cast<std::uint8_t>((fin ? fin_bit : 0) | static_cast<std::uint8_t>(op));
  if (length < 126) {
    out[1] = static_cast<std::uint8_t>(length);
    return 2;
  }
  if (length <= 0xFFFF) {
    out[1] = 126;
    out[2] = static_cast<std::uint8_t>(length >> 8);
    out[3] = static_cast<std::uint8_t>(length);
    return 4;
  }
  out[1] = 127;
  for (std::size_t i = 0; i < 8; ++i) out[2 + i] = static_cast<std::uint8_t>(length >> (56 - 8 * i));
  return 10;
}

std::string encode_frame(Opcode op, std::string_view payload) {
  std::array<std::uint8_t, 10> header{};
  const std::size_t n = write_frame_header(header, op, payload.size());
  std::string out;
  out.reserve(n + payload.size());  // the only allocation
  out.append(as_view(std::span(header).first(n)));
  out.append(payload);
  return out;
}

std::string encode_close_frame(CloseCode code, std::string_view reason) {
  // A truncated reason must still be UTF-8 or the peer fails the close with 1007.
  reason = truncate_utf8(reason, max_control_payload - 2);
  std::array<char, max_control_payload> payload{};
  const auto value = static_cast<std::uint16_t>(code);
  payload[0] = static_cast<char>(value >> 8);
  payload[1] = static_cast<char>(value & 0xFF);
  std::copy(reason.begin(), reason.end(), payload.begin() + 2);
  return encode_frame(Opcode::close, std::string_view(payload.data(), 2 + reason.size()));
}

std::string encode_client_frame(Opcode op, std::string_view payload,
                                std::array<std::uint8_t, 4> mask, bool fin) {
  std::array<std::uint8_t, 10> header{};
  const std::size_t n = write_frame_header(header, op, payload.size(), fin);
  header[1] |= mask_bit;
  std::string out;
  out.reserve(n + mask_key_size + payload.size());
  out.append(as_view(std::span(header).first(n)));
  out.append(as_view(mask));
  out.append(payload);
  auto* body = reinterpret_cast<std::uint8_t*>(out.data()) + n + mask_key_size;
  unmask(std::span(body, payload.size()), mask);  // XOR masking is its own inverse
  return out;
}

}  // namespace boundary::realtime::core
