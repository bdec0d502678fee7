#include "shell/tls_stream.hpp"

namespace boundary::realtime::shell {

TlsStream::TlsStream(TcpSocket socket, std::unique_ptr<TlsLink> link)
    : socket_(std::move(socket)),
      link_(std::move(link)),
      timer_(socket_.get_executor()),
      alive_(std::make_shared<bool>(true)) {}

TlsStream::~TlsStream() { *alive_ = false; }

void TlsStream::expires_after(std::chrono::steady_clock::duration timeout) {
  timed_out_ = false;
  timer_.expires_after(timeout);
  timer_.async_wait([this, alive = alive_](const boost::system::error_code& ec) {
    if (ec || !*alive) return;
    // The pending wait ends with operation_aborted; the operation reports the timeout.
    timed_out_ = true;
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  });
}

void TlsStream::expires_never() {
  timed_out_ = false;
  timer_.cancel();
}

TlsLink::Result TlsStream::step(Kind kind, void* data, std::size_t size) {
  switch (kind) {
    case Kind::handshake: return link_->handshake();
    case Kind::read: return link_->read(data, size);
    case Kind::write: return link_->write(data, size);
  }
  return {TlsLink::Status::failed};
}

void TlsStream::close() {
  timer_.cancel();
  if (link_) link_->send_close_notify();
  boost::system::error_code ec;
  socket_.shutdown(TcpSocket::shutdown_send, ec);
  socket_.close(ec);
}

std::pair<TcpSocket, std::unique_ptr<TlsLink>> TlsStream::release() {
  timer_.cancel();
  return {std::move(socket_), std::move(link_)};
}

}  // namespace boundary::realtime::shell
