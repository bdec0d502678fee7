#include "core/envelope.hpp"

#include <cstdio>
#include <ctime>

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>

namespace boundary::realtime::core {

std::string format_timestamp(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const auto days = floor<std::chrono::days>(sys_time<milliseconds>(milliseconds(ms)));
  const year_month_day ymd{days};
  const auto in_day = ms - duration_cast<milliseconds>(days.time_since_epoch()).count();
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%03lldZ", int(ymd.year()),
                unsigned(ymd.month()), unsigned(ymd.day()), (long long)(in_day / 3600000),
                (long long)(in_day / 60000 % 60), (long long)(in_day / 1000 % 60), (long long)(in_day % 1000));
  return buf;
}

Message make_envelope(boost::json::object message, std::chrono::system_clock::time_point now,
                      std::string_view topic) {
  if (!message.contains("timestamp")) message["timestamp"] = format_timestamp(now);
  if (!topic.empty() && !message.contains("topic")) message["topic"] = topic;
  return Message::from_json(boost::json::serialize(message));
}

Message make_connected(std::string_view connection_id, const Identity& identity,
                       std::chrono::system_clock::time_point now) {
  boost::json::array roles;
  roles.reserve(identity.roles.size());
  for (const auto& r : identity.roles) roles.emplace_back(r);
  boost::json::object connected{{"type", "connected"},
                                {"connection-id", connection_id},
                                {"user-id", identity.user_id},
                                {"roles", std::move(roles)}};
  return make_envelope(std::move(connected), now);
}

}  // namespace boundary::realtime::core
