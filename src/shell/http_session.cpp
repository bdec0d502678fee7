#include "shell/http_session.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <random>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/serialize.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <spdlog/spdlog.h>

#include "core/http_rules.hpp"
#include "shell/loop.hpp"
#include "shell/server_core.hpp"
#include "shell/web_assets.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using boost::system::error_code;

namespace {
// Slow or silent HTTP clients (including half-open ones) are dropped after this.
constexpr auto request_timeout = std::chrono::seconds(30);
constexpr std::uint32_t header_limit_bytes = 16 * 1024;
constexpr char openmetrics_type[] = "application/openmetrics-text";

// SHA-1 fetched once: OpenSSL 3's SHA1() looks the digest up by name on every call, which was
// about a tenth of the user-space instructions of a handshake (callgrind).
const EVP_MD* sha1() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    return fetched ? fetched : EVP_sha1();
  }();
  return md;
}

std::string websocket_accept(std::string_view key) {
  std::string input(key);
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_len, sha1(), nullptr) != 1 ||
      digest_len != SHA_DIGEST_LENGTH)
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> out{};
  const int n = EVP_EncodeBlock(out.data(), digest.data(), SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

// 16 bytes from OpenSSL's CSPRNG, drawn 512 at a time: one RAND_bytes call costs about as much
// as the rest of a UUID's work many times over (8,000 instructions, callgrind), whatever the
// size. Each event loop thread has its own pool; used bytes are wiped.
std::array<unsigned char, 16> random_16() {
  thread_local std::array<unsigned char, 512> pool{};
  thread_local std::size_t used = pool.size();
  std::array<unsigned char, 16> b{};
  if (used == pool.size()) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1) {
      std::random_device rd;  // RAND_bytes failing is near impossible; do not stop serving
      for (auto& x : b) x = static_cast<unsigned char>(rd());
      return b;
    }
    used = 0;
  }
  std::copy_n(pool.begin() + static_cast<std::ptrdiff_t>(used), b.size(), b.begin());
  OPENSSL_cleanse(pool.data() + used, b.size());
  used += b.size();
  return b;
}

// UUID v4 from OpenSSL's CSPRNG.
std::string uuid_v4() {
  std::array<unsigned char, 16> b = random_16();
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex[b[i] >> 4];
    s += hex[b[i] & 0xF];
  }
  return s;
}

HttpResponse json_response(unsigned status, const json::object& body) {
  return HttpResponse{status, json::serialize(body), "application/json"};
}

// The dev page learns the sample token and API key by substitution: it exists to let a
// newcomer see messages flow within a minute, on a dev-mode server only.
std::string fill_dev_page(std::string page, const Config& config) {
  auto replace_all = [&page](std::string_view what, std::string_view with) {
    for (auto pos = page.find(what); pos != std::string::npos; pos = page.find(what, pos + with.size()))
      page.replace(pos, what.size(), with);
  };
  replace_all("__REALTIME_DEV_TOKEN__", config.dev_token);
  replace_all("__REALTIME_API_KEY__", config.api_key);
  return page;
}

HttpResponse refusal(const core::HttpRefusal& r) { return HttpResponse{r.status, r.body, "application/json"}; }

// OpenMetrics only when the scraper lists it (Prometheus does, ahead of text/plain); anything
// else, including no Accept header, gets the text format every scraper reads.
HttpResponse metrics_response(const Metrics& metrics, std::string_view accept) {
  std::string lower(accept);
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower.find(openmetrics_type) != std::string::npos)
    return HttpResponse{200, metrics.render_openmetrics(), "application/openmetrics-text; version=1.0.0; charset=utf-8"};
  return HttpResponse{200, metrics.render_prometheus(), "text/plain; version=0.0.4; charset=utf-8"};
}

}  // namespace

HttpSession::HttpSession(Loop& loop, TcpSocket socket) : loop_(loop), stream_(std::move(socket)) {}

void HttpSession::start() { do_read(); }

void HttpSession::do_read() {
  parser_.emplace();
  parser_->body_limit(loop_.server().config.max_body_bytes);
  parser_->header_limit(header_limit_bytes);
  stream_.expires_after(request_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
}

void HttpSession::on_read(const error_code& ec) {
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
    return do_close();
  keep_alive_ = false;
  if (ec == http::error::body_limit) return respond(json_response(413, {{"error", "Request body too large"}}));
  if (ec == http::error::header_limit) return respond(json_response(431, {{"error", "Request headers too large"}}));
  if (ec) return respond(json_response(400, {{"error", "Bad request"}}));
  auto& req = parser_->get();
  keep_alive_ = req.keep_alive();
  version_ = req.version();
  route(req);
}

void HttpSession::route(Request& req) {
  auto& server = loop_.server();
  const auto path = core::target_path(req.target());
  const auto method = req.method_string();
  if (path == "/ws") return handle_upgrade(req);
  // HEAD is answered wherever GET is, with GET's status and headers; respond() drops the body.
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/health/realtime" && get) {
    const bool shutting_down = server.shutting_down.load();
    json::object body{{"status", shutting_down ? "shutting-down" : "healthy"},
                      {"active-connections", server.connection_count()},
                      {"service", "realtime"}};
    if (server.broker->distributed()) {
      // Without Redis the node still serves its own connections: degraded, not down.
      const bool up = server.broker->connected();
      body["redis"] = up ? "up" : "down";
      body["node-id"] = server.config.node_id;
      if (!up && !shutting_down) body["status"] = "degraded";
    }
    return respond(json_response(shutting_down ? 503 : 200, body));
  }
  if (path == "/metrics" && get) return respond(metrics_response(server.metrics, req[http::field::accept]));
  if (server.config.dev_mode && get) {
    for (const auto& asset : web_assets()) {
      if (asset.path != path) continue;
      std::string body(asset.body);
      if (path == "/") body = fill_dev_page(std::move(body), server.config);
      return respond(HttpResponse{200, std::move(body), std::string(asset.content_type) + "; charset=utf-8"});
    }
  }
  auto custom = server.routes.find({std::string(method), std::string(path)});
  if (path.starts_with("/api/")) {
    auto key = core::bearer_token(req[http::field::authorization]);
    if (!key || !core::secrets_equal(*key, server.config.api_key))
      return respond(json_response(401, {{"error", "Unauthorized"}}));
    if (custom != server.routes.end()) return handle_custom(custom->second, req);
    return handle_api(req);
  }
  if (custom != server.routes.end()) return handle_custom(custom->second, req);
  respond(json_response(404, {{"error", "Not found"}}));
}

void HttpSession::handle_upgrade(Request& req) {
  auto& server = loop_.server();
  keep_alive_ = false;
  if (server.shutting_down.load()) return respond(json_response(503, {{"error", "Server shutting down"}}));
  core::UpgradeRequest u{req.method_string(),
                         req.target(),
                         beast::websocket::is_upgrade(req),
                         req[http::field::sec_websocket_version],
                         req[http::field::sec_websocket_key],
                         req[http::field::origin],
                         req[http::field::authorization]};
  auto token = core::check_upgrade(u, server.config.allowed_origins);
  if (!token) {
    if (token.error().status == 401) server.metrics.auth_failures.fetch_add(1, std::memory_order_relaxed);
    return respond(refusal(token.error()));
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  auto identity = server.verifier->verify(*token, now);
  if (!identity) {
    server.metrics.auth_failures.fetch_add(1, std::memory_order_relaxed);
    spdlog::debug("upgrade refused: {}", to_string(identity.error()));
    return respond(json_response(401, {{"error", "Unauthorized"}}));
  }
  std::string response =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
      websocket_accept(u.key) + "\r\n\r\n";
  const auto early = buffer_.cdata();
  std::string_view early_bytes(static_cast<const char*>(early.data()), early.size());
  stream_.expires_never();
  auto session = std::make_shared<WsSession>(loop_, stream_.release_socket(), uuid_v4());
  session->start(std::move(*identity), std::move(response), early_bytes);
}

void HttpSession::handle_api(Request& req) {
  const bool head = req.method() == http::verb::head;
  auto call = core::route_api(head ? beast::string_view("GET") : req.method_string(), core::target_path(req.target()));
  if (!call) return respond(refusal(call.error()));
  auto parsed = core::parse_api_body(*call, req.body());
  if (!parsed) return respond(refusal(parsed.error()));
  auto& server = loop_.server();
  auto r = std::move(*parsed);
  auto reply = responder();
  // Cluster fire-and-forget: body "wait": false or header Prefer: respond-async.
  const bool wait = r.wait && req["Prefer"].find("respond-async") == std::string_view::npos;
  auto answer = [reply](const char* key, bool as_flag) {
    return [reply, key, as_flag](Delivery d) {
      json::value v = as_flag ? json::value(d.count > 0) : json::value(d.count);
      if (d.queued) return reply(json_response(200, {{key, nullptr}, {"queued", true}}));
      // The cluster could not be reached: only this node's connections got it. Not a success.
      if (!d.reached) return reply(json_response(503, {{"error", "cluster unavailable"}, {key, v}}));
      reply(json_response(200, {{key, v}}));
    };
  };
  auto count = [&](const char* key) { return answer(key, false); };
  auto flag = [&](const char* key) { return answer(key, true); };
  switch (r.call) {
    case core::ApiCall::send_to_user:
      return server.send_to_user(r.user_id, std::move(r.message), count("delivered"), wait);
    case core::ApiCall::send_to_role: return server.send_to_role(r.role, std::move(r.message), count("delivered"), wait);
    case core::ApiCall::broadcast: return server.broadcast(std::move(r.message), count("delivered"), wait);
    case core::ApiCall::send_to_connection:
      return server.send_to_connection(r.connection_id, std::move(r.message), flag("delivered"), wait);
    case core::ApiCall::publish: return server.publish(r.topic, std::move(r.message), count("delivered"), wait);
    case core::ApiCall::subscribe: return server.subscribe(r.connection_id, r.topic, flag("subscribed"), wait);
    case core::ApiCall::unsubscribe: return server.unsubscribe(r.connection_id, r.topic, flag("unsubscribed"), wait);
    case core::ApiCall::disconnect:
      if (!r.connection_id.empty())
        return server.disconnect_connection(r.connection_id, count("disconnected"), wait);
      return server.disconnect_user(r.user_id, count("disconnected"), wait);
    case core::ApiCall::connections:
      if (!server.broker->distributed()) return reply(json_response(200, {{"count", server.connection_count()}}));
      return server.count_connections(count("count"));
  }
}

void HttpSession::handle_custom(const Server::RouteHandler& handler, Request& req) {
  HttpRequest r{std::string(req.method_string()), std::string(req.target()), std::move(req.body()),
                std::string(req[http::field::authorization])};
  try {
    handler(r, responder());
  } catch (const std::exception& e) {
    spdlog::error("route {} failed: {}", r.target.substr(0, r.target.find('?')), e.what());
    respond(json_response(500, {{"error", "Internal server error"}}));
  }
}

Server::Responder HttpSession::responder() {
  return [self = shared_from_this()](HttpResponse response) {
    asio::post(self->loop_.io(), [self, response = std::move(response)]() mutable { self->respond(std::move(response)); });
  };
}

void HttpSession::respond(HttpResponse r) {
  auto& server = loop_.server();
  if (parser_ && core::target_path(parser_->get().target()).starts_with("/api/")) {
    server.metrics.api_requests.fetch_add(1, std::memory_order_relaxed);
    if (r.status >= 400) server.metrics.api_errors.fetch_add(1, std::memory_order_relaxed);
  }
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version_);
  res->set(http::field::server, "boundary-realtime");
  res->set(http::field::content_type, r.content_type);
  if (r.status == 426) res->set(http::field::sec_websocket_version, "13");  // RFC 6455 section 4.4
  res->keep_alive(keep_alive_ && !server.shutting_down.load());
  res->body() = std::move(r.body);
  res->prepare_payload();
  // HEAD: the Content-Length GET would have, and no body (RFC 9110 section 9.3.2).
  if (parser_ && parser_->get().method() == http::verb::head) res->body().clear();
  stream_.expires_after(request_timeout);
  http::async_write(stream_, *res, [self = shared_from_this(), res](const error_code& ec, std::size_t) {
    if (ec || !res->keep_alive()) return self->do_close();
    self->do_read();
  });
}

void HttpSession::do_close() {
  error_code ec;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
  stream_.close();
}

}  // namespace boundary::realtime::shell
