#pragma once
// The part of BrokerRedis that knows no Redis commands: count-gathering requests (start, the
// receiver count PUBLISH/SPUBLISH answered, answers, timeouts, failure) and the handling of an
// incoming pub/sub message (an answer to us, our own echo, or a fan-out to deliver and answer).
// It takes parsed values only; the broker decides where commands go. Single-threaded: used on
// the broker's event loop only.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "boundary/realtime/ports/broker.hpp"
#include "core/cluster_codec.hpp"

namespace boundary::realtime::shell {

struct Metrics;

class ClusterRequests {
 public:
  // Sends an answer (`count` local deliveries for request `id`) to node `origin`.
  using SendAnswer = std::function<void(const std::string& origin, std::uint64_t id, std::size_t count)>;

  // `reply_channel`: where other nodes answer this one (core::reply_channel).
  ClusterRequests(std::string node_id, std::string reply_channel, std::chrono::milliseconds reply_timeout,
                  Metrics* metrics);

  const std::string& reply_channel() const noexcept { return reply_channel_; }

  // A request that waits for answers; `done` runs once, when it completes, times out or fails.
  std::uint64_t begin(Broker::Done done);
  // The PUBLISH/SPUBLISH that carried request `id` reached `receivers` subscribed connections
  // (this node's own subscriber among them): that many answers complete the request.
  void published(std::uint64_t id, std::size_t receivers);
  void failed(std::uint64_t id);  // that PUBLISH/SPUBLISH was refused or its reply lost
  void expire(std::chrono::steady_clock::time_point now);
  void fail_all();  // the connection dropped: every pending request ends unreached

  void on_message(std::string_view channel, std::string_view payload, const Broker::Handler& handler,
                  const SendAnswer& send_answer);

 private:
  void finish(const core::ReplyGather::Outcome& outcome, bool reached);

  std::string node_id_;
  std::string reply_channel_;
  std::chrono::milliseconds reply_timeout_;
  Metrics* metrics_;
  std::uint64_t next_request_ = 0;
  core::ReplyGather gather_;
  std::unordered_map<std::uint64_t, Broker::Done> waiting_;
};

}  // namespace boundary::realtime::shell
