#pragma once
// The server's additions to every outbound message, made once per send (never per recipient).

#include <chrono>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "boundary/realtime/message.hpp"

namespace boundary::realtime::core {

// ISO 8601 UTC with milliseconds: 2025-01-01T12:00:00.000Z
std::string format_timestamp(std::chrono::system_clock::time_point t);

// Adds "timestamp" (when absent) and, for topic deliveries, "topic" (when absent); serializes and
// frames once.
Message make_envelope(boost::json::object message, std::chrono::system_clock::time_point now,
                      std::string_view topic = {});

// Server-originated messages: connected, server-shutdown, replies.
Message make_message(const boost::json::object& message);

}  // namespace boundary::realtime::core
