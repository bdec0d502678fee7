#pragma once
// One keep-alive HTTP/1.1 client for the server API, one request in flight (no pipelining:
// the publisher measures the API path as a client that waits for each answer would see it).
// Reconnects lazily when the server closed an idle connection; a connection lost with a
// request in flight is reported, never retried (a retry could deliver a message twice).

#include <netinet/in.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "reactor.hpp"

struct ssl_st;

namespace loadgen {

class HttpHandler {
 public:
  virtual ~HttpHandler() = default;
  virtual void on_response(int status, std::string_view body, Nanos now) = 0;
  virtual void on_http_error(const std::string& why, Nanos now) = 0;
};

class HttpClient {
 public:
  // `tls`: https (tls.hpp), a TLS handshake on each new connection.
  HttpClient(Reactor& reactor, sockaddr_in address, std::string host_header, std::uint64_t key,
             HttpHandler& handler, bool tls = false);
  ~HttpClient();

  bool busy() const noexcept { return busy_; }
  std::uint64_t connects() const noexcept { return connects_; }

  // Sends one request; the caller must wait for on_response/on_http_error before the next.
  void request(std::string_view method, std::string_view path, std::string_view bearer, std::string_view body);
  void on_event(std::uint32_t events);

 private:
  void connect();
  void handshake();
  void flush();
  void close_socket();
  void on_readable();
  void parse_response();
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
  bool busy_ = false;
  bool close_after_ = false;
  std::uint32_t events_ = 0;
  std::uint64_t connects_ = 0;
  std::string out_;
  std::string in_;
};

}  // namespace loadgen
