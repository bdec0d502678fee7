#include "shell/adapters/subscribe_authorizer_http.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

namespace boundary::realtime::shell {
namespace asio = boost::asio;

HttpSubscribeAuthorizer::HttpSubscribeAuthorizer(asio::io_context& io,
                                                 std::shared_ptr<const SubscribeProxySettings> settings,
                                                 std::shared_ptr<std::atomic<std::size_t>> in_flight, Metrics& metrics)
    : io_(io), settings_(std::move(settings)), in_flight_(std::move(in_flight)), metrics_(metrics) {}

void HttpSubscribeAuthorizer::authorize(SubscribeQuestion question, Done done) {
  metrics_.subscribe_proxy_requests.fetch_add(1, std::memory_order_relaxed);
  if (in_flight_->fetch_add(1, std::memory_order_relaxed) >= settings_->max_in_flight) {
    in_flight_->fetch_sub(1, std::memory_order_relaxed);
    metrics_.subscribe_proxy_overloaded.fetch_add(1, std::memory_order_relaxed);
    asio::post(io_, [done = std::move(done)] { done(false); });  // never from inside authorize()
    return;
  }
  const auto& s = *settings_;
  HttpCall call{s.url, true, core::proxy_request_body(question.user_id, question.connection_id, question.topic),
                "Bearer " + s.api_key, s.timeout, core::max_proxy_reply_bytes};
  // The in-flight slot is released when the exchange ends, answered or not, or is destroyed with
  // its loop.
  struct Slot {
    std::shared_ptr<std::atomic<std::size_t>> count;
    ~Slot() { count->fetch_sub(1, std::memory_order_relaxed); }
  };
  std::shared_ptr<Slot> slot(new Slot{in_flight_});
  http_call(io_, s.tls, std::move(call),
            [slot, &metrics = metrics_, done = std::move(done)](boost::system::result<HttpReply, std::string> reply) {
              if (!reply) {
                spdlog::debug("subscribe proxy: {}", reply.error());
                metrics.subscribe_proxy_errors.fetch_add(1, std::memory_order_relaxed);
                return done(false);
              }
              const bool allowed = core::proxy_reply_allows(reply->status, reply->body);
              (allowed ? metrics.subscribe_proxy_allowed : metrics.subscribe_proxy_denied)
                  .fetch_add(1, std::memory_order_relaxed);
              done(allowed);
            });
}

}  // namespace boundary::realtime::shell
