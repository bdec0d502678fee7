#pragma once
// Harness for the Beast integration tests: runs the REAL realtime-server binary on loopback
// and talks HTTP to it with Beast, sharing no code with the server.
//
// Every wait has a deadline. Beast's synchronous calls ignore tcp_stream expiries, so each
// operation here is an asynchronous one driven on the caller's io_context until it completes
// or its deadline passes: synchronous from the test's point of view, and bounded. All I/O of a
// test runs on one io_context in the test thread, so whichever wait is running also keeps
// every WebSocket client's read going (Beast answers pings only while a read is pending).
//
// Failures are thrown as std::runtime_error: gtest reports them as test failures, and the
// fixture then prints the server's log.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

namespace boundary::realtime::itest {

using Duration = std::chrono::steady_clock::duration;
using namespace std::chrono_literals;

inline constexpr Duration default_timeout = 5s;
inline constexpr const char* loopback = "127.0.0.1";

// Drives `ioc` until `done()` holds or `timeout` passes; returns done(). Returns early (false)
// when the io_context runs out of work, since nothing could then make `done()` true.
bool run_until(boost::asio::io_context& ioc, const std::function<bool()>& done, Duration timeout);

// Path of the server binary: $REALTIME_SERVER, else build/release/realtime-server in the
// source tree (for manual runs).
std::string server_binary();

// Binds 127.0.0.1:0, reads the port the kernel chose, closes.
std::uint16_t free_port();

std::string random_alnum(std::size_t length);

struct HttpReply {
  unsigned status = 0;
  std::string body;
  bool keep_alive = false;
};

// One HTTP/1.1 connection, reused for every request (keep-alive) until the server closes it.
class HttpConnection {
 public:
  HttpConnection(boost::asio::io_context& ioc, std::uint16_t port);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Throws on a transport error or when the exchange misses `timeout`. Opens the connection on
  // first use, and again after the server closed it (counted in connects()).
  HttpReply request(boost::beast::http::verb verb, const std::string& target,
                    const std::string& body = {}, const std::string& bearer = {},
                    Duration timeout = default_timeout);

  int connects() const { return connects_; }

 private:
  struct State;
  void connect(Duration timeout);

  boost::asio::io_context& ioc_;
  std::uint16_t port_;
  std::shared_ptr<State> state_;  // shared with pending handlers, which may outlive a timeout
  int connects_ = 0;
};

// The server as a child process, stdout and stderr captured in a temporary log file. The
// destructor stops it (SIGTERM, then SIGKILL past the deadline) and removes the log.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> extra_args = {});
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Spawns the server and waits until GET /health/realtime answers 200 (10 s deadline).
  void start();
  void signal(int sig) const;
  // Waits for the process to exit; the raw waitpid status, or nullopt past the deadline.
  std::optional<int> wait_exit(Duration timeout);
  // SIGTERM, wait, SIGKILL on timeout; the waitpid status of the first exit seen.
  std::optional<int> stop(Duration timeout = 10s);
  bool running();

  // Mints a token by running `realtime-server token` (so it also tests that subcommand).
  std::string token(const std::string& user_id, const std::vector<std::string>& roles,
                    const std::string& secret = {}) const;

  std::string log() const;
  std::uint16_t port() const { return port_; }
  const std::string& api_key() const { return api_key_; }
  const std::string& jwt_secret() const { return jwt_secret_; }

 private:
  void kill_now();
  bool reap(bool block);

  std::string binary_;
  std::vector<std::string> args_;
  std::uint16_t port_;
  std::string jwt_secret_;
  std::string api_key_;
  std::string log_path_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

}  // namespace boundary::realtime::itest
