#include "http_client.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "http_head.hpp"
#include "tls.hpp"

namespace loadgen {

namespace {

constexpr std::size_t max_response_bytes = 1 << 20;

}  // namespace

HttpClient::HttpClient(Reactor& reactor, sockaddr_in address, std::string host_header, std::uint64_t key,
                       HttpHandler& handler, bool tls)
    : reactor_(reactor), address_(address), host_header_(std::move(host_header)), key_(key), handler_(handler),
      tls_(tls) {}

HttpClient::~HttpClient() {
  if (ssl_) tls_free(ssl_);
  if (fd_ >= 0) ::close(fd_);
}

void HttpClient::close_socket() {
  if (ssl_) tls_free(ssl_);
  ssl_ = nullptr;
  tls_ready_ = false;
  reactor_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
}

void HttpClient::handshake() {
  switch (tls_handshake(ssl_)) {
    case TlsWant::none: tls_ready_ = true; return flush();
    case TlsWant::read: return set_events(EPOLLIN);
    case TlsWant::write: return set_events(EPOLLIN | EPOLLOUT);
    case TlsWant::failed: return drop("tls handshake failed");
  }
}

void HttpClient::request(std::string_view method, std::string_view path, std::string_view bearer,
                         std::string_view body, std::uint64_t tag) {
  // After a `Connection: close` answer the socket is gone: what was pipelined behind it is lost.
  pending_.push_back({now_ns(), tag});
  out_.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: ").append(host_header_);
  if (!bearer.empty()) out_.append("\r\nAuthorization: Bearer ").append(bearer);
  out_.append("\r\nContent-Type: application/json\r\nContent-Length: ")
      .append(std::to_string(body.size()))
      .append("\r\n\r\n")
      .append(body);
  if (fd_ < 0) return connect();
  if (!connecting_) flush();
}

void HttpClient::connect() {
  const int fd = start_connect(address_, 0);
  if (fd < 0) return drop("connect: " + errno_name(-fd));
  fd_ = fd;
  connecting_ = true;
  ++connects_;
  events_ = EPOLLIN | EPOLLOUT;
  reactor_.add(fd_, events_, key_);
}

void HttpClient::set_events(std::uint32_t events) {
  if (events == events_) return;
  events_ = events;
  reactor_.modify(fd_, events_, key_);
}

void HttpClient::on_event(std::uint32_t events) {
  if (fd_ < 0) return;
  if (connecting_) {
    if (const int err = connect_result(fd_); err != 0) return drop("connect: " + errno_name(err));
    connecting_ = false;
    if (!tls_) return flush();
    ssl_ = tls_new(fd_);
    if (!ssl_) return drop("tls: cannot create a connection");
    return handshake();
  }
  if (ssl_ && !tls_ready_) return handshake();
  if ((events & EPOLLOUT) != 0) flush();
  if (fd_ >= 0 && (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0) on_readable();
}

void HttpClient::flush() {
  if (!out_.empty()) {
    long n;
    if (ssl_) {
      TlsWant want;
      n = static_cast<long>(tls_write(ssl_, out_, want));
      if (want == TlsWant::failed) return drop("tls write failed");
    } else {
      n = write_some(fd_, out_);
    }
    if (n < 0) return drop("write: " + errno_name(static_cast<int>(-n)));
    out_.erase(0, static_cast<std::size_t>(n));
  }
  set_events(out_.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void HttpClient::on_readable() {
  char buf[16 * 1024];
  ssize_t n;
  if (ssl_) {
    TlsWant want;
    n = static_cast<ssize_t>(tls_read(ssl_, buf, sizeof buf, want));
    if (n == 0 && want != TlsWant::failed) return;
  } else {
    n = ::recv(fd_, buf, sizeof buf, 0);
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    return drop("read: " + errno_name(errno));
  }
  if (n == 0) return drop("connection closed by server");
  in_.append(buf, static_cast<std::size_t>(n));
  if (in_.size() > max_response_bytes) return drop("response too large");
  while (fd_ >= 0 && !pending_.empty() && parse_response()) {
  }
  if (ssl_ && fd_ >= 0 && tls_pending(ssl_)) on_readable();  // decrypted bytes epoll will not report
}

bool HttpClient::parse_response() {
  const std::size_t end = in_.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  const std::string_view head(in_.data(), end + 4);
  int status = 0;
  if (head.size() < 12 || head.substr(0, 5) != "HTTP/" ||
      std::from_chars(head.data() + 9, head.data() + 12, status).ec != std::errc{})
    return drop("not an HTTP response"), false;
  const std::string_view length_text = header_value(head, "content-length");
  std::size_t length = 0;
  if (length_text.empty() ||
      std::from_chars(length_text.data(), length_text.data() + length_text.size(), length).ec != std::errc{})
    return drop("response without Content-Length"), false;
  if (in_.size() < end + 4 + length) return false;
  const std::string_view connection = header_value(head, "connection");
  close_after_ = connection.size() == 5 && strncasecmp(connection.data(), "close", 5) == 0;
  const std::string body = in_.substr(end + 4, length);
  in_.erase(0, end + 4 + length);
  const Pending p = pending_.front();
  pending_.pop_front();
  const Nanos now = now_ns();
  if (close_after_) {  // the next request reconnects; any pipelined behind this one are lost
    close_socket();
    in_.clear();
  }
  handler_.on_response(status, body, p.sent, p.tag, now);
  if (close_after_ && !pending_.empty()) {
    drop("connection closed by server");
    return false;
  }
  return true;
}

void HttpClient::drop(const std::string& why) {
  if (fd_ >= 0) close_socket();
  connecting_ = false;
  out_.clear();
  in_.clear();
  auto lost = std::move(pending_);
  pending_.clear();
  for (const auto& p : lost) handler_.on_http_error(why, p.tag, now_ns());
}

}  // namespace loadgen
