#pragma once
// Client commands (text frames, one JSON object each) and the server's replies. Pure.

#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "boundary/realtime/errors.hpp"

namespace boundary::realtime::core {

enum class Action { subscribe, unsubscribe, publish, ping };

struct Command {
  Action action{};
  std::string topic;              // subscribe, unsubscribe, publish
  boost::json::object message;    // publish
  boost::json::value ref;         // null when absent; string or number otherwise
};

struct CommandError {
  CommandErrorCode code{};
  std::string message;            // human text for the reply
  boost::json::value ref;         // echoed when the command carried one
};

// Parses and validates one command. Topic syntax is checked here (invalid-topic); policy
// (forbidden) is the caller's, with check_subscribe and PublishPatterns.
boost::system::result<Command, CommandError> parse_command(std::string_view text);

// Replies, serialized. `ref` is omitted when null.
std::string reply_subscribed(std::string_view topic, const boost::json::value& ref);
std::string reply_unsubscribed(std::string_view topic, const boost::json::value& ref);
std::string reply_published(std::string_view topic, std::size_t delivered, const boost::json::value& ref);
std::string reply_pong(const boost::json::value& ref);
std::string reply_error(CommandErrorCode code, std::string_view message, const boost::json::value& ref);

}  // namespace boundary::realtime::core
