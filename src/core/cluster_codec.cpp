#include "core/cluster_codec.hpp"

#include "core/parse_util.hpp"

namespace boundary::realtime::core {
namespace {

// Splits off the text up to the next '\n'.
std::optional<std::string_view> line(std::string_view& rest) {
  const auto nl = rest.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  auto out = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  return out;
}

bool known_route(char c) {
  switch (static_cast<Route>(c)) {
    case Route::user: case Route::role: case Route::topic: case Route::stream: case Route::presence: case Route::all:
    case Route::connection:
    case Route::subscribe: case Route::unsubscribe: case Route::disconnect: case Route::disconnect_user:
    case Route::count: case Route::topic_count:
      return true;
  }
  return false;
}

boost::system::result<RedisUrl, std::string> url_error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}

}  // namespace

namespace {
std::string join(std::string_view prefix, std::string_view kind, std::string_view name) {
  std::string c;
  c.reserve(prefix.size() + kind.size() + name.size() + 1);
  c += prefix;
  c += ':';
  c += kind;
  c += name;
  return c;
}
}  // namespace

std::string channel_for(std::string_view prefix, Route route, std::string_view target) {
  const char* kind = route == Route::user || route == Route::disconnect_user ? "u:" : route == Route::role ? "r:"
                     : route == Route::topic || route == Route::stream || route == Route::presence ||
                               route == Route::topic_count
                         ? "t:"
                                                                                                   : nullptr;
  if (!kind) return all_channel(prefix);
  return join(prefix, kind, target);
}

std::string all_channel(std::string_view prefix) { return join(prefix, "all", {}); }
std::string reply_channel(std::string_view prefix, std::string_view node_id) { return join(prefix, "reply:", node_id); }
std::string node_key(std::string_view prefix, std::string_view node_id) { return join(prefix, "node:", node_id); }

std::string topic_channel_pattern(std::string_view prefix, std::string_view topic_prefix) {
  std::string escaped;
  escaped.reserve(topic_prefix.size() + 8);
  for (char c : topic_prefix) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') escaped += '\\';
    escaped += c;
  }
  escaped += '*';
  return join(prefix, "t:", escaped);
}

std::optional<std::string_view> topic_of_channel(std::string_view prefix, std::string_view channel) noexcept {
  if (channel.size() < prefix.size() + 3 || !channel.starts_with(prefix) || channel.substr(prefix.size(), 3) != ":t:")
    return std::nullopt;
  return channel.substr(prefix.size() + 3);
}

std::string encode_fanout(const Fanout& f, std::string_view origin, std::uint64_t request_id) {
  std::string out;
  out.reserve(origin.size() + f.target.size() + f.body.size() + 32);
  out += static_cast<char>(f.route);
  out += origin;
  out += '\n';
  out += std::to_string(request_id);
  out += '\n';
  out += std::to_string(f.target.size());
  out += '\n';
  out += f.target;
  out += f.body;
  return out;
}

std::optional<WireFanout> decode_fanout(std::string_view payload) {
  if (payload.empty() || !known_route(payload.front())) return std::nullopt;
  WireFanout w;
  w.fanout.route = static_cast<Route>(payload.front());
  payload.remove_prefix(1);
  auto origin = line(payload);
  if (!origin || !valid_node_id(*origin)) return std::nullopt;
  auto id_text = line(payload);
  auto len_text = line(payload);
  if (!id_text || !len_text) return std::nullopt;
  auto id = parse_number<std::uint64_t>(*id_text);
  auto len = parse_number<std::size_t>(*len_text);
  if (!id || !len || *len > payload.size()) return std::nullopt;
  w.origin = std::string(*origin);
  w.request_id = *id;
  w.fanout.target = std::string(payload.substr(0, *len));
  w.fanout.body = std::string(payload.substr(*len));
  return w;
}

std::string encode_reply(std::uint64_t request_id, std::size_t count) {
  return std::to_string(request_id) + ' ' + std::to_string(count);
}

std::optional<WireReply> decode_reply(std::string_view payload) {
  const auto sp = payload.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto id = parse_number<std::uint64_t>(payload.substr(0, sp));
  auto count = parse_number<std::size_t>(payload.substr(sp + 1));
  if (!id || !count || *id == 0) return std::nullopt;
  return WireReply{*id, *count};
}

boost::system::result<RedisUrl, std::string> parse_redis_url(std::string_view url) {
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme)) return url_error("expected redis://host:port[/db]");
  url.remove_prefix(scheme.size());
  RedisUrl out;
  if (const auto slash = url.find('/'); slash != std::string_view::npos) {
    auto db_text = url.substr(slash + 1);
    if (!db_text.empty()) {
      auto db = parse_number<unsigned>(db_text);
      if (!db || *db > 10000) return url_error("bad database number '" + std::string(db_text) + "'");
      out.db = *db;
    }
    url = url.substr(0, slash);
  }
  if (url.find('@') != std::string_view::npos) return url_error("credentials in the URL are not supported");
  if (const auto colon = url.rfind(':'); colon != std::string_view::npos && url.find(']') == std::string_view::npos) {
    auto port = parse_number<std::uint16_t>(url.substr(colon + 1));
    if (!port || *port == 0) return url_error("bad port '" + std::string(url.substr(colon + 1)) + "'");
    out.port = *port;
    url = url.substr(0, colon);
  }
  if (url.empty()) return url_error("missing host");
  out.host = std::string(url);
  return out;
}

bool valid_node_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void ReplyGather::start(std::uint64_t request_id, Clock::time_point deadline) {
  pending_[request_id] = Pending{deadline, std::nullopt, 0, 0};
}

std::optional<ReplyGather::Outcome> ReplyGather::finish_if_done(std::map<std::uint64_t, Pending>::iterator it) {
  const Pending& p = it->second;
  if (!p.expected || p.answers < *p.expected) return std::nullopt;
  Outcome o{it->first, p.total, true};
  pending_.erase(it);
  return o;
}

std::optional<ReplyGather::Outcome> ReplyGather::published(std::uint64_t request_id, std::size_t receivers) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return std::nullopt;
  it->second.expected = receivers;
  return finish_if_done(it);
}

std::optional<ReplyGather::Outcome> ReplyGather::answered(std::uint64_t request_id, std::size_t count) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return std::nullopt;  // late: already expired
  ++it->second.answers;
  it->second.total += count;
  return finish_if_done(it);
}

std::optional<ReplyGather::Outcome> ReplyGather::failed(std::uint64_t request_id) {
  auto it = pending_.find(request_id);
  if (it == pending_.end()) return std::nullopt;
  Outcome o{request_id, it->second.total, false};
  pending_.erase(it);
  return o;
}

std::vector<ReplyGather::Outcome> ReplyGather::expire(Clock::time_point now) {
  std::vector<Outcome> out;
  while (!pending_.empty() && pending_.begin()->second.deadline <= now) {
    out.push_back({pending_.begin()->first, pending_.begin()->second.total, false});
    pending_.erase(pending_.begin());
  }
  return out;
}

std::vector<ReplyGather::Outcome> ReplyGather::drain() {
  std::vector<Outcome> out;
  for (const auto& [id, p] : pending_) out.push_back({id, p.total, false});
  pending_.clear();
  return out;
}

}  // namespace boundary::realtime::core
