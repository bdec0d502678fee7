#include "shell/adapters/http_client.hpp"

#include <optional>
#include <stdexcept>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

class HttpClientTls {
 public:
  explicit HttpClientTls(const std::string& ca_file) : context_(ssl::context::tls_client) {
    context_.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    context_.set_verify_mode(ssl::verify_peer);
    error_code ec;
    if (ca_file.empty()) context_.set_default_verify_paths(ec);
    else context_.load_verify_file(ca_file, ec);
    ERR_clear_error();
    if (ec) throw std::invalid_argument("cannot read the CA file '" + ca_file + "': " + ec.message());
  }
  // Asio's stream takes a non-const context, but only reads it when making its SSL object.
  ssl::context& context() const { return context_; }

 private:
  mutable ssl::context context_;
};

std::shared_ptr<const HttpClientTls> make_http_client_tls(const std::string& ca_file) {
  return std::make_shared<const HttpClientTls>(ca_file);
}

namespace {

using Result = boost::system::result<HttpReply, std::string>;

tcp::socket& socket_of(beast::tcp_stream& s) { return s.socket(); }
tcp::socket& socket_of(beast::ssl_stream<beast::tcp_stream>& s) { return s.next_layer().socket(); }

// One request on one connection. Finishes once; whatever is pending when the deadline fires is
// cancelled by closing the socket.
template <class Stream>
class Exchange : public std::enable_shared_from_this<Exchange<Stream>> {
 public:
  template <class... StreamArgs>
  Exchange(asio::io_context& io, std::shared_ptr<const HttpClientTls> tls, HttpCall call, HttpDone done,
           StreamArgs&&... stream_args)
      : tls_(std::move(tls)), call_(std::move(call)), done_(std::move(done)), resolver_(io),
        stream_(std::forward<StreamArgs>(stream_args)...), deadline_(io) {}

  void start() {
    const auto& url = call_.url;
    request_.method(call_.post ? http::verb::post : http::verb::get);
    request_.target(url.target);
    request_.version(11);
    const bool default_port = url.port == (url.tls ? "443" : "80");
    const bool v6 = url.host.find(':') != std::string::npos;
    request_.set(http::field::host, (v6 ? "[" + url.host + "]" : url.host) + (default_port ? "" : ":" + url.port));
    if (!call_.authorization.empty()) request_.set(http::field::authorization, call_.authorization);
    for (const auto& [name, value] : call_.headers) request_.set(name, value);
    request_.set(http::field::connection, "close");
    if (call_.post) {
      request_.set(http::field::content_type, "application/json");
      request_.body() = std::move(call_.body);
    } else {
      request_.set(http::field::accept, "application/json");
    }
    request_.prepare_payload();
    parser_.body_limit(call_.max_body_bytes);
    auto self = this->shared_from_this();
    deadline_.expires_after(call_.timeout);
    deadline_.async_wait([self](const error_code& ec) {
      if (!ec) self->fail("timed out");
    });
    resolver_.async_resolve(url.host, url.port, [self](const error_code& ec, tcp::resolver::results_type r) {
      if (ec) return self->fail("resolve: " + ec.message());
      self->do_connect(r);
    });
  }

 private:
  void do_connect(const tcp::resolver::results_type& endpoints) {
    asio::async_connect(socket_of(stream_), endpoints, [self = this->shared_from_this()](const error_code& ec, const tcp::endpoint&) {
      if (ec) return self->fail("connect: " + ec.message());
      self->do_handshake();
    });
  }

  void do_handshake() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      do_write();
    } else {
      const auto& host = call_.url.host;
      error_code not_an_address;
      asio::ip::make_address(host, not_an_address);
      const bool ip_literal = !not_an_address;
      // SNI is for names only (RFC 6066 §3).
      if (!ip_literal && !SSL_set_tlsext_host_name(stream_.native_handle(), host.c_str())) {
        ERR_clear_error();
        return fail("TLS: cannot set the server name");
      }
      stream_.set_verify_callback(ssl::host_name_verification(host));
      stream_.async_handshake(ssl::stream_base::client, [self = this->shared_from_this()](const error_code& ec) {
        if (ec) return self->fail("TLS handshake: " + ec.message());
        self->do_write();
      });
    }
  }

  void do_write() {
    http::async_write(stream_, request_, [self = this->shared_from_this()](const error_code& ec, std::size_t) {
      if (ec) return self->fail("write: " + ec.message());
      http::async_read(self->stream_, self->buffer_, self->parser_, [self](const error_code& ec, std::size_t) {
        if (ec) return self->fail("read: " + ec.message());
        auto& reply = self->parser_.get();
        self->finish(HttpReply{reply.result_int(), std::move(reply.body()),
                               std::string(reply[http::field::cache_control])});
      });
    });
  }

  void fail(std::string why) { finish(Result(boost::system::in_place_error, std::move(why))); }

  void finish(Result result) {
    if (finished_) return;
    finished_ = true;
    deadline_.cancel();
    resolver_.cancel();
    error_code ec;
    socket_of(stream_).close(ec);
    // Failed TLS calls leave entries on this thread's OpenSSL error queue; the next OpenSSL user
    // on this loop must not read them as its own.
    ERR_clear_error();
    done_(std::move(result));
  }

  std::shared_ptr<const HttpClientTls> tls_;  // keeps the SSL_CTX alive as long as the stream
  HttpCall call_;
  HttpDone done_;
  tcp::resolver resolver_;
  Stream stream_;
  asio::steady_timer deadline_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  bool finished_ = false;
};

}  // namespace

void http_call(asio::io_context& io, std::shared_ptr<const HttpClientTls> tls, HttpCall call, HttpDone done) {
  if (!call.url.tls) {
    std::make_shared<Exchange<beast::tcp_stream>>(io, nullptr, std::move(call), std::move(done), io)->start();
    return;
  }
  if (!tls) {
    asio::post(io, [done = std::move(done)] { done(Result(boost::system::in_place_error, "https without TLS settings")); });
    return;
  }
  auto& context = tls->context();
  std::make_shared<Exchange<beast::ssl_stream<beast::tcp_stream>>>(io, std::move(tls), std::move(call), std::move(done),
                                                                   io, context)
      ->start();
}

}  // namespace boundary::realtime::shell
