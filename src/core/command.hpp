#pragma once
// Client commands (text frames, one JSON object each) and the server's replies. Pure.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/identity.hpp"
#include "core/history.hpp"
#include "core/rate_limiter.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {

// `custom`: an action the server does not know, for the application (Hooks::on_action).
// `refresh`: a new token for the connection; the shell verifies it (the verifier is a port)
// and core::decide_refresh (token_lifetime.hpp) decides.
// `history`: kept messages of a topic (subscribe's authorization applies).
// `presence`: the users on a topic with presence (subscribe's authorization applies).
enum class Action { subscribe, unsubscribe, publish, ping, custom, refresh, history, presence };

// The `history` action's page size: default and ceiling.
inline constexpr std::size_t default_history_limit = 100;
inline constexpr std::size_t max_history_limit = 1000;

struct Command {
  Action action{};
  std::string topic;              // subscribe, unsubscribe, publish
  boost::json::object message;    // publish: the message; custom: the whole command
  boost::json::value ref;         // null when absent; string or number otherwise
  std::string token;              // refresh: the new token, not yet verified
  std::optional<RecoverFrom> recover;  // subscribe: {"offset":N,"epoch":E}
  std::uint64_t since = 0;        // history
  std::size_t limit = default_history_limit;  // history
};

struct CommandError {
  CommandErrorCode code{};
  std::string message;            // human text for the reply
  boost::json::value ref;         // echoed when the command carried one
};

// Parses and validates one command. Topic syntax is checked here (invalid-topic); policy
// (forbidden) is decide_command's.
boost::system::result<Command, CommandError> parse_command(std::string_view text);

// The rules every client command passes, shared by all connections of a server.
struct CommandRules {
  TopicPatterns publish;        // --publish-patterns
  TokenBucketPolicy rate{0, 1};   // --commands-per-second, --command-burst
  bool custom_actions = false;    // the application handles unknown actions
  SubscribePolicy subscribe = SubscribePolicy::open;  // --subscribe-policy
};

// What a command leads to. A Refusal is answered with its serialized error reply (the
// connection stays open); a Command (subscribe, unsubscribe, publish, ping, custom, refresh) passed
// every rule that needs no server state and is the shell's to carry out (the subscription
// limit is the registry's).
struct Refusal {
  CommandErrorCode code{};
  std::string reply;
};
using CommandDecision = std::variant<Refusal, Command>;

// Parse, rate (one token from the connection's bucket, `bucket_full_at`), then policy: the
// subscribe rule for `who` under rules.subscribe and the publish patterns. Under
// SubscribePolicy::proxy a subscribe that passes is still the backend's to allow (the shell asks). The command is parsed before the
// rate check so that a rate-limited reply can echo its ref; the parse is bounded by the
// inbound message limit.
CommandDecision decide_command(std::string_view text, const Identity& who, const CommandRules& rules,
                               TokenBucketPolicy::Clock::time_point& bucket_full_at,
                               TokenBucketPolicy::Clock::time_point now);

// The refusal text of a subscribe, whoever refused it (the built-in rule, the subscribe policy,
// the backend or the application): a client cannot tell which, by design.
inline constexpr std::string_view subscribe_forbidden = "not allowed to subscribe to this topic";

// Replies, serialized. `ref` is omitted when null.
// `recovered`: a subscribe with `recover` on a topic without history (always false).
std::string reply_subscribed(std::string_view topic, const boost::json::value& ref,
                             std::optional<bool> recovered = std::nullopt);
// On a topic with history: the stream's last offset and epoch, and `recovered` when the
// subscribe asked for a recovery.
std::string reply_subscribed(std::string_view topic, std::uint64_t offset, std::string_view epoch,
                             std::optional<bool> recovered, const boost::json::value& ref);
// {"type":"history","topic","epoch","offset":LAST,"messages":[...]}; `messages` are serialized
// objects, spliced in as they are (the stored bytes, no re-encoding).
std::string reply_history(std::string_view topic, std::string_view epoch, std::uint64_t offset,
                          const std::vector<std::string_view>& messages, const boost::json::value& ref);
std::string reply_unsubscribed(std::string_view topic, const boost::json::value& ref);
// `offset`: the message's offset on a topic with history (0: none, omitted).
std::string reply_published(std::string_view topic, std::size_t delivered, const boost::json::value& ref,
                            std::uint64_t offset = 0);
std::string reply_pong(const boost::json::value& ref);
std::string reply_error(CommandErrorCode code, std::string_view message, const boost::json::value& ref);

}  // namespace boundary::realtime::core
