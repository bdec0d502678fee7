#pragma once
// Client-side TLS for the load generator (--tls): OpenSSL on the same non-blocking sockets and
// level-triggered epoll as the plain clients. The certificate is not verified: the generator
// measures a loopback server started with a throwaway certificate, not a trust decision. TLS 1.2+,
// ALPN http/1.1, no session resumption (every connect is a full handshake, as for a new client).

#include <cstddef>
#include <string_view>

struct ssl_st;

namespace loadgen {

enum class TlsWant { none, read, write, failed };

// A client SSL on `fd` (connected), or null when OpenSSL cannot make one.
ssl_st* tls_new(int fd);
void tls_free(ssl_st* ssl) noexcept;

// One handshake step: none when done, else what to wait for (or failed).
TlsWant tls_handshake(ssl_st* ssl);

// Bytes read (> 0), or 0 with `want` set (read/write: try again on that readiness; failed:
// closed or broken).
std::size_t tls_read(ssl_st* ssl, char* data, std::size_t size, TlsWant& want);
// Bytes written (partial writes on), or 0 with `want` set. After 0 with read/write, call again
// with at least the same bytes.
std::size_t tls_write(ssl_st* ssl, std::string_view bytes, TlsWant& want);
// Decrypted bytes waiting inside OpenSSL (epoll will not report them).
bool tls_pending(ssl_st* ssl) noexcept;

}  // namespace loadgen
