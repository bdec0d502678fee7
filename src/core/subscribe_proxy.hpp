#pragma once
// The subscribe proxy's contract (--subscribe-policy proxy): what the server asks the backend
// and what a reply means. Pure; the HTTP exchange is src/shell/adapters/subscribe_authorizer_http.*.

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/system/result.hpp>

#include "boundary/realtime/config.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {

// Largest reply body read from the backend; a longer one is a failure (refused).
inline constexpr std::size_t max_proxy_reply_bytes = 4096;

struct HttpUrl {
  bool tls = false;      // https://
  std::string host;      // a name or an IPv4 literal, or an IPv6 literal without brackets
  std::string port;      // "80" (http) or "443" (https) when absent
  std::string target;    // "/" when absent; the query is kept
};

// `http://host[:port][/path]` or `https://...` (--subscribe-proxy, --jwt-jwks-url).
boost::system::result<HttpUrl, std::string> parse_http_url(std::string_view url);

// The policy in effect: an empty --subscribe-policy means `proxy` when a proxy URL is given,
// else `open`. Errors (for validate_config): an unknown policy, `proxy` without a URL, a URL
// with another policy (it would be ignored), a URL that parse_http_url refuses.
boost::system::result<SubscribePolicy, std::string> effective_subscribe_policy(const Config& c);

// The JSON body of one question: {"user-id","connection-id","topic"}.
std::string proxy_request_body(std::string_view user_id, std::string_view connection_id, std::string_view topic);

// Only 200 with a JSON object whose `allow` is `true` allows; any other status, body or
// `allow` value denies.
bool proxy_reply_allows(unsigned status, std::string_view body) noexcept;

}  // namespace boundary::realtime::core
