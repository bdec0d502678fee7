#pragma once
// The server's additions to every outbound message, made once per send (never per recipient).

#include <chrono>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "boundary/realtime/identity.hpp"
#include "boundary/realtime/message.hpp"

namespace boundary::realtime::core {

// ISO 8601 UTC with milliseconds: 2025-01-01T12:00:00.000Z
std::string format_timestamp(std::chrono::system_clock::time_point t);

// Adds "timestamp" (when absent) and, for topic deliveries, "topic" (when absent); serializes and
// frames once.
Message make_envelope(boost::json::object message, std::chrono::system_clock::time_point now,
                      std::string_view topic = {});

// The first message of every connection, before anything else:
// {"type":"connected","connection-id","user-id","roles","timestamp"}.
Message make_connected(std::string_view connection_id, const Identity& identity,
                       std::chrono::system_clock::time_point now);

}  // namespace boundary::realtime::core
