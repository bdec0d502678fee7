#pragma once
// SubscribeAuthorizer over HTTP/1.1 (http_client.hpp): POST the question as JSON to
// --subscribe-proxy with `Authorization: Bearer <api-key>`, on the asking loop's io_context. One
// connection per question (no keep-alive yet), http:// or https:// (the system trust store).
// The whole exchange (resolve, connect, TLS, write, read) has one deadline, --proxy-timeout.
// What a reply means is core::proxy_reply_allows'.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "boundary/realtime/ports/subscribe_authorizer.hpp"
#include "core/subscribe_proxy.hpp"
#include "shell/adapters/http_client.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {

struct SubscribeProxySettings {
  core::HttpUrl url;
  std::string api_key;
  std::chrono::milliseconds timeout{2000};
  std::size_t max_in_flight = 64;
  std::shared_ptr<const HttpClientTls> tls;  // https URLs only
};

class HttpSubscribeAuthorizer final : public SubscribeAuthorizer {
 public:
  // `in_flight` is shared by every loop's authorizer: the bound is per node.
  HttpSubscribeAuthorizer(boost::asio::io_context& io, std::shared_ptr<const SubscribeProxySettings> settings,
                          std::shared_ptr<std::atomic<std::size_t>> in_flight, Metrics& metrics);
  void authorize(SubscribeQuestion question, Done done) override;

 private:
  boost::asio::io_context& io_;
  std::shared_ptr<const SubscribeProxySettings> settings_;
  std::shared_ptr<std::atomic<std::size_t>> in_flight_;
  Metrics& metrics_;
};

}  // namespace boundary::realtime::shell
