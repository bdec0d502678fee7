#pragma once
// RFC 6455 framing: an incremental decoder for client frames and encoders for server frames.
// Pure: no I/O, no allocation on the decode path except when a fragmented message has to be
// assembled. Limits are checked from the header, before any payload is buffered.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <memory>
#include <string>
#include <string_view>

#include "boundary/realtime/errors.hpp"
#include "core/utf8.hpp"  // the decoder validates text with it

namespace boundary::realtime::core {

enum class Opcode : std::uint8_t {
  continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xA,
};

// One named error per violation; each maps to the close code the server answers with.
enum class FrameError {
  reserved_bits,          // RSV2/3 set, or RSV1 without permessage-deflate, on a
                          // continuation or on a control frame             -> 1002
  reserved_opcode,        // opcode 3-7 or 0xB-0xF                         -> 1002
  unmasked_frame,         // client frames must be masked                  -> 1002
  fragmented_control,     // control frame with FIN clear                  -> 1002
  control_too_long,       // control payload over 125 bytes                -> 1002
  non_minimal_length,     // 126/127 length form used for a small length   -> 1002
  length_high_bit,        // 64-bit length with the most significant bit   -> 1002
  unexpected_continuation,// continuation with no message in progress      -> 1002
  expected_continuation,  // new data frame while a fragmented one is open -> 1002
  bad_close_payload,      // close payload of 1 byte, or an invalid code   -> 1002
  binary_message,         // binary data frame                             -> 1003
  invalid_utf8,           // text message or close reason not UTF-8        -> 1007
  message_too_big,        // message (all fragments) over the limit        -> 1009
                          // (compressed: the inflated size over the limit)
  bad_compressed_data,    // permessage-deflate data that does not inflate  -> 1007
};

CloseCode close_code_for(FrameError e) noexcept;
std::string_view to_string(FrameError e) noexcept;

// What one call to InboundDecoder::next() produced.
struct DecodeStep {
  enum class Kind { need_more, text, ping, pong, close, error };
  Kind kind = Kind::need_more;
  std::size_t consumed = 0;      // how far the caller must advance (may be > 0 on need_more)
  std::string_view payload;      // text message, ping/pong payload, or close reason
  std::uint16_t close_code = 0;  // for close: the peer's code, 1005 when the frame had none
  FrameError error{};            // for error
  // For text: RSV1 was set on the message's first frame (permessage-deflate). The payload is
  // then compressed: its UTF-8 is not checked here, and the limit applied is to the compressed
  // size; the caller inflates with a bounded output and checks both.
  bool compressed = false;
};

// Per-connection decoder state. Small (a few dozen bytes) while no fragmented message is open.
// Usage: the caller feeds the bytes it has and always advances by `consumed`, which is 0 or one
// whole frame. need_more comes in two forms:
//   - consumed == 0: the front frame is incomplete; keep the tail, append bytes, call again.
//   - consumed  > 0: a non-final text fragment was absorbed into the assembly buffer; advance
//     and call again at once (more frames may already be buffered).
// Limits and header violations are reported as soon as the header bytes are present, before
// the payload arrives, so the caller never buffers an oversized frame. On error, consumed is 0
// and the caller closes with close_code_for(error); the decoder must not be used afterwards.
// A complete frame is unmasked in place, so bytes the decoder consumed must not be re-fed.
// Payload views point into the caller's buffer or into the decoder's assembly buffer; they stay
// valid until the next call or until the caller's buffer changes.
class InboundDecoder {
 public:
  // `max_message_bytes` is at most 2^32 - 1 (--max-message-bytes is at most 1 GiB).
  explicit InboundDecoder(std::size_t max_message_bytes)
      : max_message_bytes_(static_cast<std::uint32_t>(std::min<std::size_t>(max_message_bytes, UINT32_MAX))) {}

  DecodeStep next(std::span<std::uint8_t> bytes);
  // After permessage-deflate was negotiated: RSV1 on a data message's first frame marks it
  // compressed instead of being an error.
  void accept_compressed() noexcept { accept_compressed_ = true; }


 private:
  struct Header;
  enum class HeaderStatus { incomplete, complete, error };

  HeaderStatus parse_header(std::span<const std::uint8_t> bytes, Header& h, FrameError& e) const;
  DecodeStep dispatch(const Header& h, std::span<std::uint8_t> payload);
  DecodeStep on_text(const Header& h, std::string_view payload);
  DecodeStep on_continuation(const Header& h, std::string_view payload);

  // Fragments of the open message, allocated only while one is open (released after delivery):
  // every connection holds a decoder, few ever send fragmented messages.
  std::unique_ptr<std::string> assembly_;
  // 32 bits (the limit is at most 1 GiB), next to the flags: 16 bytes per decoder instead of 24.
  std::uint32_t max_message_bytes_;
  bool fragmented_ = false;
  bool release_pending_ = false;  // assembly_ was delivered; free it on the next call
  bool accept_compressed_ = false;
  bool compressed_ = false;       // the open fragmented message is compressed
};

// Server frames (never masked). The header is at most 10 bytes; `length` must be below 2^63.
std::size_t write_frame_header(std::span<std::uint8_t, 10> out, Opcode op, std::uint64_t length,
                               bool fin = true) noexcept;
std::string encode_frame(Opcode op, std::string_view payload);
// The reason is cut (at a UTF-8 boundary) so the close payload stays within 125 bytes.
std::string encode_close_frame(CloseCode code, std::string_view reason = {});

// Client frames (masked), for tests, benchmarks and the load generator.
std::string encode_client_frame(Opcode op, std::string_view payload, std::array<std::uint8_t, 4> mask,
                                bool fin = true);

}  // namespace boundary::realtime::core
