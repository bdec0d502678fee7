#include "tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace loadgen {
namespace {

SSL_CTX* context() {
  static SSL_CTX* ctx = [] {
    SSL_CTX* c = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_CTX_set_alpn_protos(c, alpn, sizeof alpn);
    return c;
  }();
  return ctx;
}

TlsWant classify(SSL* ssl, int ret) {
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ: return TlsWant::read;
    case SSL_ERROR_WANT_WRITE: return TlsWant::write;
    default: ERR_clear_error(); return TlsWant::failed;
  }
}

}  // namespace

ssl_st* tls_new(int fd) {
  SSL* ssl = SSL_new(context());
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

void tls_free(ssl_st* ssl) noexcept { SSL_free(ssl); }

TlsWant tls_handshake(ssl_st* ssl) {
  ERR_clear_error();
  const int ret = SSL_do_handshake(ssl);
  return ret == 1 ? TlsWant::none : classify(ssl, ret);
}

std::size_t tls_read(ssl_st* ssl, char* data, std::size_t size, TlsWant& want) {
  ERR_clear_error();
  std::size_t n = 0;
  if (SSL_read_ex(ssl, data, size, &n) == 1) {
    want = TlsWant::none;
    return n;
  }
  want = classify(ssl, 0);
  return 0;
}

std::size_t tls_write(ssl_st* ssl, std::string_view bytes, TlsWant& want) {
  ERR_clear_error();
  std::size_t n = 0;
  if (SSL_write_ex(ssl, bytes.data(), bytes.size(), &n) == 1) {
    want = TlsWant::none;
    return n;
  }
  want = classify(ssl, 0);
  return 0;
}

bool tls_pending(ssl_st* ssl) noexcept { return SSL_pending(ssl) > 0; }

}  // namespace loadgen
