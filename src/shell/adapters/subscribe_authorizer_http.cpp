#include "shell/adapters/subscribe_authorizer_http.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/basic_stream.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <spdlog/spdlog.h>

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

// One question: resolve, connect, write, read, under one deadline. Finishes once; the in-flight
// slot is released when the exchange is destroyed (also when its loop stops with it pending).
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  Exchange(asio::io_context& io, std::shared_ptr<const SubscribeProxySettings> settings,
           std::shared_ptr<std::atomic<std::size_t>> in_flight, Metrics& metrics, SubscribeAuthorizer::Done done)
      : settings_(std::move(settings)), in_flight_(std::move(in_flight)), metrics_(metrics), done_(std::move(done)),
        resolver_(io), stream_(io), deadline_(io) {}
  ~Exchange() { in_flight_->fetch_sub(1, std::memory_order_relaxed); }

  void start(const SubscribeQuestion& q) {
    const auto& s = *settings_;
    request_.method(http::verb::post);
    request_.target(s.url.target);
    request_.version(11);
    request_.set(http::field::host, s.url.host + ":" + s.url.port);
    request_.set(http::field::authorization, "Bearer " + s.api_key);
    request_.set(http::field::content_type, "application/json");
    request_.set(http::field::connection, "close");
    request_.body() = core::proxy_request_body(q.user_id, q.connection_id, q.topic);
    request_.prepare_payload();
    parser_.body_limit(core::max_proxy_reply_bytes);
    deadline_.expires_after(s.timeout);
    deadline_.async_wait([self = shared_from_this()](const error_code& ec) {
      if (!ec) self->fail("timed out");
    });
    resolver_.async_resolve(s.url.host, s.url.port,
                            [self = shared_from_this()](const error_code& ec, tcp::resolver::results_type r) {
                              if (ec) return self->fail("resolve: " + ec.message());
                              self->do_connect(r);
                            });
  }

 private:
  void do_connect(const tcp::resolver::results_type& endpoints) {
    stream_.async_connect(endpoints, [self = shared_from_this()](const error_code& ec, const tcp::endpoint&) {
      if (ec) return self->fail("connect: " + ec.message());
      http::async_write(self->stream_, self->request_, [self](const error_code& ec, std::size_t) {
        if (ec) return self->fail("write: " + ec.message());
        http::async_read(self->stream_, self->buffer_, self->parser_, [self](const error_code& ec, std::size_t) {
          if (ec) return self->fail("read: " + ec.message());
          const auto& reply = self->parser_.get();
          self->finish(core::proxy_reply_allows(reply.result_int(), reply.body()), true);
        });
      });
    });
  }

  void fail(const std::string& why) {
    if (finished_) return;
    spdlog::debug("subscribe proxy: {}", why);
    finish(false, false);
  }

  void finish(bool allowed, bool answered) {
    if (finished_) return;
    finished_ = true;
    auto& counter = !answered ? metrics_.subscribe_proxy_errors
                    : allowed ? metrics_.subscribe_proxy_allowed
                              : metrics_.subscribe_proxy_denied;
    counter.fetch_add(1, std::memory_order_relaxed);
    deadline_.cancel();
    resolver_.cancel();
    error_code ec;
    stream_.socket().close(ec);
    done_(allowed);
  }

  std::shared_ptr<const SubscribeProxySettings> settings_;
  std::shared_ptr<std::atomic<std::size_t>> in_flight_;
  Metrics& metrics_;
  SubscribeAuthorizer::Done done_;
  tcp::resolver resolver_;
  beast::basic_stream<tcp, asio::io_context::executor_type> stream_;
  asio::steady_timer deadline_;
  http::request<http::string_body> request_;
  beast::flat_buffer buffer_;
  http::response_parser<http::string_body> parser_;
  bool finished_ = false;
};

}  // namespace

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
  auto exchange = std::make_shared<Exchange>(io_, settings_, in_flight_, metrics_, std::move(done));
  exchange->start(question);
}

}  // namespace boundary::realtime::shell
