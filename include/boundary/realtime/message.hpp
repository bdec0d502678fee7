#pragma once
// An outbound message, encoded once: the JSON text and its WebSocket frame share one immutable
// buffer, and every recipient holds a reference to the same bytes (no per-recipient JSON work
// or copy). Copying a Message copies a pointer.

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace boundary::realtime {

class Message {
 public:
  Message() = default;

  // `json` must be one serialized JSON object; it is framed as a single text frame.
  static Message from_json(std::string_view json);
  // Bytes already encoded for the wire (control frames, the upgrade response): `header_bytes`
  // of them precede the payload that json() returns.
  static Message from_wire(std::string bytes, std::size_t header_bytes = 0);

  std::string_view json() const noexcept {
    return frame_ ? std::string_view(*frame_).substr(header_bytes_) : std::string_view();
  }
  // The complete server-to-client text frame (header + payload).
  std::string_view frame() const noexcept { return frame_ ? std::string_view(*frame_) : std::string_view(); }
  std::size_t frame_bytes() const noexcept { return frame_ ? frame_->size() : 0; }
  explicit operator bool() const noexcept { return static_cast<bool>(frame_); }

 private:
  std::shared_ptr<const std::string> frame_;
  std::size_t header_bytes_ = 0;
};

}  // namespace boundary::realtime
