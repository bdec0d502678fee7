#include "core/presence.hpp"

#include <algorithm>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

namespace boundary::realtime::core {
namespace json = boost::json;

PresenceChange PresenceTable::join(std::string_view topic, std::string_view user_id,
                                   std::shared_ptr<const std::string> info) {
  auto t = topics_.find(topic);
  if (t == topics_.end()) t = topics_.try_emplace(std::string(topic)).first;
  ++t->second.connections;
  auto u = t->second.users.find(user_id);
  if (u != t->second.users.end()) {
    ++u->second.connections;
    return PresenceChange::none;
  }
  t->second.users.try_emplace(std::string(user_id), Present{1, std::move(info)});
  ++entries_;
  return PresenceChange::joined;
}

PresenceChange PresenceTable::leave(std::string_view topic, std::string_view user_id,
                                    std::shared_ptr<const std::string>* info) {
  auto t = topics_.find(topic);
  if (t == topics_.end()) return PresenceChange::none;
  auto u = t->second.users.find(user_id);
  if (u == t->second.users.end()) return PresenceChange::none;
  --t->second.connections;
  if (--u->second.connections > 0) return PresenceChange::none;
  if (info) *info = std::move(u->second.info);
  t->second.users.erase(u);
  --entries_;
  if (t->second.users.empty()) topics_.erase(t);
  return PresenceChange::left;
}

PresenceListing PresenceTable::list(std::string_view topic, std::size_t max_users) const {
  PresenceListing out;
  auto t = topics_.find(topic);
  if (t == topics_.end()) return out;
  const auto& users = t->second.users;
  out.users.reserve(std::min(max_users, users.size()));
  for (const auto& [id, p] : users) {
    if (out.users.size() == max_users) {
      out.truncated = true;
      break;
    }
    out.users.push_back(PresenceUser{id, p.connections, p.info});
  }
  return out;
}

PresenceStats PresenceTable::stats(std::string_view topic) const {
  auto t = topics_.find(topic);
  if (t == topics_.end()) return {};
  return PresenceStats{t->second.users.size(), t->second.connections};
}

bool read_info_claim(const json::object& claims, std::optional<std::string>& out) {
  const auto* v = claims.if_contains("info");
  if (!v) return true;
  if (!v->is_object()) return false;
  auto text = json::serialize(*v);
  if (text.size() > max_info_bytes) return false;
  out = std::move(text);
  return true;
}

namespace {

// The stored info, or {} (it was checked to be an object when the token was verified).
json::value info_value(const std::shared_ptr<const std::string>& info) {
  if (!info) return json::object();
  boost::system::error_code ec;
  auto v = json::parse(*info, ec);
  return ec || !v.is_object() ? json::value(json::object()) : v;
}

}  // namespace

json::object presence_event(const PresenceEvent& event) {
  if (event.kind == PresenceEvent::Kind::leave)
    return {{"type", "presence-leave"}, {"topic", event.topic}, {"user-id", event.user_id}};
  return {{"type", "presence-join"}, {"topic", event.topic}, {"user-id", event.user_id}, {"info", info_value(event.info)}};
}

std::string reply_presence(std::string_view topic, const PresenceListing& listing, const json::value& ref,
                           std::size_t max_bytes) {
  json::object r{{"type", "presence"}, {"topic", topic}, {"users", json::array()}, {"truncated", false}};
  if (!ref.is_null()) r["ref"] = ref;
  // The reply without users, with "truncated":false (the longer of the two values).
  std::size_t size = json::serialize(r).size();
  json::array& users = r["users"].as_array();
  users.reserve(listing.users.size());
  bool truncated = listing.truncated;
  for (const auto& u : listing.users) {
    json::object entry{{"user-id", u.user_id}, {"connections", u.connections}, {"info", info_value(u.info)}};
    if (max_bytes != 0) {
      const std::size_t add = json::serialize(entry).size() + (users.empty() ? 0 : 1);  // and a comma
      if (size + add > max_bytes) {
        truncated = true;
        break;
      }
      size += add;
    }
    users.emplace_back(std::move(entry));
  }
  r["truncated"] = truncated;
  return json::serialize(r);
}

std::string presence_stats_body(const PresenceStats& stats) {
  return json::serialize(json::object{{"users", stats.users}, {"connections", stats.connections}});
}

}  // namespace boundary::realtime::core
