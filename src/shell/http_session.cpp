#include "shell/http_session.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <chrono>
#include <functional>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <spdlog/spdlog.h>

#include "core/command.hpp"
#include "core/http_rules.hpp"
#include "core/permessage_deflate.hpp"
#include "core/presence.hpp"
#include "core/pusher.hpp"
#include "shell/adapters/random.hpp"
#include "shell/adapters/websocket_accept.hpp"
#include "shell/hub.hpp"
#include "shell/loop.hpp"
#include "shell/node.hpp"
#include "shell/pusher_api.hpp"
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
// Pipelined API requests read ahead and dispatched on one connection before their answers are
// written: the bound on what one connection holds in flight.
constexpr std::size_t max_in_flight = 64;
// The read buffer of a connection that has made an API call.
constexpr std::size_t api_read_bytes = 32 * 1024;

bool is_api(std::string_view target) {
  const auto path = core::target_path(target);
  return path.starts_with("/api/") || path.starts_with("/apps/");  // the native API and the Pusher API
}

// An answer as it goes on the wire (HTTP/1.1 or 1.0). HEAD: the Content-Length GET would have,
// and no body (RFC 9110 section 9.3.2).
void serialize(const HttpResponse& r, unsigned version, bool keep_alive, bool head, std::string& out) {
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  out += std::to_string(r.status);
  out += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
  out.append(reason.data(), reason.size());
  out += "\r\nServer: boundary-realtime\r\n";
  if (!r.content_type.empty()) out += "Content-Type: " + r.content_type + "\r\n";
  if (r.status == 426) out += "Sec-WebSocket-Version: 13\r\n";  // RFC 6455 section 4.4
  const bool bodiless = r.status < 200 || r.status == 204 || r.status == 304;
  if (!bodiless) out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
  if (version != 10 && !keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!bodiless && !head) out += r.body;
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

// What an upgrade request says, for core::check_upgrade / check_websocket_request.
core::UpgradeRequest upgrade_request(const http::request<http::string_body>& req) {
  return core::UpgradeRequest{req.method_string(),
                              req.target(),
                              beast::websocket::is_upgrade(req),
                              req[http::field::sec_websocket_version],
                              req[http::field::sec_websocket_key],
                              req[http::field::origin],
                              req[http::field::authorization]};
}

// The refusal log's note for an upgrade refused before its token was verified.
std::string refusal_note(core::RefusalReason reason, std::string_view origin) {
  if (reason == core::RefusalReason::origin)
    return "Origin '" + std::string(origin.substr(0, 200)) + "' is not in --allowed-origins";
  if (reason == core::RefusalReason::unauthorized) return "no token";
  return {};
}

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

// One API call, answered through `done` with the status and JSON body of its answer (the same for
// a single call and for a batch item). `done` may run on any loop.
using ApiDone = std::function<void(unsigned, json::object)>;
void execute_api(Hub& hub, core::ApiRequest r, SendOptions options, ApiDone done) {
  auto answer = [&done](const char* key, bool as_flag) {
    return [done, key, as_flag](Delivery d) {
      json::value v = as_flag ? json::value(d.count > 0) : json::value(d.count);
      if (d.queued) return done(200, {{key, nullptr}, {"queued", true}});
      // The cluster could not be reached: only this node's connections got it. Not a success.
      if (!d.reached) return done(503, {{"error", "cluster unavailable"}, {key, v}});
      done(200, {{key, v}});
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
      return hub.send(Route::topic, r.topic, std::move(r.message), options, [delivered = count("delivered"), done](Delivery d) {
        // A stream answers the message's offset too (in cluster mode known once Redis stored it,
        // also without waiting for the count).
        if (d.offset == 0 || !d.reached) return delivered(d);
        if (d.queued) return done(200, {{"delivered", nullptr}, {"queued", true}, {"offset", d.offset}});
        done(200, {{"delivered", d.count}, {"offset", d.offset}});
      });
    case core::ApiCall::subscribe:
      return hub.control(Route::subscribe, r.connection_id, r.topic, options, [done, subscribed = flag("subscribed")](Delivery d) {
        // --max-subscriptions binds the API too: a refusal the backend can tell from "no such
        // connection".
        if (!d.queued && d.reached && d.count == static_cast<std::size_t>(SubscribeAnswer::limit_reached))
          return done(409, {{"error", "subscription limit reached"}, {"subscribed", false}});
        subscribed(d);
      });
    case core::ApiCall::unsubscribe: return hub.control(Route::unsubscribe, r.connection_id, r.topic, options, flag("unsubscribed"));
    case core::ApiCall::disconnect:
      if (!r.connection_id.empty())
        return hub.control(Route::disconnect, r.connection_id, {}, options, count("disconnected"));
      return hub.control(Route::disconnect_user, r.user_id, {}, options, count("disconnected"));
    case core::ApiCall::connections: return hub.control(Route::count, {}, {}, {}, count("count"));
    case core::ApiCall::history:  // GET /api/history: handle_history, not an item kind
    case core::ApiCall::presence:  // GET /api/presence(-stats): handle_presence, not item kinds
    case core::ApiCall::presence_stats:
    case core::ApiCall::batch: break;  // not an item kind: parse_batch_body never yields it
  }
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
  const Request* req = current_ ? current_ : parser_ ? &parser_->get() : nullptr;
  std::string path = req ? std::string(core::target_path(req->target()).substr(0, 200)) : "";
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
  auto& req = parser_->get();
  if (ec) {
    dispatch(req, false);
    if (ec == http::error::body_limit) return respond(json_response(413, {{"error", "Request body too large"}}));
    if (ec == http::error::header_limit) return respond(json_response(431, {{"error", "Request headers too large"}}));
    return respond(json_response(400, {{"error", "Bad request"}}));
  }
  const bool keep_alive = req.keep_alive();
  dispatch(req, keep_alive);
  route(req);
  current_ = nullptr;
  // Only API requests are read ahead: an upgrade takes the socket, and the other routes are not
  // worth the wait of the requests behind them.
  if (keep_alive && is_api(req.target())) {
    // A backend's connection: read in large pieces from now on (Beast reads at most the buffer's
    // spare capacity, 512 bytes at first), so that a pipelined burst is dispatched in one pass.
    if (buffer_.capacity() < api_read_bytes) buffer_.reserve(api_read_bytes);
    read_ahead();
  }
}

template <class Stream>
void BasicHttpSession<Stream>::dispatch(Request& req, bool keep_alive) {
  Pending p;
  p.api = is_api(req.target());
  p.head = req.method() == http::verb::head;
  p.keep_alive = keep_alive;
  p.version = req.version() == 10 ? 10 : 11;
  current_seq_ = first_seq_ + pending_.size();
  current_ = &req;
  pending_.push_back(std::move(p));
}

template <class Stream>
void BasicHttpSession<Stream>::read_ahead() {
  const auto& config = loop_.node().config();
  while (pending_.size() < max_in_flight && buffer_.size() > 0) {
    // Only a complete request is taken from the buffer; anything else (a partial request, one
    // over a limit, a malformed one) is left for the ordinary read once the answers are out.
    http::request_parser<http::string_body> parser;
    parser.body_limit(config.max_body_bytes);
    parser.header_limit(header_limit_bytes);
    parser.eager(true);
    const auto data = buffer_.cdata();
    const auto* bytes = static_cast<const char*>(data.data());
    std::size_t used = 0;
    error_code ec;
    while (!ec && !parser.is_done()) {
      if (used == data.size()) return;
      used += parser.put(asio::buffer(bytes + used, data.size() - used), ec);
    }
    if (ec || !is_api(parser.get().target())) return;
    buffer_.consume(used);
    ++requests_;
    auto& req = parser.get();
    const bool keep_alive = req.keep_alive();
    dispatch(req, keep_alive);
    route(req);
    current_ = nullptr;
    if (!keep_alive) return;
  }
}

template <class Stream>
void BasicHttpSession<Stream>::route(Request& req) {
  auto& node = loop_.node();
  auto& hub = node.hub();
  const auto path = core::target_path(req.target());
  const auto method = req.method_string();
  if (path == "/ws") return handle_upgrade(req);
  if (path.starts_with("/app/") && !node.pusher_apps().empty()) return handle_pusher_upgrade(req);
  if (path.starts_with("/apps/") && !node.pusher_apps().empty()) {
    PusherApiRequest r{std::string(method), std::string(req.target()), std::move(req.body())};
    return handle_pusher_api(node, std::move(r), responder());
  }
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
  pending_[current_seq_ - first_seq_].keep_alive = false;  // a refused upgrade closes the connection
  if (node.shutting_down())
    return refuse_upgrade(core::RefusalReason::shutting_down, json_response(503, {{"error", "Server shutting down"}}));
  const auto u = upgrade_request(req);
  auto token = core::check_upgrade(u, node.config().allowed_origins);
  if (!token) {
    const auto reason = reason_of(token.error());
    return refuse_upgrade(reason, refusal(token.error()), refusal_note(reason, u.origin));
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
  upgrade_to_websocket(req, u.key, uuid_v4(), std::move(*identity), std::nullopt);
}

// GET /app/<key>?protocol=7: a Pusher protocol connection (docs/pusher.md). No token: the app's
// key names the app, and private channels are authorized per subscription. An unknown key or an
// unsupported protocol is told over the WebSocket (pusher:error, then close 4001 / 4007), as
// Pusher clients expect, so that they do not reconnect.
template <class Stream>
void BasicHttpSession<Stream>::handle_pusher_upgrade(Request& req) {
  auto& node = loop_.node();
  pending_[current_seq_ - first_seq_].keep_alive = false;
  if (node.shutting_down())
    return refuse_upgrade(core::RefusalReason::shutting_down, json_response(503, {{"error", "Server shutting down"}}));
  const auto u = upgrade_request(req);
  if (auto bad = core::check_websocket_request(u, node.config().allowed_origins)) {
    const auto reason = reason_of(*bad);
    return refuse_upgrade(reason, refusal(*bad), refusal_note(reason, u.origin));
  }
  const auto key = core::target_path(req.target()).substr(5);
  auto socket_id = pusher_socket_id();
  Identity identity;  // no user (empty) until pusher:signin or a presence channel names one
  std::optional<std::size_t> app = node.pusher_app_by_key(key);
  const auto protocol = core::query_param(req.target(), "protocol");
  std::optional<std::pair<int, std::string>> fatal;
  if (!app) fatal.emplace(core::pusher::close_app_unknown, "App key not in this server");
  else if (!protocol || !core::pusher::protocol_supported(*protocol))
    fatal.emplace(core::pusher::close_protocol_unsupported, "Unsupported protocol version (7 required)");
  upgrade_to_websocket(req, u.key, std::move(socket_id), std::move(identity), app ? app : std::optional<std::size_t>(0),
                       std::move(fatal));
}

template <class Stream>
void BasicHttpSession<Stream>::upgrade_to_websocket(Request& req, std::string_view key, std::string id,
                                                    Identity identity_value, std::optional<std::size_t> pusher_app,
                                                    std::optional<std::pair<int, std::string>> pusher_fatal) {
  auto& node = loop_.node();
  auto identity = &identity_value;
  // The limits come after the token (the per-user count needs the user) and before the
  // application's hook and any memory for the session. The slot is ours until WsSession::unregister.
  // A Pusher connection without a user yet counts as a user of its own (its socket id).
  const std::string_view admitted_as = pusher_app && identity->user_id.empty() ? std::string_view(id) : identity->user_id;
  if (auto full = node.admit_connection(admitted_as))
    return refuse_upgrade(full->reason, refusal(full->http), "user '" + identity->user_id.substr(0, 100) + "'");
  if (const auto& hook = node.hooks().on_connect; hook && !pusher_fatal) {
    ConnectDecision decision;
    try {
      decision = hook(ConnectionInfo{id, *identity});
    } catch (const std::exception& e) {
      spdlog::error("connect hook failed: {}", e.what());
      decision = ConnectDecision::refuse("Forbidden");
    }
    if (!decision.accept) {
      node.release_connection(admitted_as);
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
      websocket_accept(key) + "\r\n";
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
  if (pusher_app) session->speak_pusher(*pusher_app);
  session->start(std::move(*identity), std::move(response), early_bytes, deflate, std::move(pusher_fatal));
}

template <class Stream>
void BasicHttpSession<Stream>::handle_api(Request& req) {
  const bool head = req.method() == http::verb::head;
  auto call = core::route_api(head ? beast::string_view("GET") : req.method_string(), core::target_path(req.target()));
  if (!call) return respond(refusal(call.error()));
  if (*call == core::ApiCall::history) return handle_history(req);
  if (*call == core::ApiCall::presence || *call == core::ApiCall::presence_stats) return handle_presence(*call == core::ApiCall::presence_stats, req);
  auto& hub = loop_.node().hub();
  // Cluster fire-and-forget: body "wait": false or header Prefer: respond-async.
  const bool prefer_async = req["Prefer"].find("respond-async") != std::string_view::npos;
  auto reply = responder();
  if (*call == core::ApiCall::batch) {
    auto items = core::parse_batch_body(req.body());
    if (!items) return respond(refusal(items.error()));
    // Every item is dispatched now, in order (so their messages keep that order on every
    // connection); the answer waits for the last result, on whichever loop gives it.
    struct Gather {
      std::vector<json::object> results;
      std::atomic<std::size_t> remaining;
      Server::Responder reply;
    };
    auto g = std::make_shared<Gather>();
    g->results.resize(items->size());
    g->remaining = items->size() + 1;  // + 1: held until every item is dispatched
    g->reply = std::move(reply);
    auto finish = [g] {
      if (g->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      json::array out;
      out.reserve(g->results.size());
      for (auto& r : g->results) out.emplace_back(std::move(r));
      g->reply(json_response(200, {{"results", std::move(out)}}));
    };
    for (std::size_t i = 0; i < items->size(); ++i) {
      auto done = [g, i, finish](unsigned status, json::object body) {
        body["status"] = status;
        g->results[i] = std::move(body);
        finish();
      };
      auto& item = (*items)[i];
      if (!item) {
        done(item.error().status, json::parse(item.error().body).as_object());
        continue;
      }
      const SendOptions options{item->wait && !prefer_async};
      execute_api(hub, std::move(*item), options, std::move(done));
    }
    return finish();
  }
  auto parsed = core::parse_api_body(*call, req.body());
  if (!parsed) return respond(refusal(parsed.error()));
  const SendOptions options{parsed->wait && !prefer_async};
  execute_api(hub, std::move(*parsed), options, [reply](unsigned status, json::object body) {
    reply(json_response(status, body));
  });
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
    if (!snap.available) {
      reply(HttpResponse{503, core::error_body("history is unavailable: Redis did not answer"), "application/json"});
      return;
    }
    std::vector<std::string_view> messages;
    messages.reserve(snap.messages.size());
    for (const auto& m : snap.messages) messages.push_back(m.json());
    reply(HttpResponse{200, core::reply_history(topic, snap.epoch, snap.last, messages, nullptr), "application/json"});
  });
}

template <class Stream>
void BasicHttpSession<Stream>::handle_presence(bool stats, Request& req) {
  const auto call = stats ? core::ApiCall::presence_stats : core::ApiCall::presence;
  auto parsed = core::parse_presence_query(call, req.target());
  if (!parsed) return respond(refusal(parsed.error()));
  auto* presence = loop_.node().presence();
  if (!presence || !presence->tracks(parsed->topic))
    return respond(refusal(core::HttpRefusal{404, core::error_body("this topic has no presence")}));
  auto reply = responder();
  if (stats) {
    presence->stats(parsed->topic, [reply](PresenceStats s) {
      if (!s.available)
        return reply(HttpResponse{503, core::error_body("presence is unavailable"), "application/json"});
      reply(HttpResponse{200, core::presence_stats_body(s), "application/json"});
    });
    return;
  }
  presence->list(parsed->topic, loop_.node().config().presence_max_users,
                 [reply, topic = parsed->topic](PresenceListing listing) {
                   if (!listing.available)
                     return reply(HttpResponse{503, core::error_body("presence is unavailable"), "application/json"});
                   reply(HttpResponse{200, core::reply_presence(topic, listing, nullptr), "application/json"});
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
  return [self = this->shared_from_this(), seq = current_seq_](HttpResponse response) {
    // On this session's loop already (a count gathered by the loop that dispatched it): at once,
    // so that the answer leaves in this pass's flush.
    if (self->loop_.io().get_executor().running_in_this_thread()) return self->answer(seq, std::move(response));
    asio::post(self->loop_.io(), [self, seq, response = std::move(response)]() mutable {
      self->answer(seq, std::move(response));
    });
  };
}

template <class Stream>
void BasicHttpSession<Stream>::respond(HttpResponse r) {
  answer(current_seq_, std::move(r));
}

template <class Stream>
void BasicHttpSession<Stream>::answer(std::uint64_t seq, HttpResponse r) {
  if (seq < first_seq_ || seq - first_seq_ >= pending_.size()) return;  // the connection is gone
  auto& p = pending_[seq - first_seq_];
  if (p.response) return;  // a custom route answered twice: the first answer stands
  if (p.api) {
    auto& metrics = loop_.node().metrics();
    metrics.api_requests.fetch_add(1, std::memory_order_relaxed);
    if (r.status >= 400) metrics.api_errors.fetch_add(1, std::memory_order_relaxed);
  }
  p.response = std::move(r);
  // Answers that become ready in the same loop pass leave together, at the start of its flush.
  if (writing_ || write_posted_) return;
  write_posted_ = true;
  loop_.schedule_answer([self = this->shared_from_this()] { self->do_write(); });
}

template <class Stream>
void BasicHttpSession<Stream>::do_write() {
  write_posted_ = false;
  if (writing_ || closing_) return;
  out_.clear();
  const bool shutting_down = loop_.node().shutting_down();
  while (!pending_.empty() && pending_.front().response) {
    auto& p = pending_.front();
    const bool keep_alive = p.keep_alive && !shutting_down;
    serialize(*p.response, p.version, keep_alive, p.head, out_);
    pending_.pop_front();
    ++first_seq_;
    if (!keep_alive) {
      closing_ = true;
      break;
    }
  }
  if (out_.empty()) return;
  writing_ = true;
  stream_.expires_after(write_timeout);
  asio::async_write(stream_, asio::buffer(out_), [self = this->shared_from_this()](const error_code& ec, std::size_t) {
    self->writing_ = false;
    if (ec || self->closing_) {
      self->pending_.clear();
      return self->do_close();
    }
    if (!self->pending_.empty()) {
      if (self->pending_.front().response) self->do_write();
      return;
    }
    self->out_.clear();
    self->out_.shrink_to_fit();  // an idle kept-alive connection holds no answer buffer
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
