#pragma once
// A Boost.Beast WebSocket client for the integration tests, independent of the server's own
// framing code, and JSON helpers for reading what it receives. Every wait drives the test's
// io_context with a deadline (server_process.hpp).

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "server_process.hpp"

namespace boundary::realtime::itest {

namespace ws_client_detail {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// A Beast WebSocket client. Once open it always has a read pending (so Beast answers pings and
// close frames by itself); received messages queue in `inbox` until a test takes them.

class WsClient {
 public:
  explicit WsClient(asio::io_context& ioc, std::string name = "client")
      : name(std::move(name)), s_(std::make_shared<State>(ioc)) {}
  ~WsClient() { beast::get_lowest_layer(s_->ws).close(); }
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  // Opens TCP and performs the upgrade. Returns the handshake's error: none, or
  // websocket::error::upgrade_declined with the refusal in response(). Throws on timeout.
  beast::error_code handshake(std::uint16_t port, const std::string& target,
                              const std::string& bearer = {}, bool start_reading = true) {
    auto s = s_;
    auto& tcp = beast::get_lowest_layer(s->ws);
    if (!bearer.empty())
      s->ws.set_option(websocket::stream_base::decorator(
          [bearer](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + bearer); }));
    s->ws.control_callback([raw = s.get()](websocket::frame_type kind, beast::string_view) {
      if (kind == websocket::frame_type::ping) raw->ping_times.push_back(raw->since_open());
    });
    const std::string host = std::string(loopback) + ":" + std::to_string(port);
    auto result = std::make_shared<std::optional<beast::error_code>>();
    tcp.expires_after(default_timeout);
    tcp.async_connect(asio::ip::tcp::endpoint(asio::ip::make_address(loopback), port),
                      [s, result, host, target](beast::error_code ec) {
                        if (ec) {
                          *result = ec;
                          return;
                        }
                        s->ws.async_handshake(s->response, host, target,
                                              [s, result](beast::error_code ec2) { *result = ec2; });
                      });
    if (!run_until(s->ioc, [&] { return result->has_value(); }, default_timeout + 1s)) {
      tcp.close();
      throw std::runtime_error(name + ": WebSocket handshake timed out");
    }
    // From here on the only deadlines are the tests' waits: a tcp_stream expiry would also
    // cancel the long-lived read.
    tcp.expires_never();
    s->opened = std::chrono::steady_clock::now();
    if (!**result && start_reading) read_loop(s);
    return **result;
  }

  // Writes one message; returns the write's error (a closing peer may legitimately refuse it).
  beast::error_code write(const std::string& payload, bool binary = false) {
    auto s = s_;
    auto data = std::make_shared<std::string>(payload);
    auto result = std::make_shared<std::optional<beast::error_code>>();
    s->ws.binary(binary);
    s->ws.async_write(asio::buffer(*data),
                      [s, data, result](beast::error_code ec, std::size_t) { *result = ec; });
    if (!run_until(s->ioc, [&] { return result->has_value(); }, default_timeout))
      throw std::runtime_error(name + ": write timed out");
    return **result;
  }

  void send(const json::object& command) {
    if (auto ec = write(json::serialize(command)))
      throw std::runtime_error(name + ": write failed: " + ec.message());
  }

  // The next message, or nullopt when the connection closed or `timeout` passed first.
  std::optional<std::string> next(Duration timeout = default_timeout) {
    run_until(s_->ioc, [&] { return !s_->inbox.empty() || s_->closed; }, timeout);
    if (s_->inbox.empty()) return std::nullopt;
    std::string text = std::move(s_->inbox.front());
    s_->inbox.pop_front();
    return text;
  }

  bool wait_for_messages(std::size_t count, Duration timeout) {
    return run_until(s_->ioc, [&] { return s_->inbox.size() >= count || s_->closed; }, timeout) &&
           s_->inbox.size() >= count;
  }

  // True when the connection closed within `timeout`.
  bool wait_closed(Duration timeout) {
    return run_until(s_->ioc, [&] { return s_->closed; }, timeout);
  }

  bool closed() const { return s_->closed; }
  beast::error_code read_error() const { return s_->error; }
  websocket::close_reason close_reason() const { return s_->reason; }
  const websocket::response_type& response() const { return s_->response; }
  std::size_t pings_received() const { return s_->ping_times.size(); }
  std::size_t queued() const { return s_->inbox.size(); }

  // For failure messages: how and when the connection ended, and when the server pinged.
  std::string describe_close() const {
    std::string text = "closed=" + std::to_string(s_->closed);
    if (s_->closed)
      text += " after " + std::to_string(s_->closed_after) + " s, error=" + s_->error.message() +
              ", close-code=" + std::to_string(s_->reason.code) + " reason='" +
              std::string(s_->reason.reason.c_str()) + "'";
    text += "; pings received at [";
    for (double t : s_->ping_times) text += " " + std::to_string(t);
    return text + " ] s";
  }

  std::string name;
  std::string id;      // connection-id from the connected frame
  json::object hello;  // the connected frame

 private:
  struct State {
    explicit State(asio::io_context& c) : ioc(c), ws(c) {}
    asio::io_context& ioc;
    websocket::stream<beast::tcp_stream> ws;
    websocket::response_type response;
    beast::flat_buffer buffer;
    std::deque<std::string> inbox;
    bool closed = false;
    beast::error_code error;
    websocket::close_reason reason;
    std::chrono::steady_clock::time_point opened;
    double closed_after = 0;          // seconds from the upgrade to the end of the read loop
    std::vector<double> ping_times;   // seconds from the upgrade to each server ping

    double since_open() const {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - opened).count();
    }
  };

  static void read_loop(const std::shared_ptr<State>& s) {
    s->ws.async_read(s->buffer, [s](beast::error_code ec, std::size_t) {
      if (ec) {
        s->closed = true;
        s->closed_after = s->since_open();
        s->error = ec;
        s->reason = s->ws.reason();
        return;
      }
      s->inbox.push_back(beast::buffers_to_string(s->buffer.data()));
      s->buffer.consume(s->buffer.size());
      read_loop(s);
    });
  }

  std::shared_ptr<State> s_;  // shared with pending handlers
};

}  // namespace ws_client_detail

using ws_client_detail::WsClient;

// ---------------------------------------------------------------------------------------------
// JSON helpers: missing or mistyped fields read as a visible placeholder, so EXPECT_EQ shows them.

inline boost::json::object parse_object(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  if (ec || !v.is_object()) throw std::runtime_error("not a JSON object: " + text);
  return v.as_object();
}

inline std::string str(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return "<missing>";
  if (!v->is_string()) return "<not a string: " + boost::json::serialize(*v) + ">";
  return std::string(v->as_string());
}

inline std::int64_t num(const boost::json::object& o, std::string_view key) {
  const auto* v = o.if_contains(key);
  if (v == nullptr || !v->is_number())
    throw std::runtime_error("no number \"" + std::string(key) + "\" in " + boost::json::serialize(o));
  return v->to_number<std::int64_t>();
}

}  // namespace boundary::realtime::itest
