#include "core/redis_target.hpp"

#include <optional>

#include "core/cluster_codec.hpp"

namespace boundary::realtime::core {
namespace {

boost::system::result<RedisTarget, std::string> target_error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hex_digit(s[i + 1]);
    const int lo = hex_digit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

struct Scheme {
  std::string_view name;
  bool cluster;
  bool tls;
};
constexpr Scheme schemes[] = {
    {"redis://", false, false},
    {"rediss://", false, true},
    {"redis-cluster://", true, false},
    {"rediss-cluster://", true, true},
};

const Scheme* scheme_of(std::string_view url) {
  for (const auto& s : schemes)
    if (url.starts_with(s.name)) return &s;
  return nullptr;
}

}  // namespace

boost::system::result<RedisTarget, std::string> parse_redis_target(std::string_view url) {
  const Scheme* scheme = scheme_of(url);
  if (!scheme)
    return target_error(
        "expected redis://[user:password@]host[:port][/db], rediss://..., "
        "redis-cluster://host[:port][,host[:port]...] or rediss-cluster://...");
  std::string_view rest = url.substr(scheme->name.size());
  RedisTarget out;
  out.cluster = scheme->cluster;
  out.tls = scheme->tls;
  if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
    const auto userinfo = rest.substr(0, at);
    rest.remove_prefix(at + 1);
    const auto colon = userinfo.find(':');
    auto user = percent_decode(userinfo.substr(0, colon));
    auto password = colon == std::string_view::npos ? std::optional<std::string>("")
                                                    : percent_decode(userinfo.substr(colon + 1));
    if (!user || !password) return target_error("bad percent-escape in the URL's credentials");
    out.user = std::move(*user);
    out.password = std::move(*password);
  }
  // The host part is parsed by the plain parsers, which know nothing of TLS or credentials.
  if (scheme->cluster) {
    auto seeds = parse_cluster_url("redis-cluster://" + std::string(rest));
    if (!seeds) return target_error(seeds.error());
    out.nodes = std::move(*seeds);
  } else {
    auto one = parse_redis_url("redis://" + std::string(rest));
    if (!one) return target_error(one.error());
    out.nodes.push_back({one->host, one->port});
    out.db = one->db;
  }
  return out;
}

std::string redact_redis_url(std::string_view url) {
  const Scheme* scheme = scheme_of(url);
  const std::size_t start = scheme ? scheme->name.size() : 0;
  const auto at = url.rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  const auto userinfo = url.substr(start, at - start);
  const auto colon = userinfo.find(':');
  std::string out(url.substr(0, start));
  out += colon == std::string_view::npos ? std::string_view{} : userinfo.substr(0, colon);
  out += colon == std::string_view::npos ? "***" : ":***";
  out += url.substr(at);
  return out;
}

bool valid_redis_prefix(std::string_view prefix) noexcept {
  if (prefix.empty() || prefix.size() > max_redis_prefix_bytes) return false;
  for (char c : prefix) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-' || c == ':' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace boundary::realtime::core
