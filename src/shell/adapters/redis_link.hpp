#pragma once
// One Redis connection on an Asio event loop: commands are RESP-encoded into an output buffer
// and written with one write in flight, so commands issued while a write is out are pipelined
// into the next one; replies are parsed with hiredis's reader and matched to their commands in
// order (or, on a subscriber connection, all handed to the push handler). Handlers get each reply
// as a core::RespValue: this file is the one place that reads hiredis's reply objects.
//
// Why not hiredis's async context: in hiredis 0.14 redisAsyncConnect resolves the host name
// synchronously (a blocking DNS call on an event loop), and its subscribe bookkeeping drops a
// channel's callback when an UNSUBSCRIBE confirmation arrives after a new SUBSCRIBE of the same
// channel, silently losing that channel's messages. Interests here come and go with
// connections, so that race is ordinary. hiredis still does the protocol: redisFormatCommandArgv
// and redisReader.
//
// Connecting is TCP, then (rediss://) a TLS handshake verifying the server's certificate and host
// name, then (with a password) AUTH; connect() reports only when all of it is done, bounded by
// connect_timeout. Every reconnect goes through all of it again. TLS is Asio's SSL stream over
// OpenSSL, kept in redis_link.cpp (RedisTls, TlsStream) so this header needs no SSL headers.
//
// Not thread-safe: every call comes from the loop that runs `io`.

#include <array>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/redis_cluster.hpp"

struct redisReader;

namespace boundary::realtime::shell {

// An OpenSSL client context for rediss:// (defined in redis_link.cpp).
class RedisTls;
struct RedisTlsFiles {
  std::string ca_file;    // PEM CA bundle; empty: the system's trust store
  std::string cert_file;  // client certificate chain (PEM), with key_file; empty: none
  std::string key_file;
};
// Throws std::invalid_argument naming the option and file that could not be loaded.
std::shared_ptr<RedisTls> make_redis_tls(const RedisTlsFiles& files);

// What every link of one broker connects with.
struct RedisLinkSettings {
  std::string user;               // ACL user; empty: AUTH <password>
  std::string password;           // empty: no AUTH. Never logged.
  std::shared_ptr<RedisTls> tls;  // null: plain TCP
};

// Why a connect() failed. `refused`: Redis rejected the credentials (WRONGPASS, NOAUTH,
// NOPERM), which retrying will not fix. The text never contains the password.
struct LinkError {
  enum class Kind { none, network, tls, refused };
  Kind kind = Kind::none;
  std::string text;
  explicit operator bool() const noexcept { return kind != Kind::none; }
};
// Whether a Redis error reply means the credentials were rejected or are missing.
bool is_auth_error(std::string_view error) noexcept;

class RedisLink {
 public:
  // nullptr: the connection was lost before the reply came. An error reply is a value (kind
  // error), not a failure: the link stays open.
  using ReplyHandler = std::function<void(const core::RespValue*)>;

  // Output not yet written past this bound means Redis stopped reading: the link fails rather
  // than grow without bound.
  static constexpr std::size_t max_output_bytes = 64u << 20;

  // TCP connect, TLS handshake and AUTH together take at most this long.
  static constexpr std::chrono::seconds connect_timeout{5};

  RedisLink(boost::asio::io_context& io, bool push_mode, std::shared_ptr<const RedisLinkSettings> settings = {});
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  void set_push_handler(ReplyHandler handler) { on_push_ = std::move(handler); }
  // Called once each time an open link fails (not after close()).
  void set_down_handler(std::function<void()> handler) { on_down_ = std::move(handler); }

  // `host`: the name the TLS certificate must carry (a DNS name or an IP address).
  void connect(const boost::asio::ip::tcp::resolver::results_type& endpoints, std::string host,
               std::function<void(const LinkError&)> done);
  // On a closed link the handler gets nullptr on a later turn of the loop.
  void command(std::initializer_list<std::string_view> argv, ReplyHandler on_reply = {});
  void command(std::span<const std::string_view> argv, ReplyHandler on_reply = {});
  // Closes the socket; pending replies get nullptr. Does not call the down handler.
  void close();
  bool is_open() const noexcept { return open_; }

 private:
  struct TlsStream;
  template <class F>
  void with_stream(F&& f);
  void on_tcp(const std::string& host);
  void authenticate();
  void connected(LinkError error);
  void do_write();
  void do_read();
  void on_read(unsigned gen, const boost::system::error_code& ec, std::size_t n);
  void fail();
  void reset();

  boost::asio::io_context& io_;
  boost::asio::ip::tcp::socket socket_;
  // The TLS stream of the current connection, shared with its pending operations so that a
  // close does not free it under them.
  std::shared_ptr<TlsStream> tls_;
  boost::asio::steady_timer connect_timer_;
  const bool push_mode_;
  std::shared_ptr<const RedisLinkSettings> settings_;
  std::function<void(const LinkError&)> on_connect_;  // set while connecting
  bool authenticating_ = false;  // the AUTH reply comes before any push
  redisReader* reader_ = nullptr;
  std::string out_;      // encoded, not yet handed to a write
  std::string writing_;  // the write in flight
  bool write_in_flight_ = false;
  bool open_ = false;
  unsigned generation_ = 0;  // handlers of an earlier connection are ignored
  std::deque<ReplyHandler> waiting_;
  std::array<char, 16 * 1024> in_{};
  ReplyHandler on_push_;
  std::function<void()> on_down_;
};

}  // namespace boundary::realtime::shell
