#include "server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

extern char** environ;

namespace boundary::realtime::itest {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Clock = std::chrono::steady_clock;
using tcp = asio::ip::tcp;

namespace {

constexpr Duration startup_deadline = 10s;
// Between health probes while the server starts: a back-off inside a bounded poll, not a
// synchronisation point (nothing tells a client that a port has started listening).
constexpr Duration probe_backoff = 20ms;

std::string quote_for_shell(const std::string& word) {
  std::string out = "'";
  for (char c : word) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "wait status " + std::to_string(status);
}

}  // namespace

bool run_until(asio::io_context& ioc, const std::function<bool()>& done, Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!done()) {
    const auto now = Clock::now();
    if (now >= deadline) return false;
    if (ioc.stopped()) ioc.restart();
    if (ioc.run_one_for(deadline - now) == 0 && ioc.stopped()) return done();
  }
  return true;
}

std::string server_binary() {
  if (const char* env = std::getenv("REALTIME_SERVER"); env != nullptr && *env != '\0') return env;
  const auto here = std::filesystem::path(__FILE__).parent_path();
  return (here / ".." / ".." / "build" / "release" / "realtime-server").lexically_normal().string();
}

// A loopback port free now, chosen at random below the kernel's ephemeral range: a port from
// bind(0) lies in that range, so an outgoing connection of a test running in parallel could take
// it before the server binds it. Ports this process returned are not returned again.
std::uint16_t free_port() {
  static std::mutex mutex;
  static std::set<std::uint16_t> handed_out;
  const std::lock_guard lock(mutex);
  int low = 32768;
  if (std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range"); range) range >> low;
  low = std::min(low, 65536);
  asio::io_context ioc;
  if (low > 12000) {
    thread_local std::mt19937 rng{std::random_device{}()};
    std::uniform_int_distribution<int> pick(10000, low - 1);
    for (int attempt = 0; attempt < 200; ++attempt) {
      const auto port = static_cast<std::uint16_t>(pick(rng));
      if (handed_out.contains(port)) continue;
      tcp::acceptor acceptor(ioc);
      boost::system::error_code ec;
      acceptor.open(tcp::v4(), ec);
      if (!ec) acceptor.bind(tcp::endpoint(asio::ip::make_address(loopback), port), ec);
      if (ec) continue;
      handed_out.insert(port);
      return port;
    }
  }
  tcp::acceptor acceptor(ioc, tcp::endpoint(asio::ip::make_address(loopback), 0));
  return acceptor.local_endpoint().port();
}

std::string random_alnum(std::size_t length) {
  static constexpr std::string_view alphabet =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::string out(length, ' ');
  for (auto& c : out) c = alphabet[pick(rng)];
  return out;
}

// ---------------------------------------------------------------------------------------------
// HttpConnection

struct HttpConnection::State {
  explicit State(asio::io_context& ioc) : stream(ioc) {}
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
};

HttpConnection::HttpConnection(asio::io_context& ioc, std::uint16_t port) : ioc_(ioc), port_(port) {}

HttpConnection::~HttpConnection() {
  if (state_) state_->stream.close();
}

void HttpConnection::connect(Duration timeout) {
  auto s = std::make_shared<State>(ioc_);
  auto result = std::make_shared<std::optional<beast::error_code>>();
  s->stream.expires_after(timeout);
  s->stream.async_connect(tcp::endpoint(asio::ip::make_address(loopback), port_),
                          [s, result](beast::error_code ec) { *result = ec; });
  if (!run_until(ioc_, [&] { return result->has_value(); }, timeout + 1s)) {
    s->stream.close();
    throw std::runtime_error("HTTP connect timed out");
  }
  if (**result) throw std::runtime_error("HTTP connect: " + (*result)->message());
  s->stream.expires_never();
  state_ = std::move(s);
  ++connects_;
}

HttpReply HttpConnection::request(http::verb verb, const std::string& target, const std::string& body,
                                  const std::string& bearer, Duration timeout) {
  if (!state_ || !state_->stream.socket().is_open()) connect(timeout);
  auto s = state_;
  s->req = {};
  s->req.method(verb);
  s->req.target(target);
  s->req.version(11);
  s->req.set(http::field::host, std::string(loopback) + ":" + std::to_string(port_));
  if (!bearer.empty()) s->req.set(http::field::authorization, "Bearer " + bearer);
  if (!body.empty()) s->req.set(http::field::content_type, "application/json");
  s->req.body() = body;
  s->req.keep_alive(true);
  s->req.prepare_payload();
  s->res = {};

  auto result = std::make_shared<std::optional<beast::error_code>>();
  s->stream.expires_after(timeout);
  http::async_write(s->stream, s->req, [s, result](beast::error_code ec, std::size_t) {
    if (ec) {
      *result = ec;
      return;
    }
    http::async_read(s->stream, s->buffer, s->res,
                     [s, result](beast::error_code ec2, std::size_t) { *result = ec2; });
  });
  const bool finished = run_until(ioc_, [&] { return result->has_value(); }, timeout + 1s);
  const auto fail = [&](const std::string& why) {
    s->stream.close();
    state_.reset();
    throw std::runtime_error(std::string(http::to_string(verb)) + " " + target + ": " + why);
  };
  if (!finished) fail("timed out");
  if (**result) fail((*result)->message());
  s->stream.expires_never();
  HttpReply reply{s->res.result_int(), s->res.body(), s->res.keep_alive()};
  if (!reply.keep_alive) {
    s->stream.close();
    state_.reset();
  }
  return reply;
}

// ---------------------------------------------------------------------------------------------
// ServerProcess

ServerProcess::ServerProcess(std::vector<std::string> extra_args)
    : binary_(server_binary()),
      port_(free_port()),
      jwt_secret_(random_alnum(48)),
      api_key_(random_alnum(32)) {
  args_ = {binary_, "--host", loopback, "--port", std::to_string(port_), "--jwt-secret", jwt_secret_,
           "--api-key", api_key_, "--threads", "2"};
  args_.insert(args_.end(), extra_args.begin(), extra_args.end());
}

ServerProcess::~ServerProcess() {
  stop();
  if (!log_path_.empty()) ::unlink(log_path_.c_str());
}

void ServerProcess::start() {
  if (::access(binary_.c_str(), X_OK) != 0)
    throw std::runtime_error("server binary not found: " + binary_ + " (set REALTIME_SERVER)");
  std::string path = (std::filesystem::temp_directory_path() / "realtime-server-XXXXXX.log").string();
  const int log_fd = ::mkstemps(path.data(), 4);
  if (log_fd < 0) throw std::runtime_error("cannot create the server log file");
  log_path_ = path;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  posix_spawn_file_actions_addclose(&actions, log_fd);
  std::vector<char*> argv;
  for (auto& arg : args_) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const int rc = ::posix_spawn(&pid_, binary_.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(log_fd);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("posix_spawn " + binary_ + ": " + std::strerror(rc));
  }

  asio::io_context ioc;
  const auto deadline = Clock::now() + startup_deadline;
  std::string last = "no probe yet";
  while (Clock::now() < deadline) {
    if (reap(false))
      throw std::runtime_error("server exited during startup (" + describe_status(*exit_status_) + ")");
    try {
      HttpConnection probe(ioc, port_);
      const auto reply = probe.request(http::verb::get, "/health/realtime", {}, {}, 1s);
      if (reply.status == 200) return;
      last = "HTTP " + std::to_string(reply.status);
    } catch (const std::exception& e) {
      last = e.what();
    }
    std::this_thread::sleep_for(probe_backoff);
  }
  kill_now();
  throw std::runtime_error("server not healthy within 10 s (last probe: " + last + ")");
}

bool ServerProcess::reap(bool block) {
  if (pid_ <= 0) return true;
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) return false;
  exit_status_ = status;
  pid_ = -1;
  return true;
}

bool ServerProcess::running() { return !reap(false); }

void ServerProcess::signal(int sig) const {
  if (pid_ > 0) ::kill(pid_, sig);
}

std::optional<int> ServerProcess::wait_exit(Duration timeout) {
  const auto deadline = Clock::now() + timeout;
  // A pidfd becomes readable when the process exits: an exact wait with a timeout.
  const int pidfd = pid_ > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)) : -1;
  while (!reap(false)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    if (pidfd >= 0) {
      pollfd p{pidfd, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    } else {
      std::this_thread::sleep_for(std::min<Duration>(left, 10ms));  // kernels without pidfd
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  if (pid_ > 0) return std::nullopt;
  return exit_status_;
}

std::optional<int> ServerProcess::stop(Duration timeout) {
  if (pid_ <= 0) return exit_status_;
  signal(SIGTERM);
  auto status = wait_exit(timeout);
  if (!status) kill_now();
  return status;
}

void ServerProcess::kill_now() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  reap(true);
}

std::string ServerProcess::token(const std::string& user_id, const std::vector<std::string>& roles,
                                 const std::string& secret) const {
  std::string cmd = quote_for_shell(binary_) + " token --secret " +
                    quote_for_shell(secret.empty() ? jwt_secret_ : secret) + " --user-id " +
                    quote_for_shell(user_id) + " --ttl 3600";
  if (!roles.empty()) {
    std::string joined;
    for (const auto& role : roles) joined += (joined.empty() ? "" : ",") + role;
    cmd += " --roles " + quote_for_shell(joined);
  }
  cmd += " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + cmd);
  std::string out;
  char chunk[512];
  while (std::size_t n = std::fread(chunk, 1, sizeof chunk, pipe)) out.append(chunk, n);
  const int status = ::pclose(pipe);
  while (!out.empty() && std::isspace(static_cast<unsigned char>(out.back()))) out.pop_back();
  const bool jwt_shaped = std::count(out.begin(), out.end(), '.') == 2 &&
                          out.find_first_of(" \n\t") == std::string::npos;
  if (status != 0 || !jwt_shaped)
    throw std::runtime_error("`realtime-server token` failed (" + describe_status(status) + "): " + out);
  return out;
}

std::string ServerProcess::log() const {
  std::ifstream in(log_path_, std::ios::binary);
  if (!in) return "<no log>";
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace boundary::realtime::itest
