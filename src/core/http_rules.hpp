#pragma once
// Decisions on HTTP requests: the /ws upgrade, API authorization, API routing and bodies.
// Pure: the shell parses HTTP with Beast and hands the fields in.

#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/system/result.hpp>

namespace boundary::realtime::core {

// Percent-decodes a query component ('+' is a space). nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view s);
// The path part of a request target.
std::string_view target_path(std::string_view target) noexcept;
// The decoded value of query parameter `name`, if present.
std::optional<std::string> query_param(std::string_view target, std::string_view name);
// How many times `name` appears in the query of `target` (names compared as written, as
// query_param compares them).
std::size_t query_param_count(std::string_view target, std::string_view name);
// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
std::optional<std::string_view> bearer_token(std::string_view authorization) noexcept;
// Constant-time comparison of secrets (no early exit on the first differing byte).
bool secrets_equal(std::string_view a, std::string_view b) noexcept;

struct UpgradeRequest {
  std::string_view method;
  std::string_view target;
  bool websocket_upgrade = false;   // Connection: upgrade and Upgrade: websocket
  std::string_view version;         // Sec-WebSocket-Version
  std::string_view key;             // Sec-WebSocket-Key
  std::string_view origin;
  std::string_view authorization;
};

struct HttpRefusal {
  unsigned status;
  std::string body;  // JSON
};

// The WebSocket handshake's method, headers and origin; the refusal, if any.
std::optional<HttpRefusal> check_websocket_request(const UpgradeRequest& req,
                                                   const std::vector<std::string>& allowed_origins);
// Checks everything but the token's validity; on success returns the token to verify.
// `allowed_origins` empty = any origin.
boost::system::result<std::string, HttpRefusal> check_upgrade(const UpgradeRequest& req,
                                                              const std::vector<std::string>& allowed_origins);

enum class ApiCall {
  send_to_user, send_to_role, broadcast, send_to_connection, publish,
  subscribe, unsubscribe, disconnect, connections, history, batch, presence, presence_stats,
};

// Unknown path -> 404, known path with the wrong method -> 405.
boost::system::result<ApiCall, HttpRefusal> route_api(std::string_view method, std::string_view path);

struct ApiRequest {
  ApiCall call{};
  std::string user_id, role, connection_id, topic;  // whichever the call names
  boost::json::object message;                      // for the send calls
  bool wait = true;  // false: cluster fire-and-forget, answered before counts are gathered
  std::uint64_t since = 0;    // history
  std::size_t limit = 100;    // history: 1..1000 (as the client action's)
};

// GET /api/history?topic=T&since=N&limit=L: the query (400 with what is wrong).
boost::system::result<ApiRequest, HttpRefusal> parse_history_query(std::string_view target);

// GET /api/presence?topic=T and GET /api/presence-stats?topic=T: the query (400 with what is wrong).
boost::system::result<ApiRequest, HttpRefusal> parse_presence_query(ApiCall call, std::string_view target);

// Validates the JSON body of `call` (400 with what is wrong).
boost::system::result<ApiRequest, HttpRefusal> parse_api_body(ApiCall call, std::string_view body);

// POST /api/batch: the most items one request may carry.
inline constexpr std::size_t max_batch_items = 1000;

using ApiItem = boost::system::result<ApiRequest, HttpRefusal>;
// Validates the body of POST /api/batch: a JSON array of at most max_batch_items objects, each
// the body of a single call plus "kind" naming it (send-to-user, send-to-role, broadcast,
// send-to-connection, publish, subscribe, unsubscribe, disconnect). The whole request is refused
// only when the body is not such an array (400) or is too long (413); an item that is wrong gets
// its own refusal, in its place.
boost::system::result<std::vector<ApiItem>, HttpRefusal> parse_batch_body(std::string_view body);

std::string error_body(std::string_view message);

}  // namespace boundary::realtime::core
