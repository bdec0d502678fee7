#include "shell/post_behind.hpp"

#include <future>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace boundary::realtime::shell {
namespace {
namespace asio = boost::asio;

// A loop's handler posts E to its own loop; while it still runs, another thread posts L. E was
// posted first, and with post_behind L runs after it. A plain post lets L overtake E (the hazard
// post_behind exists for; if Asio ever stops doing this, the control half says so).
std::vector<std::string> order_of(bool behind) {
  asio::io_context io{1};  // as the loops run them
  std::vector<std::string> order;
  std::promise<void> e_posted;
  std::promise<void> l_posted;
  auto e_future = e_posted.get_future();
  auto l_future = l_posted.get_future();
  std::thread other([&] {
    e_future.wait();
    auto l = [&order] { order.push_back("L"); };
    if (behind) post_behind(io, l);
    else asio::post(io, l);
    l_posted.set_value();
  });
  asio::post(io, [&] {
    asio::post(io, [&order] { order.push_back("E"); });
    e_posted.set_value();
    l_future.wait();  // L is posted while this handler runs
  });
  io.run();
  other.join();
  return order;
}

TEST(PostBehind, APostFromAnotherThreadFollowsWhatTheLoopPostedToItself) {
  EXPECT_EQ(order_of(true), (std::vector<std::string>{"E", "L"}));
}

TEST(PostBehind, APlainPostFromAnotherThreadOvertakesIt) {
  EXPECT_EQ(order_of(false), (std::vector<std::string>{"L", "E"}));
}

}  // namespace
}  // namespace boundary::realtime::shell
