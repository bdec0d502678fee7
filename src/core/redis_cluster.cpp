#include "core/redis_cluster.hpp"

#include "core/parse_util.hpp"

namespace boundary::realtime::core {
namespace {

// host[:port] or [v6][:port]; an empty host is allowed here (redirects may carry one).
std::optional<Endpoint> host_port(std::string_view s, std::uint16_t default_port) {
  Endpoint e;
  e.port = default_port;
  std::string_view port_text;
  if (s.starts_with('[')) {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    e.host = std::string(s.substr(1, close - 1));
    auto rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return std::nullopt;
      port_text = rest.substr(1);
      if (port_text.empty()) return std::nullopt;
    }
  } else if (const auto colon = s.rfind(':'); colon != std::string_view::npos) {
    e.host = std::string(s.substr(0, colon));
    port_text = s.substr(colon + 1);
    if (port_text.empty() || e.host.find(':') != std::string::npos) return std::nullopt;
  } else {
    e.host = std::string(s);
  }
  if (!port_text.empty()) {
    auto port = parse_number<std::uint16_t>(port_text);
    if (!port || *port == 0) return std::nullopt;
    e.port = *port;
  }
  return e;
}

boost::system::result<std::vector<Endpoint>, std::string> url_error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}
boost::system::result<SlotMap, std::string> map_error(std::string why) {
  return {boost::system::in_place_error, std::move(why)};
}

}  // namespace

std::string to_string(const Endpoint& e) {
  const bool v6 = e.host.find(':') != std::string::npos;
  return (v6 ? "[" + e.host + "]" : e.host) + ':' + std::to_string(e.port);
}

std::uint16_t crc16(std::string_view data) noexcept {
  std::uint16_t crc = 0;
  for (unsigned char c : data) {
    crc ^= static_cast<std::uint16_t>(c << 8);
    for (int bit = 0; bit < 8; ++bit)
      crc = (crc & 0x8000) ? static_cast<std::uint16_t>((crc << 1) ^ 0x1021) : static_cast<std::uint16_t>(crc << 1);
  }
  return crc;
}

std::uint16_t key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16(key) & (cluster_slots - 1);
}

bool is_cluster_url(std::string_view url) noexcept { return url.starts_with("redis-cluster://"); }

boost::system::result<std::vector<Endpoint>, std::string> parse_cluster_url(std::string_view url) {
  constexpr std::string_view scheme = "redis-cluster://";
  if (!url.starts_with(scheme)) return url_error("expected redis-cluster://host:port[,host:port...]");
  url.remove_prefix(scheme.size());
  if (url.ends_with('/')) url.remove_suffix(1);
  if (url.find('/') != std::string_view::npos) return url_error("a cluster has no database number");
  if (url.find('@') != std::string_view::npos) return url_error("credentials in the URL are not supported");
  std::vector<Endpoint> seeds;
  while (true) {
    const auto comma = url.find(',');
    const auto item = url.substr(0, comma);
    auto e = host_port(item, 6379);
    if (!e) return url_error("bad node '" + std::string(item) + "'");
    if (e->host.empty()) return url_error("missing host");
    seeds.push_back(std::move(*e));
    if (comma == std::string_view::npos) break;
    url.remove_prefix(comma + 1);
  }
  return seeds;
}

boost::system::result<SlotMap, std::string> parse_cluster_slots(const RespValue& reply, std::string_view asked_host) {
  using K = RespValue::Kind;
  if (reply.kind != K::array) return map_error("CLUSTER SLOTS: not an array");
  SlotMap map;
  map.owner.fill(-1);
  for (const auto& range : reply.elements) {
    if (range.kind != K::array || range.elements.size() < 3) return map_error("CLUSTER SLOTS: bad range");
    const auto& first = range.elements[0];
    const auto& last = range.elements[1];
    const auto& node = range.elements[2];
    if (first.kind != K::integer || last.kind != K::integer || first.integer < 0 || last.integer < first.integer ||
        last.integer >= cluster_slots)
      return map_error("CLUSTER SLOTS: bad slot range");
    if (node.kind != K::array || node.elements.size() < 2 || node.elements[0].kind != K::string ||
        node.elements[1].kind != K::integer || node.elements[1].integer <= 0 || node.elements[1].integer > 65535)
      return map_error("CLUSTER SLOTS: bad node");
    Endpoint master{node.elements[0].str, static_cast<std::uint16_t>(node.elements[1].integer)};
    if (master.host.empty() || master.host == "?") master.host = std::string(asked_host);
    std::size_t index = 0;
    while (index < map.masters.size() && map.masters[index] != master) ++index;
    if (index == map.masters.size()) map.masters.push_back(master);
    for (auto s = first.integer; s <= last.integer; ++s) map.owner[static_cast<std::size_t>(s)] = static_cast<std::int16_t>(index);
  }
  for (auto o : map.owner)
    if (o < 0) return map_error("CLUSTER SLOTS: some slots are not served");
  return map;
}

std::optional<Redirect> parse_redirect(std::string_view error) {
  Redirect r;
  if (error.starts_with("MOVED ")) {
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    r.ask = true;
    error.remove_prefix(4);
  } else {
    return std::nullopt;
  }
  const auto sp = error.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  auto slot = parse_number<std::uint16_t>(error.substr(0, sp));
  if (!slot || *slot >= cluster_slots) return std::nullopt;
  // The port follows the last ':'; Redis does not bracket an IPv6 address here.
  const auto addr = error.substr(sp + 1);
  const auto colon = addr.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  auto port = parse_number<std::uint16_t>(addr.substr(colon + 1));
  if (!port || *port == 0) return std::nullopt;
  r.slot = *slot;
  r.to = Endpoint{std::string(addr.substr(0, colon)), *port};
  return r;
}

}  // namespace boundary::realtime::core
