// The loop's Poller over real sockets (socketpairs) and a real io_context: readiness reaches its
// target, batches larger than one epoll_wait are all dispatched, a target removed during a batch
// is not called, and writability is reported only while asked for.
#include "shell/poller_impl.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

namespace boundary::realtime::shell {

struct Probe {
  int fd = -1;
  std::vector<std::uint32_t> events;
  std::function<void(Probe&, std::uint32_t)> on_event;
  void on_poll(std::uint32_t e) {
    events.push_back(e);
    if (on_event) on_event(*this, e);
  }
};

template class Poller<Probe>;

namespace {
namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Pair {
  int mine = -1;
  int peer = -1;
  Pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0) {
      mine = fds[0];
      peer = fds[1];
    }
  }
  ~Pair() {
    if (mine >= 0) ::close(mine);
    if (peer >= 0) ::close(peer);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

void send_byte(int fd) { ASSERT_EQ(::write(fd, "x", 1), 1); }

int drain(int fd) {
  char buf[64];
  const auto n = ::read(fd, buf, sizeof buf);
  return static_cast<int>(n);
}

// One socketpair whose first end is watched for readability by a started poller.
class PollerOneSocket : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_GE(pair.mine, 0);
    poller.start(io);
    probe.fd = pair.mine;
    ASSERT_TRUE(poller.add(pair.mine, probe, slot));
  }
  void TearDown() override { poller.stop(); }

  asio::io_context io{1};
  Poller<Probe> poller;
  Pair pair;
  Probe probe;
  PollSlot slot = 0;
};

TEST_F(PollerOneSocket, AReadableSocketReachesItsTargetUntilRemoved) {
  int reads = 0;
  probe.on_event = [&](Probe& p, std::uint32_t) {
    reads += drain(p.fd);
    if (reads == 1) {
      // Ready again after the wait was re-armed: reported again.
      asio::post(io, [&] { send_byte(pair.peer); });
    } else {
      poller.remove(p.fd, slot);
      io.stop();
    }
  };
  EXPECT_EQ(poller.watched(), 1u);
  send_byte(pair.peer);
  io.run_for(5s);
  EXPECT_EQ(reads, 2);
  ASSERT_EQ(probe.events.size(), 2u);
  EXPECT_TRUE(probe.events[0] & EPOLLIN);
  EXPECT_FALSE(probe.events[0] & EPOLLOUT);  // not asked for
  EXPECT_EQ(poller.watched(), 0u);
}

TEST(Poller, MoreReadySocketsThanOneBatchAreAllDispatchedOnce) {
  constexpr int count = Poller<Probe>::max_events * 2 + 88;
  asio::io_context io{1};
  Poller<Probe> poller;
  poller.start(io);
  std::vector<std::unique_ptr<Pair>> pairs;
  std::vector<Probe> probes(count);
  std::vector<PollSlot> slots(count);
  int done = 0;
  for (int i = 0; i < count; ++i) {
    pairs.push_back(std::make_unique<Pair>());
    ASSERT_GE(pairs.back()->mine, 0);
    probes[i].fd = pairs.back()->mine;
    probes[i].on_event = [&, i](Probe& p, std::uint32_t) {
      EXPECT_EQ(drain(p.fd), 1);
      poller.remove(p.fd, slots[i]);
      if (++done == count) io.stop();
    };
    ASSERT_TRUE(poller.add(pairs.back()->mine, probes[i], slots[i]));
    send_byte(pairs.back()->peer);
  }
  io.run_for(10s);
  EXPECT_EQ(done, count);
  for (const auto& p : probes) EXPECT_EQ(p.events.size(), 1u);
  poller.stop();
}

TEST(Poller, ATargetRemovedEarlierInTheBatchIsNotCalledAndItsSlotWaitsForTheBatchToEnd) {
  asio::io_context io{1};
  Poller<Probe> poller;
  poller.start(io);
  Pair a, b, c;
  Probe pa, pb, pc;
  pa.fd = a.mine;
  pb.fd = b.mine;
  pc.fd = c.mine;
  PollSlot sa, sb, sc = 0;
  Probe* first = nullptr;
  PollSlot removed = 0;
  // Whichever of the two is called first removes the other: both were ready in the same batch.
  auto remove_other = [&](Probe& p, std::uint32_t) {
    if (first) return;
    first = &p;
    drain(p.fd);
    Probe& other = &p == &pa ? pb : pa;
    removed = &p == &pa ? sb : sa;
    poller.remove(other.fd, removed);
    // A descriptor watched during the batch does not take the slot just freed.
    ASSERT_TRUE(poller.add(c.mine, pc, sc));
    EXPECT_NE(sc, removed);
    asio::post(io, [&] { io.stop(); });
  };
  pa.on_event = remove_other;
  pb.on_event = remove_other;
  ASSERT_TRUE(poller.add(a.mine, pa, sa));
  ASSERT_TRUE(poller.add(b.mine, pb, sb));
  send_byte(a.peer);
  send_byte(b.peer);
  io.run_for(5s);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(pa.events.size() + pb.events.size(), 1u);
  // After the batch the freed slot is reused.
  Pair d;
  Probe pd;
  PollSlot sd;
  ASSERT_TRUE(poller.add(d.mine, pd, sd));
  EXPECT_EQ(sd, removed);
  poller.stop();
}

TEST_F(PollerOneSocket, WritabilityIsReportedOnlyWhileAskedFor) {
  probe.on_event = [&](Probe& p, std::uint32_t e) {
    if (p.events.size() == 1) {
      EXPECT_TRUE(e & EPOLLOUT);
      ASSERT_TRUE(poller.watch(p.fd, slot, true, false));
      send_byte(pair.peer);  // now only readable
      return;
    }
    drain(p.fd);
    io.stop();
  };
  ASSERT_TRUE(poller.watch(pair.mine, slot, true, true));
  io.run_for(5s);
  ASSERT_EQ(probe.events.size(), 2u);
  EXPECT_TRUE(probe.events[0] & EPOLLOUT);
  EXPECT_TRUE(probe.events[1] & EPOLLIN);
  EXPECT_FALSE(probe.events[1] & EPOLLOUT);
}

TEST_F(PollerOneSocket, UnreadBytesAreNotReportedWhileOnlyWritabilityIsWatched) {
  // A TLS read that waits for writability must not be woken, pass after pass, by the bytes it
  // cannot read yet.
  send_byte(pair.peer);  // stays unread until the end
  probe.on_event = [&](Probe& p, std::uint32_t) {
    if (p.events.size() == 1) {
      ASSERT_TRUE(poller.watch(p.fd, slot, false, false));  // neither: nothing may be reported
      asio::post(io, [&] { asio::post(io, [&] { io.stop(); }); });
    }
  };
  ASSERT_TRUE(poller.watch(pair.mine, slot, false, true));
  io.run_for(5s);
  ASSERT_EQ(probe.events.size(), 1u);
  EXPECT_TRUE(probe.events[0] & EPOLLOUT);
  EXPECT_FALSE(probe.events[0] & EPOLLIN);
}

TEST_F(PollerOneSocket, APeerThatHangsUpIsReported) {
  probe.on_event = [&](Probe& p, std::uint32_t) {
    EXPECT_EQ(drain(p.fd), 0);  // end of stream
    poller.remove(p.fd, slot);
    io.stop();
  };
  ::close(pair.peer);
  pair.peer = -1;
  io.run_for(5s);
  ASSERT_EQ(probe.events.size(), 1u);
  EXPECT_TRUE(probe.events[0] & (EPOLLIN | EPOLLHUP));
}

TEST(Poller, RefusesADescriptorEpollCannotWatch) {
  Poller<Probe> poller;
  Probe probe;
  PollSlot slot;
  errno = 0;
  EXPECT_FALSE(poller.add(-1, probe, slot));
  EXPECT_EQ(errno, EBADF);
  EXPECT_EQ(poller.watched(), 0u);
}

}  // namespace
}  // namespace boundary::realtime::shell
