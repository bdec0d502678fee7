#include "shell/adapters/tls_context.hpp"

#include <cstring>
#include <stdexcept>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>

namespace boundary::realtime::shell {
namespace {

std::string openssl_error() {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown error";
  const char* reason = ERR_reason_error_string(e);
  return reason ? reason : "error " + std::to_string(e);
}

// A key file with a passphrase would make OpenSSL prompt on the terminal: refuse it instead.
int no_passphrase(char*, int, int, void*) { return 0; }

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned inlen,
                void*) {
  static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, http11, sizeof http11, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

// Builds a context from the files; throws std::invalid_argument naming the option at fault.
CtxPtr build(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()), &SSL_CTX_free);
  if (!ctx) throw std::runtime_error("TLS: cannot create a context: " + openssl_error());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION |
                                     SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial and moving writes: the WebSocket phase writes from a buffer that may move between
  // retries. Released buffers: an idle TLS connection gives back OpenSSL's 2 x ~17 KiB buffers.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                  SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_default_passwd_cb(ctx.get(), no_passphrase);
  SSL_CTX_set_alpn_select_cb(ctx.get(), select_alpn, nullptr);
  if (FILE* f = std::fopen(cert_file.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw std::invalid_argument("--tls-cert: cannot read '" + cert_file + "': " + std::strerror(errno));
  }
  if (FILE* f = std::fopen(key_file.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw std::invalid_argument("--tls-key: cannot read '" + key_file + "': " + std::strerror(errno));
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1)
    throw std::invalid_argument("--tls-cert: '" + cert_file + "' is not a PEM certificate chain: " + openssl_error());
  // Read apart from the context so that a key of another certificate is told from a bad file.
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(nullptr, &EVP_PKEY_free);
  if (BIO* bio = BIO_new_file(key_file.c_str(), "rb")) {
    key.reset(PEM_read_bio_PrivateKey(bio, nullptr, no_passphrase, nullptr));
    BIO_free(bio);
  }
  if (!key)
    throw std::invalid_argument("--tls-key: '" + key_file + "' is not an unencrypted PEM private key: " +
                                openssl_error());
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx.get()), key.get()) != 1)
    throw std::invalid_argument("--tls-key: '" + key_file + "' is not the private key of the certificate in '" +
                                cert_file + "'");
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    throw std::invalid_argument("--tls-key: '" + key_file + "': " + openssl_error());
  ERR_clear_error();
  return ctx;
}

std::string describe_ctx(SSL_CTX* ctx) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (!cert) return "no certificate";
  char subject[256] = {0};
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  std::string serial = "?";
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  std::string expires = "?";
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(bio, X509_get0_notAfter(cert)) == 1) {
      char* data = nullptr;
      const long n = BIO_get_mem_data(bio, &data);
      expires.assign(data, static_cast<std::size_t>(n));
    }
    BIO_free(bio);
  }
  return "subject " + std::string(subject) + ", serial " + serial + ", expires " + expires;
}

}  // namespace

TlsContext::TlsContext(std::string cert_file, std::string key_file)
    : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {
  ctx_ = build(cert_file_, key_file_).release();
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

bool TlsContext::reload() {
  try {
    CtxPtr next = build(cert_file_, key_file_);
    const std::string what = describe_ctx(next.get());
    SSL_CTX* old;
    {
      std::lock_guard lock(mutex_);
      old = ctx_;
      ctx_ = next.release();
    }
    SSL_CTX_free(old);  // connections still using it hold their own references
    spdlog::info("TLS: reloaded {} and {}: {}", cert_file_, key_file_, what);
    return true;
  } catch (const std::exception& e) {
    spdlog::error("TLS: reload failed, still serving the previous certificate: {}", e.what());
    return false;
  }
}

ssl_st* TlsContext::new_ssl(int fd) {
  SSL* ssl;
  {
    std::lock_guard lock(mutex_);
    ssl = SSL_new(ctx_);  // holds its own reference to the context
  }
  if (!ssl) return nullptr;
  if (SSL_set_fd(ssl, fd) != 1) {
    SSL_free(ssl);
    return nullptr;
  }
  SSL_set_accept_state(ssl);
  return ssl;
}

std::string TlsContext::describe() const {
  std::lock_guard lock(mutex_);
  return describe_ctx(ctx_);
}

}  // namespace boundary::realtime::shell
