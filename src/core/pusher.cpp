#include "core/pusher.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <utility>

#include <boost/json/object.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include "core/parse_util.hpp"
#include "core/subscribe_proxy.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core::pusher {
namespace json = boost::json;
namespace {

bool all_of_set(std::string_view s, std::string_view extra) noexcept {
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           extra.find(c) != std::string_view::npos;
  });
}

std::string hex(const unsigned char* bytes, std::size_t n) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  return out;
}

// `auth` = "<key>:<hex signature>" for `text`, compared in constant time.
bool signed_by(const App& app, std::string_view text, std::string_view auth) noexcept {
  const auto colon = auth.find(':');
  if (colon == std::string_view::npos) return false;
  const bool key_ok = secrets_equal(auth.substr(0, colon), app.key);
  const bool sig_ok = secrets_equal(auth.substr(colon + 1), hmac_sha256_hex(app.secret, text));
  return key_ok && sig_ok;
}

// `user_id`: a presence channel's client event names its sender.
std::string frame(std::string_view event, std::string_view data_json, std::string_view channel = {},
                  std::string_view user_id = {}) {
  json::object o;
  o["event"] = event;
  if (!channel.empty()) o["channel"] = channel;
  o["data"] = data_json;
  if (!user_id.empty()) o["user_id"] = user_id;
  return json::serialize(o);
}

// `data` of a client frame: an object, or a string holding one (some clients send it so).
const json::object* data_object(const json::object& frame, json::value& holder) {
  const auto* data = frame.if_contains("data");
  if (!data) return nullptr;
  if (data->is_object()) return &data->as_object();
  if (!data->is_string()) return nullptr;
  auto parsed = parse_strict_json(data->as_string());
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return nullptr;
  holder = std::move(parsed.value);
  return &holder.as_object();
}

std::optional<std::string> string_member(const json::object& o, std::string_view name) {
  const auto* v = o.if_contains(name);
  if (!v || !v->is_string()) return std::nullopt;
  return std::string(v->as_string());
}

boost::system::result<App, std::string> app_error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}

HttpRefusal refusal(unsigned status, std::string_view message) { return HttpRefusal{status, error_body(message)}; }

boost::system::result<Event, HttpRefusal> event_from(const json::object& o, bool batch) {
  Event e;
  auto name = string_member(o, "name");
  if (!name || name->empty() || name->size() > max_event_name_bytes)
    return refusal(400, "\"name\" must be a string of 1-200 bytes");
  if (reserved_event(*name)) return refusal(400, "event names starting with pusher: or pusher_internal: are the protocol's");
  e.name = std::move(*name);
  const auto* data = o.if_contains("data");
  if (!data) return refusal(400, "\"data\" is required");
  e.data = data->is_string() ? std::string(data->as_string()) : json::serialize(*data);
  if (auto s = string_member(o, "socket_id")) {
    if (!valid_socket_id(*s)) return refusal(400, "\"socket_id\" is not a socket id");
    e.socket_id = std::move(*s);
  }
  if (const auto* one = o.if_contains("channel")) {
    if (!one->is_string()) return refusal(400, "\"channel\" must be a string");
    e.channels.emplace_back(one->as_string());
  }
  if (const auto* many = o.if_contains("channels"); many && !batch) {
    if (!e.channels.empty()) return refusal(400, "give \"channel\" or \"channels\", not both");
    if (!many->is_array()) return refusal(400, "\"channels\" must be an array of strings");
    for (const auto& c : many->as_array()) {
      if (!c.is_string()) return refusal(400, "\"channels\" must be an array of strings");
      e.channels.emplace_back(c.as_string());
    }
  }
  if (const auto* info = o.if_contains("info")) {
    if (!info->is_string()) return refusal(400, "\"info\" must be a string: user_count, subscription_count");
    for (const auto& attribute : split_list(info->as_string())) {
      if (attribute == "user_count") e.info_users = true;
      else if (attribute == "subscription_count") e.info_subscriptions = true;
      else return refusal(400, "info: user_count or subscription_count");
    }
  }
  if (e.channels.empty()) return refusal(400, "\"channel\" or \"channels\" is required");
  if (e.channels.size() > max_event_channels) return refusal(400, "at most 100 channels per event");
  for (const auto& c : e.channels) {
    const auto kind = channel_kind(c);
    if (!kind) return refusal(400, "invalid channel name");
  }
  return e;
}

}  // namespace

boost::system::result<App, std::string> parse_app(std::string_view spec) {
  const auto a = spec.find(':');
  const auto b = a == std::string_view::npos ? a : spec.find(':', a + 1);
  if (b == std::string_view::npos) return app_error("expected id:key:secret");
  const auto c = spec.find(':', b + 1);  // secrets hold no ':', so a third one starts the webhook URL
  App app{std::string(spec.substr(0, a)), std::string(spec.substr(a + 1, b - a - 1)),
          std::string(spec.substr(b + 1, c == std::string_view::npos ? c : c - b - 1)),
          c == std::string_view::npos ? std::string() : std::string(spec.substr(c + 1))};
  if (c != std::string_view::npos) {
    if (auto url = parse_http_url(app.webhook); !url) return app_error("app '" + app.id + "': the webhook " + url.error());
  }
  if (app.id.empty() || app.id.size() > 40 || !all_of_set(app.id, "_-"))
    return app_error("the app id must be 1-40 of A-Z a-z 0-9 _ -");
  if (app.key.empty() || app.key.size() > 100 || !all_of_set(app.key, "_.-"))
    return app_error("app '" + app.id + "': the key must be 1-100 of A-Z a-z 0-9 _ . -");
  if (app.secret.size() < 8 || app.secret.size() > 200 || !all_of_set(app.secret, "_.-"))
    return app_error("app '" + app.id + "': the secret must be 8-200 of A-Z a-z 0-9 _ . -");
  return app;
}

std::optional<std::string> check_apps(const std::vector<App>& apps) {
  for (std::size_t i = 0; i < apps.size(); ++i)
    for (std::size_t j = 0; j < i; ++j) {
      if (apps[i].id == apps[j].id) return "two apps have the id '" + apps[i].id + "'";
      if (apps[i].key == apps[j].key) return "apps '" + apps[j].id + "' and '" + apps[i].id + "' have the same key";
    }
  return std::nullopt;
}

std::optional<ChannelKind> channel_kind(std::string_view channel) noexcept {
  if (channel.empty() || channel.size() > max_channel_bytes) return std::nullopt;
  if (channel.starts_with("#server-to-user-")) {
    const auto id = channel.substr(16);
    if (id.empty() || !all_of_set(id, "_-=@,.;")) return std::nullopt;
    return ChannelKind::user;
  }
  if (!all_of_set(channel, "_-=@,.;")) return std::nullopt;
  if (channel.starts_with("private-encrypted-")) return ChannelKind::encrypted;
  if (channel.starts_with("private-")) return ChannelKind::private_channel;
  if (channel.starts_with("presence-")) return ChannelKind::presence;
  return ChannelKind::public_channel;
}

std::string topic_of(const App& app, bool default_app, std::string_view channel) {
  if (default_app) return std::string(channel);
  std::string topic = "app:";
  topic += app.id;
  topic += ':';
  topic += channel;
  return topic;
}

std::optional<AppChannel> app_channel(std::string_view topic, const std::vector<App>& apps) noexcept {
  if (apps.empty()) return std::nullopt;
  std::size_t app = 0;
  std::string_view channel = topic;
  if (topic.starts_with("app:")) {
    const auto colon = topic.find(':', 4);
    if (colon == std::string_view::npos) return std::nullopt;
    const auto id = topic.substr(4, colon - 4);
    const auto it = std::find_if(apps.begin(), apps.end(), [id](const App& a) { return a.id == id; });
    if (it == apps.end() || it == apps.begin()) return std::nullopt;  // the default app's topics have no prefix
    app = static_cast<std::size_t>(it - apps.begin());
    channel = topic.substr(colon + 1);
  }
  const auto kind = channel_kind(channel);
  if (!kind || *kind == ChannelKind::user) return std::nullopt;
  return AppChannel{app, channel};
}

bool reserved_topic(std::string_view topic) noexcept {
  const auto channel = channel_of(topic);
  if (channel.size() != topic.size() || topic.find(':') == std::string_view::npos)
    return channel.starts_with("private-") || channel.starts_with("presence-");
  return false;
}

bool is_presence_topic(std::string_view topic) noexcept {
  if (topic.starts_with("presence-")) return topic.find(':') == std::string_view::npos;
  return topic.starts_with("app:") && channel_of(topic).starts_with("presence-");
}

bool valid_user_id(bool default_app, std::string_view user) noexcept {
  return !user.empty() && user.size() <= 200 && !(default_app && user.starts_with("app:"));
}

std::string user_id_for(const App& app, bool default_app, std::string_view user) {
  return topic_of(app, default_app, user);
}

std::string_view pusher_user(std::string_view user_id) noexcept { return channel_of(user_id); }

std::string_view channel_of(std::string_view topic) noexcept {
  if (!topic.starts_with("app:")) return topic;
  const auto colon = topic.find(':', 4);
  return colon == std::string_view::npos ? topic : topic.substr(colon + 1);
}

boost::system::result<ClientFrame, FrameError> parse_client_frame(std::string_view text) {
  auto parsed = parse_strict_json(text);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object())
    return FrameError{4200, "not a JSON object"};
  const auto& o = parsed.value.as_object();
  const auto event = string_member(o, "event");
  if (!event) return FrameError{4200, "\"event\" must be a string"};
  if (*event == "pusher:ping") return ClientFrame{Ping{}};
  if (*event == "pusher:pong") return ClientFrame{Pong{}};
  json::value holder;
  if (*event == "pusher:subscribe" || *event == "pusher:unsubscribe") {
    const auto* data = data_object(o, holder);
    auto channel = data ? string_member(*data, "channel") : std::nullopt;
    if (!channel || !channel_kind(*channel)) return FrameError{4009, "invalid channel name"};
    if (*event == "pusher:unsubscribe") return ClientFrame{Unsubscribe{std::move(*channel)}};
    Subscribe s{std::move(*channel), string_member(*data, "auth").value_or(""), string_member(*data, "channel_data")};
    return ClientFrame{std::move(s)};
  }
  if (*event == "pusher:signin") {
    const auto* data = data_object(o, holder);
    auto auth = data ? string_member(*data, "auth") : std::nullopt;
    auto user_data = data ? string_member(*data, "user_data") : std::nullopt;
    if (!auth || !user_data) return FrameError{4009, "pusher:signin needs auth and user_data"};
    return ClientFrame{Signin{std::move(*auth), std::move(*user_data)}};
  }
  if (event->starts_with("client-")) {
    if (event->size() > max_event_name_bytes) return FrameError{error_client_events, "event name too long"};
    auto channel = string_member(o, "channel");
    if (!channel || !channel_kind(*channel) || channel_kind(*channel) == ChannelKind::user)
      return FrameError{error_client_events, "invalid channel name"};
    const auto* data = o.if_contains("data");
    std::string d = !data ? std::string("null") : json::serialize(*data);
    return ClientFrame{ClientEvent{*event, std::move(*channel), std::move(d)}};
  }
  return FrameError{4200, "unknown event"};
}

std::string connection_established(std::string_view socket_id, int activity_timeout_seconds) {
  json::object data{{"socket_id", socket_id}, {"activity_timeout", activity_timeout_seconds}};
  return frame("pusher:connection_established", json::serialize(data));
}

std::string subscription_succeeded(std::string_view channel, std::string_view data_json) {
  return frame("pusher_internal:subscription_succeeded", data_json, channel);
}

std::string subscription_error(std::string_view channel, std::string_view type, std::string_view error, int status) {
  json::object data{{"type", type}, {"error", error}, {"status", status}};
  return frame("pusher:subscription_error", json::serialize(data), channel);
}

std::string error(int code, std::string_view message) {
  json::object data{{"code", code}, {"message", message}};
  return frame("pusher:error", json::serialize(data));
}

std::string pong() { return frame("pusher:pong", "{}"); }

std::string signin_success(std::string_view user_data) {
  json::object data{{"user_data", user_data}};
  return frame("pusher:signin_success", json::serialize(data));
}

int close_code_for(int websocket_code) noexcept {
  if (websocket_code == 1000) return close_terminated;
  if (websocket_code == 1001 || websocket_code == 1012) return close_generic_reconnect;
  return close_over_capacity;
}

bool protocol_supported(std::string_view protocol) noexcept {
  return protocol == "7" || protocol == "6" || protocol == "5";
}

std::string make_socket_id(std::uint64_t a, std::uint64_t b) {
  return std::to_string(a % 10'000'000'000ULL) + "." + std::to_string(b % 10'000'000'000ULL);
}

bool valid_socket_id(std::string_view id) noexcept {
  const auto dot = id.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 == id.size() || id.size() > 32) return false;
  const auto digits = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  return digits(id.substr(0, dot)) && digits(id.substr(dot + 1));
}

std::string hmac_sha256_hex(std::string_view secret, std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(text.data()),
       text.size(), out.data(), &n);
  return hex(out.data(), n);
}

std::string md5_hex(std::string_view text) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int n = 0;
  EVP_Digest(text.data(), text.size(), out.data(), &n, EVP_md5(), nullptr);
  return hex(out.data(), n);
}

bool channel_auth_ok(const App& app, std::string_view socket_id, std::string_view channel, std::string_view auth,
                     const std::optional<std::string>& channel_data) noexcept {
  try {
    std::string text(socket_id);
    text += ':';
    text += channel;
    if (channel_data) {
      text += ':';
      text += *channel_data;
    }
    return signed_by(app, text, auth);
  } catch (...) {
    return false;
  }
}

bool signin_auth_ok(const App& app, std::string_view socket_id, std::string_view user_data,
                    std::string_view auth) noexcept {
  try {
    std::string text(socket_id);
    text += "::user::";
    text += user_data;
    return signed_by(app, text, auth);
  } catch (...) {
    return false;
  }
}

std::optional<std::string> user_id_of(std::string_view user_data) {
  auto parsed = parse_strict_json(user_data);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return std::nullopt;
  auto id = string_member(parsed.value.as_object(), "id");
  if (!id || id->empty() || id->size() > 200) return std::nullopt;
  return id;
}

std::optional<PresenceMember> presence_member(std::string_view channel_data) {
  auto parsed = parse_strict_json(channel_data);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return std::nullopt;
  const auto& o = parsed.value.as_object();
  const auto* id = o.if_contains("user_id");
  PresenceMember m;
  if (id && id->is_string()) m.user_id = std::string(id->as_string());
  else if (id && (id->is_int64() || id->is_uint64())) m.user_id = json::serialize(*id);
  if (m.user_id.empty() || m.user_id.size() > 200) return std::nullopt;
  if (const auto* info = o.if_contains("user_info")) m.user_info = json::serialize(*info);
  return m;
}

bool reserved_event(std::string_view event) noexcept {
  return event.starts_with("pusher:") || event.starts_with("pusher_internal:");
}

json::object native_message(std::string_view event, std::string_view data, std::string_view exclude,
                           std::string_view user_id) {
  json::object o;
  o["event"] = event;
  o["data"] = data;
  if (!exclude.empty()) o["socket_id"] = exclude;
  if (!user_id.empty()) o["user_id"] = user_id;
  return o;
}

PusherForm to_pusher(std::string_view envelope_json) {
  PusherForm out;
  auto parsed = parse_strict_json(envelope_json);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return out;
  auto& o = parsed.value.as_object();
  std::string channel;
  if (auto t = string_member(o, "topic")) channel = std::string(channel_of(*t));
  if (auto type = string_member(o, "type"); type == "presence-join" || type == "presence-leave") {
    auto user = string_member(o, "user-id").value_or("");
    json::object data{{"user_id", pusher_user(user)}};
    if (*type == "presence-join") {
      if (const auto* info = o.if_contains("info"); info && !info->is_null()) data["user_info"] = *info;
    }
    out.excluded_user = std::move(user);
    out.frame_json = frame(*type == "presence-join" ? "pusher_internal:member_added" : "pusher_internal:member_removed",
                           json::serialize(data), channel);
    return out;
  }
  std::string event = "message";
  if (auto e = string_member(o, "event")) event = std::move(*e);
  else if (auto t = string_member(o, "type")) event = std::move(*t);
  if (reserved_event(event)) return out;  // a forged protocol event reaches no Pusher client
  std::string data;
  if (const auto* d = o.if_contains("data")) data = d->is_string() ? std::string(d->as_string()) : json::serialize(*d);
  else data = std::string(envelope_json);
  if (auto s = string_member(o, "socket_id")) out.excluded = std::move(*s);
  std::string_view user;
  if (const auto* u = o.if_contains("user_id"); u && u->is_string() && event.starts_with("client-"))
    user = pusher_user(u->as_string());
  out.frame_json = frame(event, data, channel, user);
  return out;
}

boost::system::result<ApiRoute, HttpRefusal> route_api(std::string_view method, std::string_view path) {
  // /apps/<id>/<rest>
  if (!path.starts_with("/apps/")) return refusal(404, "Not found");
  auto rest = path.substr(6);
  const auto slash = rest.find('/');
  if (slash == std::string_view::npos || slash == 0) return refusal(404, "Not found");
  ApiRoute r;
  r.app_id = std::string(rest.substr(0, slash));
  rest = rest.substr(slash + 1);
  auto expect = [&](std::string_view m, ApiCall call) -> boost::system::result<ApiRoute, HttpRefusal> {
    if (method != m) return refusal(405, "Method not allowed");
    r.call = call;
    return r;
  };
  if (rest == "events") return expect("POST", ApiCall::events);
  if (rest == "batch_events") return expect("POST", ApiCall::batch_events);
  if (rest == "channels") return expect("GET", ApiCall::channels);
  if (rest.starts_with("channels/")) {
    auto name = rest.substr(9);
    auto call = ApiCall::channel;
    if (name.ends_with("/users")) {
      name.remove_suffix(6);
      call = ApiCall::channel_users;
    }
    auto decoded = percent_decode(name);
    if (!decoded || !channel_kind(*decoded)) return refusal(400, "invalid channel name");
    r.channel = std::move(*decoded);
    return expect("GET", call);
  }
  if (rest.size() > 28 && rest.starts_with("users/") && rest.ends_with("/terminate_connections")) {
    auto id = percent_decode(rest.substr(6, rest.size() - 6 - 22));
    if (!id || id->empty() || id->size() > 200) return refusal(400, "invalid user id");
    r.user_id = std::move(*id);
    return expect("POST", ApiCall::terminate_connections);
  }
  return refusal(404, "Not found");
}

std::optional<HttpRefusal> check_signature(const App& app, std::string_view method, std::string_view target,
                                           std::string_view body, std::int64_t now_seconds) {
  const auto q = target.find('?');
  const auto path = target.substr(0, q);
  std::vector<std::pair<std::string, std::string>> params;
  std::string signature;
  if (q != std::string_view::npos) {
    auto query = target.substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const auto part = query.substr(0, amp);
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
      if (part.empty()) continue;
      const auto eq = part.find('=');
      auto key = percent_decode(part.substr(0, eq));
      auto value = percent_decode(eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1));
      if (!key || !value) return refusal(400, "malformed query");
      if (*key == "auth_signature") {
        signature = std::move(*value);
        continue;
      }
      for (const auto& [k, v] : params)
        if (k == *key) return refusal(400, "a query parameter appears twice");
      params.emplace_back(std::move(*key), std::move(*value));
    }
  }
  auto find = [&](std::string_view name) -> const std::string* {
    for (const auto& [k, v] : params)
      if (k == name) return &v;
    return nullptr;
  };
  const auto* key = find("auth_key");
  const auto* timestamp = find("auth_timestamp");
  const auto* version = find("auth_version");
  if (!key || !timestamp || !version || signature.empty())
    return refusal(401, "auth_key, auth_timestamp, auth_version and auth_signature are required");
  if (*version != "1.0") return refusal(401, "auth_version must be 1.0");
  if (!secrets_equal(*key, app.key)) return refusal(401, "unknown auth_key");
  const auto ts = parse_number<std::int64_t>(*timestamp);
  if (!ts || *ts < now_seconds - max_clock_skew_seconds || *ts > now_seconds + max_clock_skew_seconds)
    return refusal(401, "auth_timestamp is more than 600 s away from the server's clock");
  const auto* md5 = find("body_md5");
  if (!body.empty() && (!md5 || !secrets_equal(*md5, md5_hex(body)))) return refusal(401, "body_md5 does not match the body");
  std::sort(params.begin(), params.end());
  std::string to_sign(method);
  to_sign += '\n';
  to_sign += path;
  to_sign += '\n';
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (i) to_sign += '&';
    to_sign += params[i].first;
    to_sign += '=';
    to_sign += params[i].second;
  }
  if (!secrets_equal(signature, hmac_sha256_hex(app.secret, to_sign))) return refusal(401, "invalid signature");
  return std::nullopt;
}

boost::system::result<ChannelsQuery, HttpRefusal> parse_channels_query(std::string_view target) {
  ChannelsQuery q;
  if (auto prefix = query_param(target, "filter_by_prefix")) q.prefix = std::move(*prefix);
  if (auto info = query_param(target, "info")) {
    for (const auto& attribute : split_list(*info)) {
      if (attribute == "user_count") q.user_count = true;
      else if (attribute == "subscription_count") q.subscription_count = true;
      else return refusal(400, "info: user_count or subscription_count");
    }
  }
  if (q.user_count && !q.prefix.starts_with("presence-"))
    return refusal(400, "info=user_count needs filter_by_prefix=presence-");
  return q;
}

std::string channels_body(const std::vector<ChannelInfo>& channels, const ChannelsQuery& query) {
  json::object list;
  for (const auto& c : channels) {
    json::object attributes;
    if (query.user_count) attributes["user_count"] = c.users;
    if (query.subscription_count) attributes["subscription_count"] = c.subscriptions;
    list[c.name] = std::move(attributes);
  }
  return json::serialize(json::object{{"channels", std::move(list)}});
}

namespace {

json::object event_attributes(const Event& e, std::string_view channel, const ChannelInfo& c) {
  json::object attributes;
  if (channel_kind(channel) == ChannelKind::user) return attributes;  // a user, not a channel: nothing to count
  if (e.info_users && channel_kind(channel) == ChannelKind::presence) attributes["user_count"] = c.users;
  if (e.info_subscriptions) attributes["subscription_count"] = c.subscriptions;
  return attributes;
}

}  // namespace

std::string events_body(const Event& e, const std::vector<ChannelInfo>& counts) {
  if (!e.wants_info()) return "{}";
  json::object channels;
  for (std::size_t i = 0; i < e.channels.size() && i < counts.size(); ++i)
    channels[e.channels[i]] = event_attributes(e, e.channels[i], counts[i]);
  return json::serialize(json::object{{"channels", std::move(channels)}});
}

std::string batch_body(const std::vector<Event>& events, const std::vector<ChannelInfo>& counts) {
  if (std::none_of(events.begin(), events.end(), [](const Event& e) { return e.wants_info(); })) return "{}";
  json::array batch;
  for (std::size_t i = 0; i < events.size(); ++i)
    batch.emplace_back(i < counts.size() && !events[i].channels.empty()
                           ? event_attributes(events[i], events[i].channels.front(), counts[i])
                           : json::object());
  return json::serialize(json::object{{"batch", std::move(batch)}});
}

boost::system::result<Event, HttpRefusal> parse_event(std::string_view body) {
  auto parsed = parse_strict_json(body);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return refusal(400, "the body must be a JSON object");
  return event_from(parsed.value.as_object(), false);
}

boost::system::result<std::vector<Event>, HttpRefusal> parse_batch(std::string_view body) {
  auto parsed = parse_strict_json(body);
  const auto* batch = parsed.problem == JsonProblem::none && parsed.value.is_object()
                          ? parsed.value.as_object().if_contains("batch")
                          : nullptr;
  if (!batch || !batch->is_array()) return refusal(400, "the body must be {\"batch\": [events]}");
  const auto& items = batch->as_array();
  if (items.empty() || items.size() > max_batch_events) return refusal(400, "a batch holds 1-10 events");
  std::vector<Event> events;
  for (const auto& item : items) {
    if (!item.is_object()) return refusal(400, "every batch item must be an object");
    auto e = event_from(item.as_object(), true);
    if (!e) return e.error();
    events.push_back(std::move(*e));
  }
  return events;
}

}  // namespace boundary::realtime::core::pusher
