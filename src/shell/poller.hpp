#pragma once
// The readiness of a loop's WebSocket sockets, watched through one epoll instance of the loop's
// own that Asio's reactor watches as a single descriptor.
//
// Why not Asio's own socket waits: a socket registered with Asio's reactor carries its
// per-descriptor state (168 bytes, with a mutex and three operation queues) and an idle
// connection keeps a read wait operation pending all its life (104 bytes, allocated again on
// every read, plus an epoll_ctl call to re-arm it). Here a connection costs one 8-byte slot,
// reads stay armed (level-triggered EPOLLIN) and only a wait for writability changes the
// registration.
//
// `Target` is called as `target.on_poll(std::uint32_t epoll_events)`: WsSession in the server
// (instantiated in poller.cpp), a probe in the unit tests (which include poller_impl.hpp).
//
// Single-threaded: used only on its loop's thread. A target removed while a batch of events is
// being dispatched is not called again: its slot is cleared at once and reused only after the
// batch. Slots are kept for reuse: the table holds as many as were ever watched at once.

#include <cstdint>
#include <memory>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace boundary::realtime::shell {

using PollSlot = std::uint32_t;

template <class Target>
class Poller {
 public:
  // Events taken per epoll_wait. After a full batch the next one runs behind the loop's other
  // queued work, so that a busy loop still accepts and flushes in between.
  static constexpr int max_events = 256;

  Poller();  // throws std::system_error when epoll_create1 fails
  ~Poller();
  Poller(const Poller&) = delete;
  Poller& operator=(const Poller&) = delete;

  // Starts dispatching on `io`'s thread. stop() cancels it; it must run while `io` is alive.
  void start(boost::asio::io_context& io);
  void stop();

  // Watches `fd` for readability (and hang-up or error) on behalf of `target` until remove().
  // False (errno set) when epoll refuses the descriptor.
  bool add(int fd, Target& target, PollSlot& slot);
  // What `fd` is watched for (hang-up and error always): readability unless a read waits for
  // writability (a level-triggered EPOLLIN would report the same unread bytes on every pass),
  // writability while a write or such a read waits. False (errno set) when epoll refuses.
  bool watch(int fd, PollSlot slot, bool read, bool write);
  // Stops watching: `fd` leaves the epoll set and the slot is cleared.
  void remove(int fd, PollSlot slot);

  std::size_t watched() const noexcept { return slots_.size() - free_.size() - held_.size(); }

 private:
  struct Waiter;
  void do_wait();
  void on_ready();

  int epoll_fd_;
  std::vector<Target*> slots_;  // indexed by slot; null when free
  std::vector<PollSlot> free_;
  std::vector<PollSlot> held_;  // freed during a dispatch: reusable after it
  bool dispatching_ = false;
  std::unique_ptr<Waiter> waiter_;
};

class WsSession;
extern template class Poller<WsSession>;
using SessionPoller = Poller<WsSession>;

}  // namespace boundary::realtime::shell
