#pragma once
// A plain HTTP connection: the /ws upgrade, the API, health, metrics and embedded routes, with
// keep-alive. Transient: once upgraded, the socket moves to a WsSession and this object goes.

#include <memory>
#include <optional>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "boundary/realtime/server.hpp"
#include "core/admission.hpp"
#include "shell/tcp_socket.hpp"

namespace boundary::realtime::shell {

class Loop;

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;

  HttpSession(Loop& loop, TcpSocket socket);
  void start();

 private:
  void do_read();
  void on_read(const boost::system::error_code& ec);
  void route(Request& req);
  void handle_upgrade(Request& req);
  // Counts (realtime_upgrades_refused_total), logs (rate-limited) and sends an upgrade's refusal.
  void refuse_upgrade(core::RefusalReason reason, HttpResponse response, std::string_view note = {});
  std::string describe_refusal(unsigned status, std::string_view note);
  void handle_api(Request& req);
  void handle_custom(const Server::RouteHandler& handler, Request& req);
  // Safe from any thread: the write happens on this session's loop.
  Server::Responder responder();
  void respond(HttpResponse response);
  void do_close();

  Loop& loop_;
  boost::beast::basic_stream<boost::asio::ip::tcp, boost::asio::io_context::executor_type> stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  std::uint32_t requests_ = 0;  // read so far on this connection
  bool awaited_keys_ = false;   // this upgrade already waited for a JWKS fetch (once at most)
};

}  // namespace boundary::realtime::shell
