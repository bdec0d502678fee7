#pragma once
// The load generator's event loop: one thread, level-triggered epoll, non-blocking sockets.
// No Asio here on purpose: the generator must cost less per message than the server it
// measures, and every wait must end at a deadline the caller chose.

#include <sys/epoll.h>
#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace loadgen {

using Nanos = std::int64_t;

// CLOCK_MONOTONIC: the same clock as std::chrono::steady_clock on Linux, shared by every
// process on the machine, so a send time written by one process can be read by another.
Nanos now_ns() noexcept;
constexpr Nanos seconds_ns(double s) noexcept { return static_cast<Nanos>(s * 1e9); }

class Reactor {
 public:
  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  void add(int fd, std::uint32_t events, std::uint64_t key);
  void modify(int fd, std::uint32_t events, std::uint64_t key);
  void remove(int fd) noexcept;

  // Waits for events until `deadline` at most (nanosecond timeout, epoll_pwait2) and calls
  // dispatch(key, events) for each. Returns the number of events dispatched.
  template <class Dispatch>
  int poll(Nanos deadline, Dispatch&& dispatch) {
    const int n = wait(deadline);
    for (int i = 0; i < n; ++i) dispatch(events_[i].data.u64, events_[i].events);
    return n;
  }

 private:
  int wait(Nanos deadline);
  int epfd_ = -1;
  std::array<epoll_event, 1024> events_{};
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the resulting soft limit.
std::uint64_t raise_fd_limit();

// IPv4 address for `host` (a literal or a name, resolved once at startup). Throws on failure.
sockaddr_in resolve(const std::string& host, std::uint16_t port);

// A non-blocking TCP socket with TCP_NODELAY, connecting to `dst`. When `src_ip` (network
// order) is non-zero the socket is bound to it first, with IP_BIND_ADDRESS_NO_PORT so the port
// is chosen at connect time per 4-tuple: spreading clients over 127.0.0.x keeps 10k+ clients
// (and the TIME_WAIT left by previous runs) clear of ephemeral port exhaustion.
// Returns the fd, or -errno when the socket could not be created or connect failed at once.
int start_connect(const sockaddr_in& dst, std::uint32_t src_ip);

// For a socket whose connect was in progress: 0 when connected, else the errno.
int connect_result(int fd) noexcept;

// Non-blocking write: bytes written (possibly 0 on EAGAIN), or -errno.
long write_some(int fd, std::string_view bytes) noexcept;

// /proc readings for the server process; -1 when unavailable.
std::int64_t read_rss_bytes(int pid);
double read_cpu_seconds(int pid);
double self_cpu_seconds();
std::int64_t self_rss_bytes();

std::string errno_name(int err);

}  // namespace loadgen
