#pragma once
// RFC 7692 message compression over zlib (raw DEFLATE), kept behind this header so that zlib's
// own headers stay in deflate_codec.cpp. Pure computation: no I/O, no clocks.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace boundary::realtime::core {

// Payloads shorter than this go out uncompressed (RSV1 clear): a JSON message this small saves
// a few bytes at best once deflate's block header is paid, and costs a compression pass.
inline constexpr std::size_t min_deflate_payload = 64;

// `payload` compressed on its own (no context carried over: server_no_context_takeover), the
// trailing 00 00 FF FF of the sync flush removed (RFC 7692 7.2.1). Empty when the result would
// not be shorter than `payload`. Uses one deflate stream per thread (about 270 KiB, made on
// first use and reset per message).
std::string deflate_message(std::string_view payload);

// One inbound inflate stream. With context takeover (the client keeps its window across
// messages) a connection owns one; otherwise the loop shares one and resets it per message.
class Inflater {
 public:
  enum class Result { ok, too_big, corrupt };

  Inflater();
  ~Inflater();
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;

  // Decompresses one message's payload (RFC 7692 7.2.2: the 00 00 FF FF tail is supplied here)
  // into `out`, replacing its contents. `out` never grows past `max_bytes`: past it, too_big. After
  // an error the stream is reset (a shared one stays usable; the connection is closed anyway). `reset_after`: forget the window after this message
  // (client_no_context_takeover).
  Result inflate(std::string_view payload, std::size_t max_bytes, std::string& out, bool reset_after);

  // Bytes zlib holds for this stream now (its state and, once a message needed it, the 32 KiB
  // window).
  std::size_t memory_bytes() const noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace boundary::realtime::core
