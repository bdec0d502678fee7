#pragma once
// An outbound message, encoded once: the JSON text and its WebSocket frame share one immutable
// buffer, and every recipient holds a reference to the same bytes (no per-recipient JSON work
// or copy). Copying a Message copies a pointer.
//
// permessage-deflate: the compressed frame (RSV1 set) is built at most once per message, the
// first time a recipient that negotiated the extension asks for it, next to the plain one;
// every such recipient then shares it.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

namespace boundary::realtime {

class Message {
 public:
  Message() = default;

  // `json` must be one serialized JSON object; it is framed as a single text frame.
  static Message from_json(std::string_view json);
  // Bytes already encoded for the wire (control frames, the upgrade response): `header_bytes`
  // of them precede the payload that json() returns. Never compressed.
  static Message from_wire(std::string bytes, std::size_t header_bytes = 0);

  std::string_view json() const noexcept {
    return body_ ? std::string_view(body_->wire).substr(body_->header_bytes) : std::string_view();
  }
  // The complete server-to-client frame (header + payload): the compressed one for a Message
  // that compressed_for() returned, else the plain text frame.
  std::string_view frame() const noexcept {
    if (!body_) return {};
    return deflated_ ? std::string_view(body_->deflated_wire) : std::string_view(body_->wire);
  }
  std::size_t frame_bytes() const noexcept { return frame().size(); }
  explicit operator bool() const noexcept { return static_cast<bool>(body_); }
  bool compressed() const noexcept { return deflated_; }

  // This message as a recipient that negotiated permessage-deflate with an inflate window of
  // 2^window_bits receives it: the shared compressed frame (compressed once, on the first call,
  // thread-safe), or the plain one when the message is too small to gain, does not shrink,
  // was built from_wire, or is longer than the recipient's window (it is compressed with
  // 32 KiB; RFC 7692 lets any message go uncompressed).
  Message compressed_for(std::uint8_t window_bits) const;

  // The message in another wire protocol (the Pusher protocol, docs/pusher.md): built from
  // json() at most once, on the first call (thread-safe), by `build`, and then shared by every
  // recipient that speaks that protocol. One alternate form per message: every caller passes
  // the same `build`, which also names who must not receive it (Alternate, below).
  struct Alternate;
  using AlternateBuilder = Alternate (*)(std::string_view json);
  const Alternate& alternate(AlternateBuilder build) const;

 private:
  struct Body {
    std::string wire;
    std::string deflated_wire;  // empty until built, and when compressing does not pay
    std::uint32_t header_bytes = 0;
    bool compressible = false;
    std::once_flag deflate_once;
    std::unique_ptr<Alternate> alternate;  // null until built
    std::once_flag alternate_once;
  };
  std::shared_ptr<Body> body_;  // immutable once shared, except deflated_wire under deflate_once
  bool deflated_ = false;
};

struct Message::Alternate {
  Message message;
  std::string excluded;       // a connection id
  std::string excluded_user;  // a user id: none of this user's connections receives it
};

}  // namespace boundary::realtime
