#pragma once
// The HTTP phase of a TLS connection (--tls-cert) as a Beast AsyncStream: the handshake, then
// reads and writes through the connection's TlsLink, waiting for socket readiness with
// async_wait. Like beast::basic_stream it has one deadline for whatever operation is pending
// (expires_after): past it the operation ends with beast::error::timeout. The handshake and the
// first request share one --handshake-timeout (HttpSession arms it once for both).
//
// On the upgrade, release() hands the socket and the TlsLink to the WebSocket session; bytes
// OpenSSL has already decrypted stay in the link (TlsLink::has_buffered_input).

#include <chrono>
#include <memory>
#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include "shell/tcp_socket.hpp"
#include "shell/tls_link.hpp"

namespace boundary::realtime::shell {

class TlsStream {
 public:
  using executor_type = boost::asio::io_context::executor_type;

  TlsStream(TcpSocket socket, std::unique_ptr<TlsLink> link);
  ~TlsStream();

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  TcpSocket& socket() noexcept { return socket_; }
  TlsLink& link() noexcept { return *link_; }

  void expires_after(std::chrono::steady_clock::duration timeout);
  void expires_never();

  template <class Token>
  auto async_handshake(Token&& token) {
    return run(Kind::handshake, nullptr, 0, std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_read_some(const Buffers& buffers, Token&& token) {
    auto b = first_nonempty<boost::asio::mutable_buffer>(buffers);
    return run(Kind::read, b.data(), b.size(), std::forward<Token>(token));
  }
  template <class Buffers, class Token>
  auto async_write_some(const Buffers& buffers, Token&& token) {
    auto b = first_nonempty<boost::asio::const_buffer>(buffers);
    return run(Kind::write, const_cast<void*>(b.data()), b.size(), std::forward<Token>(token));
  }

  // close_notify (best effort), then the socket.
  void close();
  std::pair<TcpSocket, std::unique_ptr<TlsLink>> release();

 private:
  enum class Kind : std::uint8_t { handshake, read, write };

  template <class Buffer, class Buffers>
  static Buffer first_nonempty(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers); it != boost::asio::buffer_sequence_end(buffers); ++it)
      if (Buffer b(*it); b.size() > 0) return b;
    return Buffer();
  }

  // One step of OpenSSL, then either a readiness wait and another step, or the completion. A
  // completion is never delivered inside the initiating call (it is posted), as Asio's own
  // operations guarantee.
  struct Op {
    TlsStream* stream;
    Kind kind;
    void* data;
    std::size_t size;
    bool waited = false;
    bool done = false;
    boost::system::error_code result_ec{};
    std::size_t result_bytes = 0;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}) {
      if (done) return self.complete(result_ec, result_bytes);
      if (stream->timed_out_) ec = boost::beast::error::timeout;
      if (!ec) {
        if (size == 0 && kind != Kind::handshake) return finish(self, {}, 0);
        const auto r = stream->step(kind, data, size);
        using S = TlsLink::Status;
        if (r.status == S::want_read || r.status == S::want_write) {
          waited = true;
          const auto wait = r.status == S::want_read ? TcpSocket::wait_read : TcpSocket::wait_write;
          return stream->socket_.async_wait(wait, std::move(self));
        }
        if (r.status == S::closed) ec = boost::asio::error::eof;
        else if (r.status == S::failed) ec = boost::asio::error::connection_aborted;
        return finish(self, ec, r.bytes);
      }
      finish(self, ec, 0);
    }

    template <class Self>
    void finish(Self& self, boost::system::error_code ec, std::size_t bytes) {
      if (waited) return self.complete(ec, bytes);
      done = true;
      result_ec = ec;
      result_bytes = bytes;
      boost::asio::post(stream->socket_.get_executor(), std::move(self));
    }
  };

  template <class Token>
  auto run(Kind kind, void* data, std::size_t size, Token&& token) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Op{this, kind, data, size}, token, socket_);
  }

  TlsLink::Result step(Kind kind, void* data, std::size_t size);

  TcpSocket socket_;
  std::unique_ptr<TlsLink> link_;
  boost::asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;  // the deadline's handler may run after this stream is gone
  bool timed_out_ = false;
};

}  // namespace boundary::realtime::shell
