#pragma once
// An HTTP connection: the /ws upgrade, the API, health, metrics and embedded routes, with
// keep-alive. Transient: once upgraded, the socket moves to a WsSession and this object goes.
// HttpSession is a plain TCP connection, HttpsSession one behind TLS (--tls-cert): the same
// code over Beast's basic_stream or over TlsStream (explicitly instantiated in the .cpp).

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "boundary/realtime/server.hpp"
#include "core/admission.hpp"
#include "shell/tcp_socket.hpp"
#include "shell/tls_stream.hpp"

namespace boundary::realtime::shell {

class Loop;

using PlainStream = boost::beast::basic_stream<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;

template <class Stream>
class BasicHttpSession : public std::enable_shared_from_this<BasicHttpSession<Stream>> {
 public:
  using Request = boost::beast::http::request<boost::beast::http::string_body>;
  static constexpr bool tls = std::is_same_v<Stream, TlsStream>;

  // `stream_args`: the socket (plain), or the socket and its TlsLink.
  template <class... StreamArgs>
  explicit BasicHttpSession(Loop& loop, StreamArgs&&... stream_args)
      : loop_(loop), stream_(std::forward<StreamArgs>(stream_args)...) {}
  void start();

 private:
  void on_handshake(const boost::system::error_code& ec);
  void do_read();
  void on_read(const boost::system::error_code& ec);
  // Pipelining: API requests already in the read buffer are parsed and dispatched at once (up to
  // max_in_flight), so that their fan-outs share one flush pass; answers still leave in order.
  void read_ahead();
  void dispatch(Request& req, bool keep_alive);
  void route(Request& req);
  void handle_upgrade(Request& req);
  void handle_pusher_upgrade(Request& req);
  // After the upgrade was accepted (token or Pusher app): admission, the connect hook, the 101
  // and the session. `pusher_app`: a Pusher connection of that app; `pusher_fatal`: the
  // pusher:error it is closed with at once (unknown key, unsupported protocol).
  void upgrade_to_websocket(Request& req, std::string_view key, std::string id, Identity identity,
                            std::optional<std::size_t> pusher_app,
                            std::optional<std::pair<int, std::string>> pusher_fatal = std::nullopt);
  // Counts (realtime_upgrades_refused_total), logs (rate-limited) and sends an upgrade's refusal.
  void refuse_upgrade(core::RefusalReason reason, HttpResponse response, std::string_view note = {});
  std::string describe_refusal(unsigned status, std::string_view note);
  void handle_api(Request& req);
  void handle_history(Request& req);  // GET /api/history
  void handle_presence(bool stats, Request& req);  // GET /api/presence, /api/presence-stats
  void handle_custom(const Server::RouteHandler& handler, Request& req);
  // Safe from any thread: the write happens on this session's loop.
  Server::Responder responder();
  // Answers the request being routed now.
  void respond(HttpResponse response);
  // Answers request number `seq`; answers leave in request order, those ready together in one write.
  void answer(std::uint64_t seq, HttpResponse response);
  void do_write();
  void do_close();

  // A request read and not yet answered (or answered, waiting for those before it).
  struct Pending {
    bool api = false;
    bool head = false;
    bool keep_alive = false;
    unsigned version = 11;
    std::optional<HttpResponse> response;
  };

  Loop& loop_;
  Stream stream_;
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::request_parser<boost::beast::http::string_body>> parser_;
  std::deque<Pending> pending_;       // in request order; front() is request number first_seq_
  std::uint64_t first_seq_ = 0;
  std::uint64_t current_seq_ = 0;     // the request being routed
  const Request* current_ = nullptr;  // the request being routed
  bool writing_ = false;
  bool write_posted_ = false;
  bool closing_ = false;              // an answer without keep-alive was written, or is being
  std::string out_;                   // answers being written
  std::uint32_t requests_ = 0;  // read so far on this connection
  bool awaited_keys_ = false;   // this upgrade already waited for a JWKS fetch (once at most)
};

using HttpSession = BasicHttpSession<PlainStream>;
using HttpsSession = BasicHttpSession<TlsStream>;
extern template class BasicHttpSession<PlainStream>;
extern template class BasicHttpSession<TlsStream>;

}  // namespace boundary::realtime::shell
