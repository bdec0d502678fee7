#include "core/http_rules.hpp"

#include <charconv>

#include <cctype>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/parse_util.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {
namespace json = boost::json;
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

HttpRefusal bad(std::string message) { return HttpRefusal{400, error_body(message)}; }

// A Sec-WebSocket-Key is the base64 of 16 bytes: 24 characters ending in "==".
bool valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (char c : key.substr(0, 22))
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/') return false;
  return true;
}

struct Route {
  std::string_view path;
  std::string_view method;
  ApiCall call;
};

constexpr Route routes[] = {
    {"/api/send-to-user", "POST", ApiCall::send_to_user},
    {"/api/send-to-role", "POST", ApiCall::send_to_role},
    {"/api/broadcast", "POST", ApiCall::broadcast},
    {"/api/send-to-connection", "POST", ApiCall::send_to_connection},
    {"/api/publish", "POST", ApiCall::publish},
    {"/api/subscribe", "POST", ApiCall::subscribe},
    {"/api/unsubscribe", "POST", ApiCall::unsubscribe},
    {"/api/disconnect", "POST", ApiCall::disconnect},
    {"/api/connections", "GET", ApiCall::connections},
    {"/api/history", "GET", ApiCall::history},
    {"/api/presence", "GET", ApiCall::presence},
    {"/api/presence-stats", "GET", ApiCall::presence_stats},
    {"/api/batch", "POST", ApiCall::batch},
};

// Reads a required non-empty string field into `out`.
std::optional<HttpRefusal> string_field(const json::object& body, std::string_view name, std::string& out) {
  auto* v = body.if_contains(name);
  if (!v) return bad("missing field: " + std::string(name));
  // User ids may be numbers, as the `sub` claim may: they are handled as strings throughout.
  if (name == "user-id" && (v->is_int64() || v->is_uint64())) {
    out = v->is_int64() ? std::to_string(v->get_int64()) : std::to_string(v->get_uint64());
    return std::nullopt;
  }
  if (!v->is_string() || v->get_string().empty())
    return bad(std::string(name) + (name == "user-id" ? " must be a non-empty string or an integer" : " must be a non-empty string"));
  out = std::string(v->get_string());
  return std::nullopt;
}

std::optional<HttpRefusal> message_field(json::object& body, json::object& out) {
  auto* v = body.if_contains("message");
  if (!v) return bad("missing field: message");
  if (!v->is_object()) return bad("message must be a JSON object");
  auto* type = v->get_object().if_contains("type");
  if (!type || !type->is_string()) return bad("message must have a string type");
  out = std::move(v->get_object());
  return std::nullopt;
}

std::optional<HttpRefusal> topic_field(const json::object& body, std::string& out) {
  if (auto err = string_field(body, "topic", out)) return err;
  if (!is_valid_topic(out)) return bad("topic must be 1-256 bytes without whitespace or control characters");
  return std::nullopt;
}

std::optional<HttpRefusal> fill(ApiRequest& req, json::object& body) {
  // Cluster fire-and-forget (docs/cluster.md): "wait": false answers without gathering counts.
  if (const auto* w = body.if_contains("wait")) {
    if (!w->is_bool()) return bad("wait must be true or false");
    req.wait = w->get_bool();
  }
  switch (req.call) {
    case ApiCall::send_to_user:
      if (auto e = string_field(body, "user-id", req.user_id)) return e;
      return message_field(body, req.message);
    case ApiCall::send_to_role:
      if (auto e = string_field(body, "role", req.role)) return e;
      return message_field(body, req.message);
    case ApiCall::broadcast: return message_field(body, req.message);
    case ApiCall::send_to_connection:
      if (auto e = string_field(body, "connection-id", req.connection_id)) return e;
      return message_field(body, req.message);
    case ApiCall::publish: {
      if (auto e = topic_field(body, req.topic)) return e;
      if (auto e = message_field(body, req.message)) return e;
      if (is_reserved_topic_type(req.message.at("type").get_string())) return bad(std::string(reserved_type_refusal));
      return std::nullopt;
    }
    case ApiCall::subscribe:
    case ApiCall::unsubscribe:
      if (auto e = string_field(body, "connection-id", req.connection_id)) return e;
      return topic_field(body, req.topic);
    case ApiCall::disconnect:
      if (body.contains("connection-id")) return string_field(body, "connection-id", req.connection_id);
      if (body.contains("user-id")) return string_field(body, "user-id", req.user_id);
      return bad("missing field: connection-id or user-id");
    case ApiCall::connections:
    case ApiCall::history:  // no body: parse_history_query
    case ApiCall::presence:
    case ApiCall::presence_stats: return std::nullopt;  // no body: parse_presence_query
    case ApiCall::batch: return std::nullopt;
  }
  return std::nullopt;
}

ApiItem parse_item(json::value& v) {
  if (!v.is_object()) return bad("item must be a JSON object");
  auto& item = v.get_object();
  const auto* kind = item.if_contains("kind");
  if (!kind || !kind->is_string()) return bad("item must have a string kind");
  const std::string_view name = kind->get_string();
  for (const auto& r : routes) {
    if (r.method != "POST" || r.call == ApiCall::batch || r.path.substr(5) != name) continue;
    ApiRequest req;
    req.call = r.call;
    if (auto err = fill(req, item)) return *err;
    return req;
  }
  return bad("unknown kind: " + std::string(name.substr(0, 64)));
}

}  // namespace

std::string error_body(std::string_view message) { return json::serialize(json::object{{"error", message}}); }

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::string_view target_path(std::string_view target) noexcept { return target.substr(0, target.find('?')); }

std::size_t query_param_count(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return 0;
  std::size_t count = 0;
  std::string_view query = target.substr(q + 1);
  for (;;) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    if (pair.substr(0, pair.find('=')) == name) ++count;
    if (amp == std::string_view::npos) return count;
    query.remove_prefix(amp + 1);
  }
}

std::optional<std::string> query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto pair = query.substr(0, amp);
    auto eq = pair.find('=');
    if (pair.substr(0, eq) == name) return percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept {
  if (authorization.size() < 7 || !iequals(authorization.substr(0, 7), "Bearer ")) return std::nullopt;
  auto token = authorization.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

bool secrets_equal(std::string_view a, std::string_view b) noexcept {
  // Length is not secret (keys have fixed, documented lengths); the content is.
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff = diff | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  return diff == 0;
}

std::optional<HttpRefusal> check_websocket_request(const UpgradeRequest& req,
                                                   const std::vector<std::string>& allowed_origins) {
  if (req.method != "GET" || !req.websocket_upgrade) return HttpRefusal{400, error_body("Not a WebSocket request")};
  if (req.version != "13") return HttpRefusal{426, error_body("Unsupported WebSocket version (13 required)")};
  if (!valid_key(req.key)) return HttpRefusal{400, error_body("Invalid Sec-WebSocket-Key")};
  if (!allowed_origins.empty()) {
    bool allowed = false;
    for (const auto& o : allowed_origins) allowed = allowed || iequals(o, req.origin);
    if (!allowed) return HttpRefusal{403, error_body("Forbidden")};
  }
  return std::nullopt;
}

boost::system::result<std::string, HttpRefusal> check_upgrade(const UpgradeRequest& req,
                                                              const std::vector<std::string>& allowed_origins) {
  if (auto bad = check_websocket_request(req, allowed_origins)) return std::move(*bad);
  auto unauthorized = HttpRefusal{401, error_body("Unauthorized")};
  // One request, one token (RFC 6750 §2: a client must not use more than one method). With two,
  // a proxy in front may check one while the server uses the other. Other schemes in the
  // header (a browser repeating the page's Basic credentials) are not a second token.
  if (query_param_count(req.target, "token") > 1 ||
      (query_param(req.target, "token") && bearer_token(req.authorization)))
    return HttpRefusal{400, error_body("More than one token given")};
  if (auto token = query_param(req.target, "token")) {
    if (token->empty()) return unauthorized;
    return std::move(*token);
  }
  if (auto token = bearer_token(req.authorization)) return std::string(*token);
  return unauthorized;
}

boost::system::result<ApiCall, HttpRefusal> route_api(std::string_view method, std::string_view path) {
  for (const auto& r : routes) {
    if (r.path != path) continue;
    if (r.method != method) return HttpRefusal{405, error_body("Method not allowed")};
    return r.call;
  }
  return HttpRefusal{404, error_body("Not found")};
}

boost::system::result<std::vector<ApiItem>, HttpRefusal> parse_batch_body(std::string_view body) {
  auto parsed = parse_strict_json(body);
  if (parsed.problem == JsonProblem::invalid) return bad("body is not valid JSON");
  if (parsed.problem == JsonProblem::duplicate_key) return bad("body has a key twice");
  json::value& v = parsed.value;
  if (!v.is_array()) return bad("body must be a JSON array");
  auto& items = v.get_array();
  if (items.size() > max_batch_items)
    return HttpRefusal{413, error_body("a batch carries at most " + std::to_string(max_batch_items) + " items")};
  if (!all_numbers_finite(v)) return bad("numbers must be within the range of a double");
  std::vector<ApiItem> out;
  out.reserve(items.size());
  for (auto& item : items) out.push_back(parse_item(item));
  return out;
}

boost::system::result<ApiRequest, HttpRefusal> parse_api_body(ApiCall call, std::string_view body) {
  ApiRequest req;
  req.call = call;
  if (call == ApiCall::connections || call == ApiCall::history || call == ApiCall::batch ||
      call == ApiCall::presence || call == ApiCall::presence_stats)
    return req;
  auto parsed = parse_strict_json(body);
  if (parsed.problem == JsonProblem::invalid) return bad("body is not valid JSON");
  if (parsed.problem == JsonProblem::duplicate_key) return bad("body has a key twice");
  json::value& v = parsed.value;
  if (!v.is_object()) return bad("body must be a JSON object");
  if (!all_numbers_finite(v)) return bad("numbers must be within the range of a double");
  if (auto err = fill(req, v.get_object())) return *err;
  return req;
}

boost::system::result<ApiRequest, HttpRefusal> parse_history_query(std::string_view target) {
  ApiRequest req;
  req.call = ApiCall::history;
  for (const char* name : {"topic", "since", "limit"})
    if (query_param_count(target, name) > 1) return bad(std::string(name) + " is given twice");
  auto topic = query_param(target, "topic");
  if (!topic || !is_valid_topic(*topic)) return bad("topic must be 1-256 bytes without whitespace or control characters");
  req.topic = std::move(*topic);
  auto number = [](const std::string& s, std::uint64_t& out) {
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return !s.empty() && ec == std::errc() && p == s.data() + s.size();
  };
  if (auto since = query_param(target, "since"); since && !number(*since, req.since))
    return bad("since must be a whole number >= 0");
  if (auto limit = query_param(target, "limit")) {
    std::uint64_t n = 0;
    if (!number(*limit, n) || n == 0 || n > 1000) return bad("limit must be a whole number from 1 to 1000");
    req.limit = static_cast<std::size_t>(n);
  }
  return req;
}

boost::system::result<ApiRequest, HttpRefusal> parse_presence_query(ApiCall call, std::string_view target) {
  ApiRequest req;
  req.call = call;
  if (query_param_count(target, "topic") > 1) return bad("topic is given twice");
  auto topic = query_param(target, "topic");
  if (!topic || !is_valid_topic(*topic)) return bad("topic must be 1-256 bytes without whitespace or control characters");
  req.topic = std::move(*topic);
  return req;
}

}  // namespace boundary::realtime::core
