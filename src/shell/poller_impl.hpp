#pragma once
// Poller's definitions: included by poller.cpp (the server's instantiation) and by tests.

#include <sys/epoll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <system_error>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "shell/poller.hpp"

namespace boundary::realtime::shell {

namespace poller_detail {
inline constexpr std::uint32_t read_events = EPOLLIN;  // hang-up and error are always reported
}

template <class Target>
struct Poller<Target>::Waiter {
  Waiter(boost::asio::io_context& io, int fd) : io(io), descriptor(io, fd) {}
  boost::asio::io_context& io;
  boost::asio::posix::stream_descriptor descriptor;
};

template <class Target>
Poller<Target>::Poller() : epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
  if (epoll_fd_ < 0) throw std::system_error(errno, std::generic_category(), "epoll_create1");
}

template <class Target>
Poller<Target>::~Poller() {
  stop();
  ::close(epoll_fd_);
}

template <class Target>
void Poller<Target>::start(boost::asio::io_context& io) {
  // The descriptor object shares epoll_fd_: stop() releases it rather than closing it.
  waiter_ = std::make_unique<Waiter>(io, epoll_fd_);
  do_wait();
}

template <class Target>
void Poller<Target>::stop() {
  if (!waiter_) return;
  waiter_->descriptor.release();
  waiter_.reset();
}

template <class Target>
void Poller<Target>::do_wait() {
  // Arming the wait modifies the registration, and epoll reports the descriptor again if
  // anything became ready since the last epoll_wait: no readiness is missed in between.
  waiter_->descriptor.async_wait(boost::asio::posix::descriptor_base::wait_read,
                                 [this](const boost::system::error_code& ec) {
                                   if (!ec) return on_ready();
                                   // Only stop() cancels the wait: anything else would leave the
                                   // loop's WebSocket connections unserved.
                                   if (ec != boost::asio::error::operation_aborted) {
                                     spdlog::critical("waiting on the loop's epoll descriptor failed: {}", ec.message());
                                     std::abort();
                                   }
                                 });
}

template <class Target>
void Poller<Target>::on_ready() {
  std::array<epoll_event, max_events> events;
  int n;
  do {
    n = ::epoll_wait(epoll_fd_, events.data(), max_events, 0);
  } while (n < 0 && errno == EINTR);
  dispatching_ = true;
  for (int i = 0; i < n; ++i) {
    // A target earlier in the batch may have removed (or destroyed) this one: its slot is null.
    if (Target* target = slots_[static_cast<PollSlot>(events[i].data.u64)]) target->on_poll(events[i].events);
  }
  dispatching_ = false;
  free_.insert(free_.end(), held_.begin(), held_.end());
  held_.clear();
  if (!waiter_) return;
  if (n == max_events) {
    boost::asio::post(waiter_->io, [this] {
      if (waiter_) on_ready();
    });
    return;
  }
  do_wait();
}

template <class Target>
bool Poller<Target>::add(int fd, Target& target, PollSlot& slot) {
  if (free_.empty()) {
    slot = static_cast<PollSlot>(slots_.size());
    slots_.push_back(nullptr);
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  epoll_event ev{};
  ev.events = poller_detail::read_events;
  ev.data.u64 = slot;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    free_.push_back(slot);
    return false;
  }
  slots_[slot] = &target;
  return true;
}

template <class Target>
bool Poller<Target>::watch(int fd, PollSlot slot, bool read, bool write) {
  epoll_event ev{};
  ev.events = (read ? poller_detail::read_events : 0u) | (write ? static_cast<std::uint32_t>(EPOLLOUT) : 0u);
  ev.data.u64 = slot;
  return ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

template <class Target>
void Poller<Target>::remove(int fd, PollSlot slot) {
  epoll_event ev{};
  if (fd >= 0) ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, &ev);
  slots_[slot] = nullptr;
  (dispatching_ ? held_ : free_).push_back(slot);
}

}  // namespace boundary::realtime::shell
