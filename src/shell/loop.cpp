#include "shell/loop.hpp"

#include <cerrno>

#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <spdlog/spdlog.h>

#include "shell/adapters/tls_context.hpp"
#include "shell/http_session.hpp"
#include "shell/node.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;

namespace {
// Scratch read size: one read per readiness event takes at most this much from one socket, so
// one busy client cannot starve the rest of the loop.
constexpr std::size_t read_buffer_bytes = 64 * 1024;
// Idle and token-expiry checks run at least four times per idle timeout, and at least once a
// second (a connection is closed within about a second of its token's exp).
constexpr auto max_sweep_interval = std::chrono::milliseconds(1000);
constexpr auto accept_backoff = std::chrono::milliseconds(100);
// Connections taken from the listen queue per wakeup of the acceptor. A completion handler waits
// behind everything else queued on the loop, so taking one connection per completion lets a
// reconnect storm fill the listen queue while the loop is busy sending; after a batch the accept
// is re-armed, so other work on the loop still runs between batches.
constexpr int accept_batch = 64;

bool aborted_before_accept(const error_code& ec) {
  // The peer gave up while its connection waited in the listen queue: not an accept failure.
  return ec == asio::error::connection_aborted || ec.value() == EPROTO;
}
}  // namespace

Loop::Loop(Node& node, unsigned index)
    : node_(node),
      index_(index),
      read_buffer_(read_buffer_bytes),
      acceptor_(io_),
      accept_retry_(io_),
      sweep_timer_(io_) {}

Loop::~Loop() {
  join();
  poller_.stop();
}

void Loop::schedule_flush(std::shared_ptr<WsSession> session) {
  flush_pending_.push_back(std::move(session));
  post_flush();
}

void Loop::schedule_answer(std::function<void()> write) {
  answers_pending_.push_back(std::move(write));
  post_flush();
}

void Loop::post_flush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(io_, [this] { flush_all(); });
}

Loop::Inflated Loop::inflate(const void* owner, bool context_takeover, std::string_view payload,
                             std::size_t max_bytes) {
  // The scratch string keeps the capacity of the largest message inflated on this loop (at most
  // --max-message-bytes) unless it passed 64 KiB.
  if (inflated_.capacity() > 64 * 1024) std::string().swap(inflated_);
  std::unique_ptr<core::Inflater>& slot = context_takeover ? inflaters_[owner] : shared_inflater_;
  const bool fresh = !slot;
  if (fresh) slot = std::make_unique<core::Inflater>();
  const auto before = fresh ? 0 : static_cast<std::int64_t>(slot->memory_bytes());
  const auto result = slot->inflate(payload, max_bytes, inflated_, !context_takeover);
  const auto after = static_cast<std::int64_t>(slot->memory_bytes());
  node_.metrics().inflate_memory_bytes.fetch_add(after - before, std::memory_order_relaxed);
  return {result, inflated_};
}

void Loop::drop_inflater(const void* owner) {
  auto it = inflaters_.find(owner);
  if (it == inflaters_.end()) return;
  node_.metrics().inflate_memory_bytes.fetch_sub(static_cast<std::int64_t>(it->second->memory_bytes()),
                                                 std::memory_order_relaxed);
  inflaters_.erase(it);
}

void Loop::flush_all() {
  if (!answers_pending_.empty() && !flush_deferred_) {
    // HTTP API requests in this pass: go behind the reactor once more, so that requests that
    // arrived on other connections meanwhile are dispatched first and their messages share
    // this pass's writes (one epoll_wait per pass, against a write per subscriber saved).
    flush_deferred_ = true;
    asio::post(io_, [this] { flush_all(); });
    return;
  }
  flush_deferred_ = false;
  flush_posted_ = false;
  auto answers = std::move(answers_pending_);
  answers_pending_.clear();
  for (auto& write : answers) write();
  auto pending = std::move(flush_pending_);
  flush_pending_.clear();
  for (auto& s : pending) s->flush();
}

void Loop::track_closing(std::shared_ptr<WsSession> session) { closing_.push_back(std::move(session)); }

void Loop::ensure_port_free(const asio::ip::tcp::endpoint& endpoint) {
  // SO_REUSEPORT would let a second server on the same port silently take half the traffic:
  // a plain bind first fails with "address in use" if anything is listening there.
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io);
  probe.open(endpoint.protocol());
  probe.set_option(asio::socket_base::reuse_address(true));
  error_code ec;
  probe.bind(endpoint, ec);
  if (ec)
    throw std::system_error(ec, "cannot listen on " + endpoint.address().to_string() + ":" +
                                    std::to_string(endpoint.port()));
}

void Loop::listen(const asio::ip::tcp::endpoint& endpoint) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(asio::socket_base::reuse_address(true));
  int one = 1;
  ::setsockopt(acceptor_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  acceptor_.bind(endpoint);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  // on_accept drains the listen queue with accept() calls that must never block the loop: a
  // non-blocking acceptor, and an aborted connection is reported instead of waited past (Asio
  // would otherwise poll the socket until the next connection arrives).
  acceptor_.non_blocking(true);
  acceptor_.set_option(asio::socket_base::enable_connection_aborted(true));
  accepting_ = true;
}

void Loop::start_thread() {
  poller_.start(io_);
  if (accepting_) do_accept();
  do_sweep();
  thread_ = std::thread([this] {
    try {
      io_.run();
    } catch (const std::exception& e) {
      // Handlers do not throw by design; reaching here is a broken invariant.
      spdlog::critical("event loop {} stopped by an exception: {}", index_, e.what());
      std::abort();
    }
  });
}

void Loop::stop_accepting() {
  asio::post(io_, [this] {
    accepting_ = false;
    error_code ec;
    acceptor_.close(ec);
    accept_retry_.cancel();
  });
}

void Loop::join() {
  if (thread_.joinable()) {
    io_.stop();
    thread_.join();
  }
}

void Loop::do_accept() {
  acceptor_.async_accept(io_, [this](const error_code& ec, TcpSocket socket) {
    on_accept(ec, std::move(socket));
  });
}

void Loop::on_accept(const error_code& ec, TcpSocket socket) {
  if (!accepting_) return;
  if (ec) {
    if (aborted_before_accept(ec)) {
      do_accept();
    } else {
      accept_failed(ec);
    }
    return;
  }
  start_session(std::move(socket));
  // More may wait in the listen queue: take them now, up to accept_batch per wakeup.
  for (int taken = 1; taken < accept_batch && accepting_; ++taken) {
    TcpSocket next(io_);
    error_code e;
    acceptor_.accept(next, e);
    if (e == asio::error::would_block || e == asio::error::try_again) break;  // queue empty
    if (aborted_before_accept(e)) continue;
    if (e) {
      accept_failed(e);
      return;
    }
    start_session(std::move(next));
  }
  if (accepting_) do_accept();
}

void Loop::accept_failed(const error_code& ec) {
  node_.metrics().accept_errors.fetch_add(1, std::memory_order_relaxed);
  // Out of descriptors (EMFILE/ENFILE) and similar: back off instead of spinning on a
  // listening socket that stays readable, and log at most once a second.
  static std::atomic<std::int64_t> last_log{0};
  const auto now_s = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::steady_clock::now().time_since_epoch()).count();
  if (last_log.exchange(now_s) != now_s) spdlog::warn("accept failed: {} (backing off)", ec.message());
  accept_retry_.expires_after(accept_backoff);
  accept_retry_.async_wait([this](const error_code& e) {
    if (!e && accepting_) do_accept();
  });
}

void Loop::start_session(TcpSocket socket) {
  if (auto* tls = node_.tls()) {
    if (auto* ssl = tls->new_ssl(socket.native_handle())) {
      error_code e;
      socket.non_blocking(true, e);  // OpenSSL reads and writes the descriptor itself
      std::make_shared<HttpsSession>(*this, std::move(socket), std::make_unique<TlsLink>(ssl))->start();
    } else {
      spdlog::warn("TLS: cannot allocate a connection's state; connection closed");
    }
  } else {
    std::make_shared<HttpSession>(*this, std::move(socket))->start();
  }
}

void Loop::do_sweep() {
  const auto quarter = std::chrono::duration_cast<std::chrono::milliseconds>(node_.config().idle_timeout) / 4;
  sweep_timer_.expires_after(std::min(max_sweep_interval, quarter));
  sweep_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    const auto now = WsSession::Clock::now();
    const auto wall_now = std::chrono::system_clock::now();  // token exp is wall-clock time
    registry_.for_each([now, wall_now](Connection& c, const Identity& who) {
      static_cast<WsSession&>(c).check_idle(now, wall_now, who.exp);
    });
    std::erase_if(closing_, [now](const std::shared_ptr<WsSession>& s) { return s->close_expired(now); });
    if (index_ == 0) {
      node_.refusal_log().flush();  // one loop reports held-back refusal lines
      // Expired history is dropped here too (reads also drop it): its memory is given back
      // within a second even on a topic nobody publishes to or reads any more.
      if (auto* h = node_.history()) h->expire();
    }
    do_sweep();
  });
}

}  // namespace boundary::realtime::shell
