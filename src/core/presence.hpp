#pragma once
// Presence (docs/presence.md): which users are subscribed to a topic, counted per user. Pure: a
// store adapter holds a PresenceTable and decides with it; nothing here locks or does I/O.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "boundary/realtime/ports/presence_store.hpp"

namespace boundary::realtime::core {

// The JWT `info` claim: a JSON object of at most this many bytes, serialized.
inline constexpr std::size_t max_info_bytes = 1024;
inline constexpr std::size_t default_presence_max_users = 1000;
inline constexpr std::size_t max_presence_max_users = 100000;
// A topic's changes during this interval after an announced one go out together.
inline constexpr std::chrono::milliseconds presence_interval{50};

// What a join or a leave changed for the topic's subscribers.
enum class PresenceChange { none, joined, left };

// The present users of every tracked topic: per topic, per user, how many of the user's
// connections are subscribed and the user's `info` (shared with the connection's identity, not
// copied). A user is present while the count is above zero.
class PresenceTable {
 public:
  // A connection of `user_id` subscribed to `topic`: `joined` when it is the user's first.
  PresenceChange join(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string> info);
  // One of the user's connections left `topic`: `left` when it was the user's last (then
  // `*info`, when given, is the info the user had). A leave without a matching join changes
  // nothing.
  PresenceChange leave(std::string_view topic, std::string_view user_id, std::shared_ptr<const std::string>* info = nullptr);
  // At most `max_users` users (in no particular order); `truncated` when there were more. Costs
  // O(listed), not O(present).
  PresenceListing list(std::string_view topic, std::size_t max_users) const;
  PresenceStats stats(std::string_view topic) const;
  std::size_t topic_count() const noexcept { return topics_.size(); }
  // Users summed over topics (a user on two topics counts twice).
  std::size_t entry_count() const noexcept { return entries_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Present {
    std::uint32_t connections = 0;
    std::shared_ptr<const std::string> info;  // serialized object; null: none
  };
  struct Topic {
    std::unordered_map<std::string, Present, Hash, std::equal_to<>> users;
    std::size_t connections = 0;
  };
  std::unordered_map<std::string, Topic, Hash, std::equal_to<>> topics_;
  std::size_t entries_ = 0;
};

// Reads the `info` claim into `out` (serialized; left empty when the claim is absent). False when
// it is present but not an object, or larger than max_info_bytes serialized.
bool read_info_claim(const boost::json::object& claims, std::optional<std::string>& out);

// {"type":"presence-join","topic":T,"user-id":U,"info":{...}} ("info" is {} for a token without
// one) and {"type":"presence-leave","topic":T,"user-id":U}, as objects for the hub's envelope.
boost::json::object presence_event(const PresenceEvent& event);
// {"type":"presence","topic":T,"users":[{"user-id","connections","info"}],"truncated":B}
// (+ "ref"): the client action's reply and GET /api/presence's body. With `max_bytes` the reply
// stays within it: users that would not fit are left out and "truncated" is true.
std::string reply_presence(std::string_view topic, const PresenceListing& listing, const boost::json::value& ref,
                           std::size_t max_bytes = 0);
// {"users":N,"connections":M}: GET /api/presence-stats.
std::string presence_stats_body(const PresenceStats& stats);

}  // namespace boundary::realtime::core
