#pragma once
// One HTTP/1.1 request over http:// or https:// (Beast, Asio SSL), for the subscribe proxy and
// the JWKS fetcher. One connection per request (`Connection: close`), no redirects followed (a
// 3xx is a reply like any other, and callers take only 200), one deadline for the whole exchange
// (resolve, connect, TLS handshake, write, read), a cap on the reply body.
// https verifies the peer's certificate chain (the system trust store, or one CA file) and that
// the certificate names the URL's host (DNS name or IP address); SNI is sent for names.

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/system/result.hpp>

#include "core/subscribe_proxy.hpp"

namespace boundary::realtime::shell {

// The TLS client settings every https request shares (an SSL_CTX: read-only once made, usable
// from every loop at once).
class HttpClientTls;

// `ca_file` empty: the system trust store (OpenSSL's default paths; SSL_CERT_FILE and
// SSL_CERT_DIR override them). Throws std::invalid_argument when the CA file cannot be read.
std::shared_ptr<const HttpClientTls> make_http_client_tls(const std::string& ca_file);

struct HttpCall {
  core::HttpUrl url;
  bool post = false;            // else GET
  std::string body;             // POST only, sent as application/json
  std::string authorization;    // the whole header value, or empty for none
  std::chrono::milliseconds timeout{2000};
  std::size_t max_body_bytes = 4096;
  std::vector<std::pair<std::string, std::string>> headers{};  // more request headers (name, value)
};

struct HttpReply {
  unsigned status = 0;
  std::string body;
  std::string cache_control;  // the header's value, or empty
};

// Error: what failed, for a log line ("connect: Connection refused", "timed out", ...).
using HttpDone = std::function<void(boost::system::result<HttpReply, std::string>)>;

// `done` is called exactly once, on `io`'s thread, never from inside http_call (also when the
// loop stops with the request pending: then it is destroyed uncalled). `tls` is needed for
// https URLs only.
void http_call(boost::asio::io_context& io, std::shared_ptr<const HttpClientTls> tls, HttpCall call, HttpDone done);

}  // namespace boundary::realtime::shell
