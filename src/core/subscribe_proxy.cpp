#include "core/subscribe_proxy.hpp"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/parse_util.hpp"

namespace boundary::realtime::core {
namespace json = boost::json;
namespace {
template <class T>
boost::system::result<T, std::string> error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}
}  // namespace

boost::system::result<HttpUrl, std::string> parse_http_url(std::string_view url) {
  HttpUrl out;
  std::string_view rest;
  if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else if (url.starts_with("https://")) {
    rest = url.substr(8);
    out.tls = true;
  } else {
    return error<HttpUrl>("expected http[s]://host[:port][/path]");
  }
  const auto slash = rest.find_first_of("/?");
  auto authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target.front() == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) return error<HttpUrl>("credentials in the URL are not supported");
  std::string_view host = authority, port;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return error<HttpUrl>("unterminated IPv6 address");
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return error<HttpUrl>("expected ':' after the IPv6 address");
    if (!after.empty()) port = after.substr(1);
  } else if (auto colon = authority.rfind(':'); colon != std::string_view::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) return error<HttpUrl>("an IPv6 address needs brackets");
  }
  if (host.empty()) return error<HttpUrl>("missing host");
  for (char ch : host)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7F) return error<HttpUrl>("invalid host");
  for (char ch : out.target)
    if (static_cast<unsigned char>(ch) <= 0x20 || ch == 0x7F || ch == '#') return error<HttpUrl>("invalid path");
  if (authority.find(':') != std::string_view::npos || !port.empty()) {
    unsigned value = 0;
    if (port.empty() || port.size() > 5) return error<HttpUrl>("invalid port");
    for (char ch : port) {
      if (ch < '0' || ch > '9') return error<HttpUrl>("invalid port");
      value = value * 10 + static_cast<unsigned>(ch - '0');
    }
    if (value == 0 || value > 65535) return error<HttpUrl>("invalid port");
  }
  out.host = std::string(host);
  out.port = !port.empty() ? std::string(port) : out.tls ? "443" : "80";
  return out;
}

boost::system::result<SubscribePolicy, std::string> effective_subscribe_policy(const Config& c) {
  const bool has_url = !c.subscribe_proxy.empty();
  if (c.subscribe_policy.empty()) return has_url ? SubscribePolicy::proxy : SubscribePolicy::open;
  auto policy = parse_subscribe_policy(c.subscribe_policy);
  if (!policy) return error<SubscribePolicy>("--subscribe-policy: expected open, claims or proxy, got '" + c.subscribe_policy + "'");
  if (*policy == SubscribePolicy::proxy && !has_url)
    return error<SubscribePolicy>("--subscribe-policy proxy needs --subscribe-proxy URL");
  if (*policy != SubscribePolicy::proxy && has_url)
    return error<SubscribePolicy>("--subscribe-proxy is only used with --subscribe-policy proxy, not " + c.subscribe_policy);
  return *policy;
}

std::string proxy_request_body(std::string_view user_id, std::string_view connection_id, std::string_view topic) {
  return json::serialize(json::object{{"user-id", user_id}, {"connection-id", connection_id}, {"topic", topic}});
}

bool proxy_reply_allows(unsigned status, std::string_view body) noexcept {
  if (status != 200 || body.size() > max_proxy_reply_bytes) return false;
  // Depth-bounded and strict; {"allow":false,"allow":true} is no answer, so it refuses.
  auto parsed = parse_strict_json(body);
  if (parsed.problem != JsonProblem::none || !parsed.value.is_object()) return false;
  const auto* allow = parsed.value.get_object().if_contains("allow");
  return allow && allow->is_bool() && allow->get_bool();
}

}  // namespace boundary::realtime::core
