#pragma once
// One keep-alive HTTP/1.1 client for the server API. Requests may be pipelined (sent before
// the answers to the previous ones; answers come in request order); with one in flight at a
// time it measures the API path as a client that waits for each answer would see it.
// Reconnects lazily when the server closed an idle connection; a connection lost with requests
// in flight reports each of them, never retried (a retry could deliver a message twice).

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <deque>

#include "reactor.hpp"

struct ssl_st;

namespace loadgen {

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  // `sent`: when the request was sent; `tag`: what the caller gave request().
  virtual void on_response(int status, std::string_view body, Nanos sent, std::uint64_t tag, Nanos now) = 0;
  virtual void on_http_error(const std::string& why, std::uint64_t tag, Nanos now) = 0;
};

class HttpClient {
 public:
  // `tls`: https (tls.hpp), a TLS handshake on each new connection.
  HttpClient(Reactor& reactor, sockaddr_in address, std::string host_header, std::uint64_t key,
             HttpHandler& handler, bool tls = false);
  ~HttpClient();

  bool busy() const noexcept { return !pending_.empty(); }
  std::size_t in_flight() const noexcept { return pending_.size(); }
  std::uint64_t connects() const noexcept { return connects_; }

  // Sends one request, after those still in flight (pipelined); each is answered, in order,
  // by on_response or on_http_error with its `tag`.
  void request(std::string_view method, std::string_view path, std::string_view bearer, std::string_view body,
               std::uint64_t tag = 0);
  void on_event(std::uint32_t events);

 private:
  void connect();
  void handshake();
  void flush();
  void close_socket();
  void on_readable();
  bool parse_response();  // one answer; false when none is complete (or the connection dropped)
  void drop(const std::string& why);
  void set_events(std::uint32_t events);

  Reactor& reactor_;
  sockaddr_in address_;
  std::string host_header_;
  std::uint64_t key_;
  HttpHandler& handler_;
  int fd_ = -1;
  bool tls_ = false;
  ssl_st* ssl_ = nullptr;
  bool tls_ready_ = false;
  bool connecting_ = false;
  struct Pending {
    Nanos sent;
    std::uint64_t tag;
  };
  std::deque<Pending> pending_;
  bool close_after_ = false;
  std::uint32_t events_ = 0;
  std::uint64_t connects_ = 0;
  std::string out_;
  std::string in_;
};

}  // namespace loadgen
