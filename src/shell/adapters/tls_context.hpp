#pragma once
// The server's TLS configuration (--tls-cert, --tls-key): an OpenSSL SSL_CTX built from the PEM
// files, swapped whole by reload() (SIGHUP). A connection takes the context current when it is
// accepted and keeps it for life (SSL_new holds a reference): a reload never touches connections
// already open, and a failed reload keeps the previous context.
//
// Policy: TLS 1.2 and 1.3 only, OpenSSL's default cipher suites (forward secret only at the
// system's security level), no renegotiation, no compression, ALPN answers http/1.1 (the only
// protocol this port speaks; a client offering only h2 gets no ALPN answer and may give up).

#include <memory>
#include <mutex>
#include <string>

struct ssl_ctx_st;
struct ssl_st;

namespace boundary::realtime::shell {

class TlsContext {
 public:
  // Throws std::invalid_argument naming the option when a file is missing or unreadable, is not
  // PEM, or the key does not belong to the certificate.
  TlsContext(std::string cert_file, std::string key_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // Re-reads both files. On success new connections use them; on failure (logged at error) the
  // previous certificate stays. Returns whether the new files are in use. Blocks on file I/O:
  // never call it from a loop thread.
  bool reload();

  // A server-side SSL for an accepted socket, or null when OpenSSL cannot allocate one.
  ssl_st* new_ssl(int fd);

  // "subject ..., serial ..., expires ..." of the certificate in use, for logs.
  std::string describe() const;

 private:
  std::string cert_file_;
  std::string key_file_;
  mutable std::mutex mutex_;  // taken once per accepted connection and per reload
  ssl_ctx_st* ctx_ = nullptr;
};

}  // namespace boundary::realtime::shell
