#include "shell/adapters/cluster_requests.hpp"

#include <spdlog/spdlog.h>

#include "shell/metrics.hpp"

namespace boundary::realtime::shell {

ClusterRequests::ClusterRequests(std::string node_id, std::string reply_channel, std::chrono::milliseconds reply_timeout,
                                 Metrics* metrics)
    : node_id_(std::move(node_id)),
      reply_channel_(std::move(reply_channel)),
      reply_timeout_(reply_timeout),
      metrics_(metrics) {}

std::uint64_t ClusterRequests::begin(Broker::Done done) {
  const std::uint64_t id = ++next_request_;
  gather_.start(id, std::chrono::steady_clock::now() + reply_timeout_);
  waiting_.emplace(id, std::move(done));
  return id;
}

void ClusterRequests::published(std::uint64_t id, std::size_t receivers) {
  if (auto o = gather_.published(id, receivers)) finish(*o, true);
}

void ClusterRequests::failed(std::uint64_t id) {
  if (auto o = gather_.failed(id)) finish(*o, false);
}

void ClusterRequests::expire(std::chrono::steady_clock::time_point now) {
  for (const auto& o : gather_.expire(now)) finish(o, true);
}

void ClusterRequests::fail_all() {
  for (const auto& o : gather_.drain()) finish(o, false);
}

void ClusterRequests::on_message(std::string_view channel, std::string_view payload,
                                 const Broker::Handler& handler, const SendAnswer& send_answer) {
  if (channel == reply_channel_) {
    if (auto reply = core::decode_reply(payload))
      if (auto o = gather_.answered(reply->request_id, reply->count)) finish(*o, true);
    return;
  }
  auto w = core::decode_fanout(payload);
  if (!w) {
    spdlog::warn("cluster: ignoring a malformed message on {}", channel);
    return;
  }
  if (w->origin == node_id_ && w->fanout.route != Route::stream && w->fanout.route != Route::presence) {
    // Our own fan-out coming back: delivered locally already; it only counts as an answer.
    // Stream messages and presence events are the exception: every node delivers them from
    // here, in the order of their offsets or versions.
    if (w->request_id != 0)
      if (auto o = gather_.answered(w->request_id, 0)) finish(*o, true);
    return;
  }
  if (!handler) return;
  Broker::Answer answer = [](std::size_t) {};
  if (w->request_id != 0)
    answer = [send_answer, origin = w->origin, id = w->request_id](std::size_t n) { send_answer(origin, id, n); };
  handler(w->fanout, std::move(answer));
}

void ClusterRequests::finish(const core::ReplyGather::Outcome& o, bool reached) {
  auto it = waiting_.find(o.request_id);
  if (it == waiting_.end()) return;
  auto done = std::move(it->second);
  waiting_.erase(it);
  if (!o.complete && reached && metrics_)
    metrics_->cluster_reply_timeouts.fetch_add(1, std::memory_order_relaxed);
  if (done) done(FanoutResult{reached, o.count, o.complete});
}

}  // namespace boundary::realtime::shell
