#include "shell/tls_link.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace boundary::realtime::shell {

TlsLink::~TlsLink() { SSL_free(ssl_); }  // the socket BIO does not close the fd

TlsLink::Result TlsLink::classify(int ret) {
  switch (SSL_get_error(ssl_, ret)) {
    case SSL_ERROR_WANT_READ: return {Status::want_read};
    case SSL_ERROR_WANT_WRITE: return {Status::want_write};
    case SSL_ERROR_ZERO_RETURN: return {Status::closed};
    case SSL_ERROR_SYSCALL:
      // EOF without close_notify, or a reset: the peer is gone either way.
      if (ERR_peek_error() == 0) return {Status::closed};
      [[fallthrough]];
    default: {
      char text[256];
      ERR_error_string_n(ERR_get_error(), text, sizeof text);
      last_error_ = text;
      ERR_clear_error();
      return {Status::failed};
    }
  }
}

// OpenSSL's error queue is per thread and shared by every connection of the loop: clear it before
// each call so that SSL_get_error reads this call's outcome only.
TlsLink::Result TlsLink::handshake() {
  ERR_clear_error();
  const int ret = SSL_accept(ssl_);
  if (ret == 1) return {Status::ok};
  return classify(ret);
}

TlsLink::Result TlsLink::read(void* data, std::size_t size) {
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_read_ex(ssl_, data, size, &n);
  if (ret == 1) return {Status::ok, n};
  return classify(ret);
}

TlsLink::Result TlsLink::write(const void* data, std::size_t size) {
  ERR_clear_error();
  std::size_t n = 0;
  const int ret = SSL_write_ex(ssl_, data, size, &n);
  if (ret == 1) return {Status::ok, n};
  return classify(ret);
}

bool TlsLink::has_buffered_input() const noexcept { return SSL_pending(ssl_) > 0; }

void TlsLink::send_close_notify() noexcept {
  if (close_notify_sent_) return;
  close_notify_sent_ = true;
  ERR_clear_error();
  SSL_shutdown(ssl_);  // does not wait for the peer's close_notify
  ERR_clear_error();
}

TlsLink::Result TlsLink::write_outbox() {
  Result r = write(outbox.data() + outbox_offset, outbox.size() - outbox_offset);
  if (r.status == Status::ok) outbox_offset += r.bytes;
  return r;
}

void TlsLink::release_outbox() noexcept {
  std::string().swap(outbox);
  outbox_offset = 0;
}

}  // namespace boundary::realtime::shell
