#pragma once
// The Pusher Channels protocol (version 7) and its HTTP API's signed requests: apps, channel
// names and how they map to topics, the frames a Pusher client sends and the ones it receives,
// channel authorization and request signatures. Pure: HMAC and MD5 are computations here, the
// clock reading is passed in. docs/pusher.md describes the contract.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "core/http_rules.hpp"

namespace boundary::realtime::core::pusher {

// --pusher-app id:key:secret[:webhook-url]. The first app given is the default app: its channels are topics of
// the same name (below). `id`: 1-40 of [A-Za-z0-9_-]; `key` 1-100 and `secret` 8-200 of
// [A-Za-z0-9_.-].
struct App {
  std::string id;
  std::string key;
  std::string secret;
  std::string webhook;  // http[s]:// URL its webhooks go to; empty: none
};
// The error says what is wrong (never repeating the secret).
boost::system::result<App, std::string> parse_app(std::string_view spec);
inline constexpr std::size_t max_apps = 1000;
// Duplicate ids or keys, across all apps; nullopt when the list is consistent.
std::optional<std::string> check_apps(const std::vector<App>& apps);

// Channel names: 1-200 of [A-Za-z0-9_-=@,.;] (Pusher's set), or a user channel
// `#server-to-user-<id>` (server-to-client only).
inline constexpr std::size_t max_channel_bytes = 200;
enum class ChannelKind { public_channel, private_channel, presence, encrypted, user };
std::optional<ChannelKind> channel_kind(std::string_view channel) noexcept;

// Channels and topics. The default app's channel C is topic C; another app's channel C is topic
// `app:<id>:C`. Pusher channel names cannot hold ':' so neither form can name another app's
// channel or a native `user:`/`role:` topic.
std::string topic_of(const App& app, bool default_app, std::string_view channel);
// The channel a topic's deliveries name on a Pusher connection: the topic without its
// `app:<id>:` prefix.
std::string_view channel_of(std::string_view topic) noexcept;
// The app and channel a topic is (topic_of's inverse), or nullopt for a topic no app's channel
// maps to (one with another ':' form, or an invalid channel name).
struct AppChannel {
  std::size_t app;
  std::string_view channel;
};
std::optional<AppChannel> app_channel(std::string_view topic, const std::vector<App>& apps) noexcept;
// A topic only Pusher connections may subscribe to: an app's private, encrypted or presence
// channel (their subscriptions are authorized by the app's signature, which a native
// connection cannot present).
bool reserved_topic(std::string_view topic) noexcept;
// A topic that is some app's presence channel: `presence-...` or `app:<id>:presence-...`.
bool is_presence_topic(std::string_view topic) noexcept;

// --- Client frames ----------------------------------------------------------------------------
struct Ping {};
struct Pong {};
struct Subscribe {
  std::string channel;
  std::string auth;                         // "key:signature"; empty for public channels
  std::optional<std::string> channel_data;  // presence: the user, a JSON text
};
struct Unsubscribe {
  std::string channel;
};
struct Signin {
  std::string auth;
  std::string user_data;
};
// `client-*` events: `data` kept as the JSON text the client sent (a string or any value).
struct ClientEvent {
  std::string event;
  std::string channel;
  std::string data;
};
using ClientFrame = std::variant<Ping, Pong, Subscribe, Unsubscribe, Signin, ClientEvent>;

// What a refused frame is answered with: a pusher:error with this code and message (the
// connection stays open).
struct FrameError {
  int code;
  std::string message;
};
boost::system::result<ClientFrame, FrameError> parse_client_frame(std::string_view text);

// --- Server frames (serialized JSON; `data` is always a JSON string, as pusher-js expects) ----
std::string connection_established(std::string_view socket_id, int activity_timeout_seconds);
std::string subscription_succeeded(std::string_view channel, std::string_view data_json = "{}");
// {"type":"AuthError","error":...,"status":401}
std::string subscription_error(std::string_view channel, std::string_view type, std::string_view error,
                               int status);
std::string error(int code, std::string_view message);
std::string pong();
std::string signin_success(std::string_view user_data);

// Close codes (the WebSocket close frame after a pusher:error that ends the connection).
// 4000-4099: the client must not reconnect; 4100-4199: reconnect after backing off; 4200-4299:
// reconnect at once.
inline constexpr int close_app_unknown = 4001;
inline constexpr int close_protocol_unsupported = 4007;
inline constexpr int close_over_capacity = 4100;
inline constexpr int close_generic_reconnect = 4200;
inline constexpr int close_terminated = 4009;   // terminate_connections: not authorized anymore
inline constexpr int error_client_events = 4301;  // client event refused (connection stays)
// The Pusher close code for a WebSocket close code below 4000: the server disconnected the
// connection (1000: terminate_connections, the API's disconnect) 4009, no reconnect; shutting down
// (1001, 1012) 4200, reconnect; everything else (limits, idle, protocol errors) 4100, reconnect
// after backing off (at once would repeat whatever caused it).
int close_code_for(int websocket_code) noexcept;
// pusher:ping / activity: the server answers pings and expects the client's within this.
inline constexpr int activity_timeout_seconds = 120;

// The `protocol` query parameter of /app/<key>: 5, 6 and 7 (the frames are the same).
bool protocol_supported(std::string_view protocol) noexcept;
// Pusher's socket id: two decimal numbers joined by '.'.
std::string make_socket_id(std::uint64_t a, std::uint64_t b);
bool valid_socket_id(std::string_view id) noexcept;

// --- Authorization ------------------------------------------------------------------------------
std::string hmac_sha256_hex(std::string_view secret, std::string_view text);
std::string md5_hex(std::string_view text);
// A private or presence channel's `auth`: "<key>:<HMAC-SHA256(secret, socket_id:channel[:channel_data])>".
bool channel_auth_ok(const App& app, std::string_view socket_id, std::string_view channel, std::string_view auth,
                     const std::optional<std::string>& channel_data) noexcept;
// pusher:signin's `auth` over "socket_id::user::user_data".
bool signin_auth_ok(const App& app, std::string_view socket_id, std::string_view user_data,
                    std::string_view auth) noexcept;
// The user id in user_data ({"id": "..."}, a non-empty string), or nullopt.
std::optional<std::string> user_id_of(std::string_view user_data);
// presence channel_data: {"user_id": string or number, "user_info"?: object}.
struct PresenceMember {
  std::string user_id;
  std::string user_info;  // serialized JSON; empty when absent
};
std::optional<PresenceMember> presence_member(std::string_view channel_data);

// --- Messages between the two protocols ----------------------------------------------------------
// A Pusher event as a native message object: {"event":E,"data":D[,"socket_id":S]} where D is
// the data text as given (a string on the HTTP API). `socket_id`: a connection that must not
// receive it (the sender of a client event, the API's socket_id).
// `user_id`: a client event on a presence channel names its sender's user (Pusher passes it to
// handlers as metadata.user_id).
boost::json::object native_message(std::string_view event, std::string_view data, std::string_view exclude = {},
                                   std::string_view user_id = {});
// pusher: and pusher_internal: events are the protocol's own: nobody may send them as events.
bool reserved_event(std::string_view event) noexcept;
// A native envelope (serialized) as a Pusher frame. event: "event" if a string, else "type" if
// a string, else "message"; data: "data" if a string, else "data" serialized when present,
// else the whole message serialized; channel: channel_of("topic") when there is a topic.
// Presence events become pusher_internal:member_added / member_removed, {"user_id"[,
// "user_info"]}, for everybody but the user's own connections. `frame_json` is empty when the
// text is not one JSON object.
struct PusherForm {
  std::string frame_json;
  std::string excluded;       // the message's "socket_id", if any
  std::string excluded_user;  // presence events: the user they are about
};
// A Pusher user as a connection's user id: the default app's user U is U, another app's is
// `app:<id>:U` (apps do not share users). pusher_user strips the prefix again. 1-200 bytes; the
// default app's user ids may not start with "app:" (they would name another app's users).
bool valid_user_id(bool default_app, std::string_view user) noexcept;
std::string user_id_for(const App& app, bool default_app, std::string_view user);
std::string_view pusher_user(std::string_view user_id) noexcept;
PusherForm to_pusher(std::string_view envelope_json);

// --- HTTP API -----------------------------------------------------------------------------------
// Routes under /apps/<id>/...
enum class ApiCall { events, batch_events, channels, channel, channel_users, terminate_connections };
struct ApiRoute {
  ApiCall call{};
  std::string app_id;
  std::string channel;  // channel, channel_users
  std::string user_id;  // terminate_connections
};
boost::system::result<ApiRoute, HttpRefusal> route_api(std::string_view method, std::string_view path);

// The signed query: auth_key (the app's key), auth_timestamp (within 600 s of `now_seconds`),
// auth_version 1.0, body_md5 (when there is a body) and auth_signature, HMAC-SHA256 of
// "METHOD\nPATH\nk=v&..." (every other parameter, decoded, sorted by key). 401 on a bad signature
// or key, 400 on a malformed query.
inline constexpr std::int64_t max_clock_skew_seconds = 600;
std::optional<HttpRefusal> check_signature(const App& app, std::string_view method, std::string_view target,
                                           std::string_view body, std::int64_t now_seconds);

// GET /apps/<id>/channels: `filter_by_prefix` (channels starting with it) and `info`
// (comma list; `user_count` needs filter_by_prefix=presence-, as on Pusher; `subscription_count`).
struct ChannelsQuery {
  std::string prefix;
  bool user_count = false;
  bool subscription_count = false;
};
boost::system::result<ChannelsQuery, HttpRefusal> parse_channels_query(std::string_view target);
// The listing's body: {"channels":{"<name>":{["user_count":N,]["subscription_count":N]}}}.
struct ChannelInfo {
  std::string name;
  std::size_t subscriptions = 0;
  std::size_t users = 0;
};
std::string channels_body(const std::vector<ChannelInfo>& channels, const ChannelsQuery& query);

// POST /apps/<id>/events: {name, data (string), channel | channels (1-100), socket_id?, info?}.
// batch_events: {"batch":[{name, data, channel, socket_id?, info?}, ...]} (1-10 events).
// `info`: a comma list of user_count and subscription_count, the channels' attributes the answer
// carries (user_count on presence channels only).
struct Event {
  std::string name;
  std::string data;
  std::vector<std::string> channels;
  std::string socket_id;
  bool info_users = false;
  bool info_subscriptions = false;
  bool wants_info() const noexcept { return info_users || info_subscriptions; }
};
// The answers: {} when no event asked for `info`. Otherwise, for events,
// {"channels":{"<channel>":{["user_count":N,]["subscription_count":N]}}} with `counts` in the
// order of e.channels, and for a batch {"batch":[{...}, ...]}, an object per event (its one
// channel: counts[i] for events[i]; {} for an event that did not ask).
std::string events_body(const Event& e, const std::vector<ChannelInfo>& counts);
std::string batch_body(const std::vector<Event>& events, const std::vector<ChannelInfo>& counts);
inline constexpr std::size_t max_event_channels = 100;
inline constexpr std::size_t max_batch_events = 10;
inline constexpr std::size_t max_event_name_bytes = 200;
boost::system::result<Event, HttpRefusal> parse_event(std::string_view body);
boost::system::result<std::vector<Event>, HttpRefusal> parse_batch(std::string_view body);

}  // namespace boundary::realtime::core::pusher
