#pragma once
// The --redis URL as a whole (docs/cluster.md, "Redis security"): which scheme (plain or TLS,
// one Redis or a Redis Cluster), the credentials, the nodes, the database; and the URL as it may
// be shown (the password replaced). Credentials never appear in an error message: a message
// about a URL speaks of the part after the '@' only.

#include <string>
#include <string_view>
#include <vector>

#include <boost/system/result.hpp>

#include "core/redis_cluster.hpp"

namespace boundary::realtime::core {

struct RedisTarget {
  bool cluster = false;  // redis-cluster:// or rediss-cluster://
  bool tls = false;      // rediss:// or rediss-cluster://
  std::string user;      // ACL user, percent-decoded; empty: AUTH with the password only
  std::string password;  // percent-decoded; empty: none in the URL (maybe from a file or the environment)
  std::vector<Endpoint> nodes;  // one Redis, or the cluster's seeds
  unsigned db = 0;              // one Redis only
};

// redis://[user[:password]@]host[:port][/db], rediss://... (TLS),
// redis-cluster://[user[:password]@]host[:port][,host[:port]...], rediss-cluster://...
// The credentials end at the last '@', so an unencoded '@' or '/' in a password still parses;
// '%XX' escapes are decoded in both the user and the password.
boost::system::result<RedisTarget, std::string> parse_redis_target(std::string_view url);

// The URL with its password replaced by "***" (redis://user:***@host:6379/0), for logs and the
// startup line. A URL without credentials is returned as is.
std::string redact_redis_url(std::string_view url);

// --redis-prefix: 1 to 64 characters of [A-Za-z0-9._:/-]. No braces (a hash tag in the prefix
// would put every channel in one slot on Redis Cluster), no whitespace, no glob characters (ACL
// channel and key patterns are written as "<prefix>:*").
constexpr std::size_t max_redis_prefix_bytes = 64;
bool valid_redis_prefix(std::string_view prefix) noexcept;

}  // namespace boundary::realtime::core
