#pragma once
// One connection's TLS state (--tls-cert): an OpenSSL SSL object on the connection's non-blocking
// socket. Every call returns at once; `want_read`/`want_write` say which readiness to wait for
// before calling again (TlsStream waits with Asio's async_wait, WsSession through the loop's
// Poller). No Asio here: both the HTTP phase (TlsStream) and the WebSocket phase (WsSession)
// drive it.
//
// Memory: OpenSSL's read and write buffers are released while idle (SSL_MODE_RELEASE_BUFFERS);
// `outbox` holds plaintext handed to SSL_write and not yet accepted, released once written.

#include <cstddef>
#include <cstdint>
#include <string>

struct ssl_st;

namespace boundary::realtime::shell {

class TlsLink {
 public:
  enum class Status : std::uint8_t { ok, want_read, want_write, closed, failed };
  struct Result {
    Status status;
    std::size_t bytes = 0;
  };

  explicit TlsLink(ssl_st* ssl) noexcept : ssl_(ssl) {}  // takes ownership; the fd is attached
  ~TlsLink();
  TlsLink(const TlsLink&) = delete;
  TlsLink& operator=(const TlsLink&) = delete;

  Result handshake();
  Result read(void* data, std::size_t size);
  // Partial writes are on: `bytes` may be less than `size`. After want_write, call again with at
  // least the same bytes (OpenSSL has already encrypted them).
  Result write(const void* data, std::size_t size);
  // Decrypted bytes already inside OpenSSL: the socket will not signal readability for them.
  bool has_buffered_input() const noexcept;
  // close_notify, once, best effort (a full send buffer drops it: the TCP FIN follows anyway).
  void send_close_notify() noexcept;
  // The failure behind the last `failed` (OpenSSL's error queue), for debug logs.
  const std::string& last_error() const noexcept { return last_error_; }

  // The WebSocket phase's write side: queued frames coalesced into one plaintext buffer, so that
  // they leave in few TLS records; [outbox_offset, size) is still to be written.
  std::string outbox;
  std::size_t outbox_offset = 0;
  Result write_outbox();
  void release_outbox() noexcept;
  bool outbox_empty() const noexcept { return outbox_offset >= outbox.size(); }

 private:
  Result classify(int ret);

  ssl_st* ssl_;
  std::string last_error_;
  bool close_notify_sent_ = false;
};

}  // namespace boundary::realtime::shell
