#include "shell/http_session.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <chrono>

#include <boost/asio/post.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "core/command.hpp"
#include "core/http_rules.hpp"
#include "core/permessage_deflate.hpp"
#include "shell/adapters/random.hpp"
#include "shell/adapters/websocket_accept.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"
#include "shell/web_assets.hpp"
#include "shell/ws_session.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
using boost::system::error_code;

namespace {
// Reading a request is bounded by --handshake-timeout; writing a response (which the client may
// read slowly: /metrics, a large API answer) by this.
constexpr auto write_timeout = std::chrono::seconds(30);
constexpr std::uint32_t header_limit_bytes = 16 * 1024;
constexpr char openmetrics_type[] = "application/openmetrics-text";

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

// Dev mode: would an upgrade from `origin` pass --allowed-origins? The page asks before it
// connects, so it can say why it cannot (a browser shows a refused upgrade only as a failure).
// Browsers send no Origin header on a same-origin GET, so the page also names its origin.
HttpResponse dev_check_origin(const http::request<http::string_body>& req, const Config& config) {
  std::string origin(req[http::field::origin]);
  if (origin.empty()) origin = core::query_param(req.target(), "origin").value_or("");
  bool allowed = config.allowed_origins.empty();
  for (const auto& o : config.allowed_origins) allowed = allowed || beast::iequals(o, origin);
  json::array list;
  for (const auto& o : config.allowed_origins) list.emplace_back(o);
  return json_response(200, {{"allowed", allowed}, {"origin", origin}, {"allowed-origins", std::move(list)}});
}

// The reason a refusal from core::check_upgrade is counted and logged under.
core::RefusalReason reason_of(const core::HttpRefusal& r) {
  if (r.status == 401) return core::RefusalReason::unauthorized;
  if (r.status == 403) return core::RefusalReason::origin;
  return core::RefusalReason::bad_request;
}

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

template <class Stream>
void BasicHttpSession<Stream>::start() {
  if constexpr (!tls) {
    do_read();
  } else {
    // One --handshake-timeout for the TLS handshake and the first request together: do_read
    // does not re-arm it for the first request.
    stream_.expires_after(loop_.node().config().handshake_timeout);
    stream_.async_handshake([self = this->shared_from_this()](const error_code& ec, std::size_t) {
      self->on_handshake(ec);
    });
  }
}

template <class Stream>
void BasicHttpSession<Stream>::on_handshake(const error_code& ec) {
  if constexpr (tls) {
    if (!ec) return do_read();
    if (ec == beast::error::timeout) {
      loop_.node().metrics().handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
    } else if (ec == asio::error::connection_aborted) {
      // A plain-HTTP request, an old protocol version, no shared cipher: the client's problem,
      // and one a scanner can repeat at will, hence debug.
      error_code peer_ec;
      const auto peer = stream_.socket().remote_endpoint(peer_ec);
      spdlog::debug("TLS handshake with {} failed: {}", peer_ec ? "unknown peer" : peer.address().to_string(),
                    stream_.link().last_error());
    }
    do_close();
  }
}

// "<status> <path> from <peer>[; <note>]": what a refusal's log line says. Never the query string
// (it may carry the token) nor any header but a refused Origin.
template <class Stream>
std::string BasicHttpSession<Stream>::describe_refusal(unsigned status, std::string_view note) {
  error_code ec;
  const auto peer = stream_.socket().remote_endpoint(ec);
  std::string path = parser_ ? std::string(core::target_path(parser_->get().target()).substr(0, 200)) : "";
  std::string line = std::to_string(status) + " " + path + " from ";
  if (ec) {
    line += "unknown peer";
  } else {
    const auto address = peer.address().to_string();
    line += (peer.address().is_v6() ? "[" + address + "]" : address) + ":" + std::to_string(peer.port());
  }
  if (!note.empty()) line += "; " + std::string(note);
  return line;
}

template <class Stream>
void BasicHttpSession<Stream>::refuse_upgrade(core::RefusalReason reason, HttpResponse response, std::string_view note) {
  auto& node = loop_.node();
  node.metrics().count_refusal(reason);
  if (reason == core::RefusalReason::unauthorized) node.metrics().auth_failures.fetch_add(1, std::memory_order_relaxed);
  node.refusal_log().refused(static_cast<std::size_t>(reason), describe_refusal(response.status, note));
  respond(std::move(response));
}

template <class Stream>
void BasicHttpSession<Stream>::do_read() {
  parser_.emplace();
  parser_->body_limit(loop_.node().config().max_body_bytes);
  parser_->header_limit(header_limit_bytes);
  // The whole request, not each read: bytes trickled one at a time do not extend it (slowloris).
  // On a kept-alive connection the wait for the next request counts too.
  if (!tls || requests_ > 0) stream_.expires_after(loop_.node().config().handshake_timeout);
  http::async_read(stream_, buffer_, *parser_,
                   [self = this->shared_from_this()](const error_code& ec, std::size_t) { self->on_read(ec); });
}

template <class Stream>
void BasicHttpSession<Stream>::on_read(const error_code& ec) {
  // A kept-alive connection that simply goes quiet is not counted: only a first request, or one
  // that had begun to arrive.
  if (ec == beast::error::timeout && (requests_ == 0 || parser_->got_some() || buffer_.size() > 0))
    loop_.node().metrics().handshake_timeouts.fetch_add(1, std::memory_order_relaxed);
  ++requests_;
  if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::eof ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
      ec == asio::error::connection_aborted)  // a TLS failure: nothing more can be said over it
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

template <class Stream>
void BasicHttpSession<Stream>::route(Request& req) {
  auto& node = loop_.node();
  auto& hub = node.hub();
  const auto path = core::target_path(req.target());
  const auto method = req.method_string();
  if (path == "/ws") return handle_upgrade(req);
  // HEAD is answered wherever GET is, with GET's status and headers; respond() drops the body.
  const bool get = method == "GET" || method == "HEAD";
  if (path == "/health/realtime" && get) {
    const bool shutting_down = node.shutting_down();
    json::object body{{"status", shutting_down ? "shutting-down" : "healthy"},
                      {"active-connections", hub.connection_count()},
                      {"service", "realtime"}};
    if (hub.distributed()) {
      // Without Redis the node still serves its own connections: degraded, not down.
      const bool up = hub.cluster_reachable();
      body["redis"] = up ? "up" : "down";
      body["node-id"] = node.config().node_id;
      if (!up && !shutting_down) body["status"] = "degraded";
    }
    return respond(json_response(shutting_down ? 503 : 200, body));
  }
  if (path == "/metrics" && get) return respond(metrics_response(node.metrics(), req[http::field::accept]));
  if (node.config().dev_mode && get) {
    if (path == "/dev/check-origin") return respond(dev_check_origin(req, node.config()));
    for (const auto& asset : web_assets()) {
      if (asset.path != path) continue;
      std::string body(asset.body);
      if (path == "/") body = fill_dev_page(std::move(body), node.config());
      return respond(HttpResponse{200, std::move(body), std::string(asset.content_type) + "; charset=utf-8"});
    }
  }
  const auto* custom = node.find_route(method, path);
  if (path.starts_with("/api/")) {
    auto key = core::bearer_token(req[http::field::authorization]);
    if (!key || !core::secrets_equal(*key, node.config().api_key)) {
      node.refusal_log().refused(RefusalLog::api_unauthorized,
                                 describe_refusal(401, key ? "wrong API key" : "no bearer API key"));
      return respond(json_response(401, {{"error", "Unauthorized"}}));
    }
    if (custom) return handle_custom(*custom, req);
    return handle_api(req);
  }
  if (custom) return handle_custom(*custom, req);
  respond(json_response(404, {{"error", "Not found"}}));
}

template <class Stream>
void BasicHttpSession<Stream>::handle_upgrade(Request& req) {
  auto& node = loop_.node();
  keep_alive_ = false;
  if (node.shutting_down())
    return refuse_upgrade(core::RefusalReason::shutting_down, json_response(503, {{"error", "Server shutting down"}}));
  core::UpgradeRequest u{req.method_string(),
                         req.target(),
                         beast::websocket::is_upgrade(req),
                         req[http::field::sec_websocket_version],
                         req[http::field::sec_websocket_key],
                         req[http::field::origin],
                         req[http::field::authorization]};
  auto token = core::check_upgrade(u, node.config().allowed_origins);
  if (!token) {
    const auto reason = reason_of(token.error());
    std::string note;
    if (reason == core::RefusalReason::origin)
      note = "Origin '" + std::string(u.origin.substr(0, 200)) + "' is not in --allowed-origins";
    else if (reason == core::RefusalReason::unauthorized)
      note = "no token";
    return refuse_upgrade(reason, refusal(token.error()), note);
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  auto identity = node.verifier().verify(*token, now);
  if (!identity && identity.error() == AuthError::unknown_key && !awaited_keys_) {
    // A JWKS without the token's kid: wait once for the fetch this caused (or one under way),
    // then decide again from the start (the server may have begun shutting down meanwhile).
    awaited_keys_ = true;
    auto ready = [self = this->shared_from_this(), ex = stream_.get_executor()] {
      boost::asio::post(ex, [self] { self->handle_upgrade(self->parser_->get()); });
    };
    if (node.verifier().await_keys(*token, std::move(ready))) return;
  }
  if (!identity) {
    // Every one, at debug; the info line below is rate-limited.
    spdlog::debug("token rejected: {}", to_string(identity.error()));
    return refuse_upgrade(core::RefusalReason::unauthorized, json_response(401, {{"error", "Unauthorized"}}),
                          "bad token (" + std::string(to_string(identity.error())) + ")");
  }
  // The limits come after the token (the per-user count needs the user) and before the
  // application's hook and any memory for the session. The slot is ours until WsSession::unregister.
  if (auto full = node.admit_connection(identity->user_id))
    return refuse_upgrade(full->reason, refusal(full->http), "user '" + identity->user_id.substr(0, 100) + "'");
  std::string id = uuid_v4();
  if (const auto& hook = node.hooks().on_connect) {
    ConnectDecision decision;
    try {
      decision = hook(ConnectionInfo{id, *identity});
    } catch (const std::exception& e) {
      spdlog::error("connect hook failed: {}", e.what());
      decision = ConnectDecision::refuse("Forbidden");
    }
    if (!decision.accept) {
      node.release_connection(identity->user_id);
      return refuse_upgrade(core::RefusalReason::application,
                            json_response(403, {{"error", decision.reason.empty() ? "Forbidden" : decision.reason}}),
                            decision.reason.substr(0, 200));
    }
    if (decision.app_data) {
      auto profile = identity->profile ? std::make_shared<ProfileClaims>(*identity->profile)
                                       : std::make_shared<ProfileClaims>();
      profile->app_data = std::move(decision.app_data);
      identity->profile = std::move(profile);
    }
  }
  std::optional<core::DeflateAgreement> deflate;
  if (node.config().compression) {
    std::string offers;  // the header may come more than once (RFC 7230 3.2.2)
    const auto [first, last] = req.equal_range(http::field::sec_websocket_extensions);
    for (auto it = first; it != last; ++it) {
      if (!offers.empty()) offers += ", ";
      offers.append(it->value().data(), it->value().size());
    }
    deflate = core::negotiate_deflate(offers);
  }
  std::string response =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
      websocket_accept(u.key) + "\r\n";
  if (deflate) response += "Sec-WebSocket-Extensions: " + core::deflate_response(*deflate) + "\r\n";
  response += "\r\n";
  const auto early = buffer_.cdata();
  std::string_view early_bytes(static_cast<const char*>(early.data()), early.size());
  stream_.expires_never();
  std::shared_ptr<WsSession> session;
  if constexpr (tls) {
    auto [socket, link] = stream_.release();
    session = std::make_shared<WsSession>(loop_, std::move(socket), id, std::move(link));
  } else {
    session = std::make_shared<WsSession>(loop_, stream_.release_socket(), id);
  }
  session->start(std::move(*identity), std::move(response), early_bytes, deflate);
}

template <class Stream>
void BasicHttpSession<Stream>::handle_api(Request& req) {
  const bool head = req.method() == http::verb::head;
  auto call = core::route_api(head ? beast::string_view("GET") : req.method_string(), core::target_path(req.target()));
  if (!call) return respond(refusal(call.error()));
  if (*call == core::ApiCall::history) return handle_history(req);
  auto parsed = core::parse_api_body(*call, req.body());
  if (!parsed) return respond(refusal(parsed.error()));
  auto& hub = loop_.node().hub();
  auto r = std::move(*parsed);
  auto reply = responder();
  // Cluster fire-and-forget: body "wait": false or header Prefer: respond-async.
  const SendOptions options{r.wait && req["Prefer"].find("respond-async") == std::string_view::npos};
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
      return hub.send(Route::user, r.user_id, std::move(r.message), options, count("delivered"));
    case core::ApiCall::send_to_role: return hub.send(Route::role, r.role, std::move(r.message), options, count("delivered"));
    case core::ApiCall::broadcast: return hub.send(Route::all, {}, std::move(r.message), options, count("delivered"));
    case core::ApiCall::send_to_connection:
      return hub.send(Route::connection, r.connection_id, std::move(r.message), options, flag("delivered"));
    case core::ApiCall::publish:
      return hub.send(Route::topic, r.topic, std::move(r.message), options, [delivered = count("delivered"), reply](Delivery d) {
        // A stream answers the message's offset too.
        if (d.offset == 0 || d.queued || !d.reached) return delivered(d);
        reply(json_response(200, {{"delivered", d.count}, {"offset", d.offset}}));
      });
    case core::ApiCall::history: return;  // answered above
    case core::ApiCall::subscribe:
      return hub.control(Route::subscribe, r.connection_id, r.topic, options, [reply, subscribed = flag("subscribed")](Delivery d) {
        // --max-subscriptions binds the API too: a refusal the backend can tell from "no such
        // connection".
        if (!d.queued && d.reached && d.count == static_cast<std::size_t>(SubscribeAnswer::limit_reached))
          return reply(json_response(409, {{"error", "subscription limit reached"}, {"subscribed", false}}));
        subscribed(d);
      });
    case core::ApiCall::unsubscribe: return hub.control(Route::unsubscribe, r.connection_id, r.topic, options, flag("unsubscribed"));
    case core::ApiCall::disconnect:
      if (!r.connection_id.empty())
        return hub.control(Route::disconnect, r.connection_id, {}, options, count("disconnected"));
      return hub.control(Route::disconnect_user, r.user_id, {}, options, count("disconnected"));
    case core::ApiCall::connections: return hub.control(Route::count, {}, {}, {}, count("count"));
  }
}

template <class Stream>
void BasicHttpSession<Stream>::handle_history(Request& req) {
  auto parsed = core::parse_history_query(req.target());
  if (!parsed) return respond(refusal(parsed.error()));
  auto* history = loop_.node().hub().history();
  if (!history || !history->keeps(parsed->topic))
    return respond(refusal(core::HttpRefusal{404, core::error_body("this topic keeps no history")}));
  auto reply = responder();
  history->read(parsed->topic, parsed->since, parsed->limit, [reply, topic = parsed->topic](HistorySnapshot snap) {
    std::vector<std::string_view> messages;
    messages.reserve(snap.messages.size());
    for (const auto& m : snap.messages) messages.push_back(m.json());
    reply(HttpResponse{200, core::reply_history(topic, snap.epoch, snap.last, messages, nullptr), "application/json"});
  });
}

template <class Stream>
void BasicHttpSession<Stream>::handle_custom(const Server::RouteHandler& handler, Request& req) {
  HttpRequest r{std::string(req.method_string()), std::string(req.target()), std::move(req.body()),
                std::string(req[http::field::authorization])};
  try {
    handler(r, responder());
  } catch (const std::exception& e) {
    spdlog::error("route {} failed: {}", r.target.substr(0, r.target.find('?')), e.what());
    respond(json_response(500, {{"error", "Internal server error"}}));
  }
}

template <class Stream>
Server::Responder BasicHttpSession<Stream>::responder() {
  return [self = this->shared_from_this()](HttpResponse response) {
    asio::post(self->loop_.io(), [self, response = std::move(response)]() mutable { self->respond(std::move(response)); });
  };
}

template <class Stream>
void BasicHttpSession<Stream>::respond(HttpResponse r) {
  auto& node = loop_.node();
  if (parser_ && core::target_path(parser_->get().target()).starts_with("/api/")) {
    node.metrics().api_requests.fetch_add(1, std::memory_order_relaxed);
    if (r.status >= 400) node.metrics().api_errors.fetch_add(1, std::memory_order_relaxed);
  }
  auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), version_);
  res->set(http::field::server, "boundary-realtime");
  res->set(http::field::content_type, r.content_type);
  if (r.status == 426) res->set(http::field::sec_websocket_version, "13");  // RFC 6455 section 4.4
  res->keep_alive(keep_alive_ && !node.shutting_down());
  res->body() = std::move(r.body);
  res->prepare_payload();
  // HEAD: the Content-Length GET would have, and no body (RFC 9110 section 9.3.2).
  if (parser_ && parser_->get().method() == http::verb::head) res->body().clear();
  stream_.expires_after(write_timeout);
  http::async_write(stream_, *res, [self = this->shared_from_this(), res](const error_code& ec, std::size_t) {
    if (ec || !res->keep_alive()) return self->do_close();
    self->do_read();
  });
}

template <class Stream>
void BasicHttpSession<Stream>::do_close() {
  if constexpr (tls) {
    stream_.close();
  } else {
    error_code ec;
    stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_send, ec);
    stream_.close();
  }
}

template class BasicHttpSession<PlainStream>;
template class BasicHttpSession<TlsStream>;

}  // namespace boundary::realtime::shell
