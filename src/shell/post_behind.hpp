#pragma once
// Posting to a loop behind what the loop has already posted to itself.
//
// A loop runs an io_context with concurrency hint 1. Asio then keeps the posts a loop makes to
// itself in a private queue until the handler making them returns, while posts from other
// threads enter the main queue at once. So a handler posted from another thread can run before
// one the loop posted to itself earlier: an answer can overtake the events it must follow.
// post_behind() posts `fn` to run a handler on the loop that posts `fn` again: by the time the
// first runs, the handler that was running has returned and its own posts are queued, and the
// second post goes behind them.

#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace boundary::realtime::shell {

template <class F>
void post_behind(boost::asio::io_context& io, F fn) {
  boost::asio::post(io, [&io, fn = std::move(fn)]() mutable { boost::asio::post(io, std::move(fn)); });
}

}  // namespace boundary::realtime::shell
