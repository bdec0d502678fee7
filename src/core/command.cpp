#include "core/command.hpp"

#include <boost/json/serialize.hpp>

#include "core/parse_util.hpp"
#include "core/topic.hpp"

namespace boundary::realtime::core {
namespace json = boost::json;
namespace {

CommandError fail(CommandErrorCode code, std::string message, const json::value& ref = nullptr) {
  return CommandError{code, std::move(message), ref};
}

std::optional<Action> action_named(std::string_view name) {
  if (name == "subscribe") return Action::subscribe;
  if (name == "unsubscribe") return Action::unsubscribe;
  if (name == "publish") return Action::publish;
  if (name == "ping") return Action::ping;
  if (name == "refresh") return Action::refresh;
  return std::nullopt;
}

std::string with_ref(json::object reply, const json::value& ref) {
  if (!ref.is_null()) reply["ref"] = ref;
  return json::serialize(reply);
}

}  // namespace

boost::system::result<Command, CommandError> parse_command(std::string_view text) {
  // Depth is bounded by the parser (32 by default): hostile nesting cannot exhaust the stack.
  auto parsed = parse_strict_json(text);
  if (parsed.problem == JsonProblem::invalid) return fail(CommandErrorCode::bad_request, "message is not valid JSON");
  // Which of two `topic`s would be checked and which one used is exactly the doubt to avoid.
  if (parsed.problem == JsonProblem::duplicate_key)
    return fail(CommandErrorCode::bad_request, "message has a key twice");
  json::value& v = parsed.value;
  if (!v.is_object()) return fail(CommandErrorCode::bad_request, "message must be a JSON object");
  auto& obj = v.get_object();

  Command cmd;
  if (auto* r = obj.if_contains("ref")) {
    // A ref past double's range is refused like one of the wrong type: it must not be echoed
    // in the error below (see all_numbers_finite).
    if ((!r->is_string() && !r->is_number()) || !all_numbers_finite(*r))
      return fail(CommandErrorCode::bad_request, "ref must be a string or a number");
    cmd.ref = *r;
  }
  if (!all_numbers_finite(v))
    return fail(CommandErrorCode::bad_request, "numbers must be within the range of a double", cmd.ref);
  auto* action = obj.if_contains("action");
  if (!action || !action->is_string())
    return fail(CommandErrorCode::bad_request, "missing field: action", cmd.ref);
  auto named = action_named(action->get_string());
  if (!named) {
    cmd.action = Action::custom;
    cmd.message = std::move(obj);
    return cmd;
  }
  cmd.action = *named;
  if (cmd.action == Action::ping) return cmd;
  if (cmd.action == Action::refresh) {
    // Only the shape is checked here; the size cap and everything else is the verifier's.
    auto* token = obj.if_contains("token");
    if (!token || !token->is_string() || token->get_string().empty())
      return fail(CommandErrorCode::bad_request, "missing field: token", cmd.ref);
    cmd.token = std::string(token->get_string());
    return cmd;
  }

  auto* topic = obj.if_contains("topic");
  if (!topic || !topic->is_string()) return fail(CommandErrorCode::bad_request, "missing field: topic", cmd.ref);
  cmd.topic = std::string(topic->get_string());
  if (!is_valid_topic(cmd.topic))
    return fail(CommandErrorCode::invalid_topic, "topic must be 1-256 bytes without whitespace or control characters", cmd.ref);
  if (cmd.action != Action::publish) return cmd;

  auto* message = obj.if_contains("message");
  if (!message || !message->is_object())
    return fail(CommandErrorCode::bad_request, "missing field: message (a JSON object)", cmd.ref);
  auto* type = message->get_object().if_contains("type");
  if (!type || !type->is_string())
    return fail(CommandErrorCode::bad_request, "message must have a string type", cmd.ref);
  cmd.message = std::move(message->get_object());
  return cmd;
}

CommandDecision decide_command(std::string_view text, const Identity& who, const CommandRules& rules,
                               TokenBucketPolicy::Clock::time_point& bucket_full_at,
                               TokenBucketPolicy::Clock::time_point now) {
  auto refuse = [](CommandErrorCode code, std::string_view why, const json::value& ref) {
    return Refusal{code, reply_error(code, why, ref)};
  };
  auto parsed = parse_command(text);
  if (!rules.rate.try_take(bucket_full_at, now))
    return refuse(CommandErrorCode::rate_limited, "too many commands; slow down",
                  parsed ? parsed->ref : parsed.error().ref);
  if (!parsed) return refuse(parsed.error().code, parsed.error().message, parsed.error().ref);
  auto& cmd = *parsed;
  switch (cmd.action) {
    case Action::custom:
      if (!rules.custom_actions) return refuse(CommandErrorCode::bad_request, "unknown action", cmd.ref);
      break;
    case Action::subscribe:
      if (auto denied = check_subscribe(who, cmd.topic, rules.subscribe))
        return refuse(*denied, subscribe_forbidden, cmd.ref);
      break;
    case Action::publish:
      if (!rules.publish.allows(cmd.topic))
        return refuse(CommandErrorCode::forbidden, "publishing to this topic is not allowed", cmd.ref);
      break;
    case Action::unsubscribe:
    case Action::ping:
    case Action::refresh: break;
  }
  return std::move(cmd);
}

std::string reply_subscribed(std::string_view topic, const json::value& ref) {
  return with_ref({{"type", "subscribed"}, {"topic", topic}}, ref);
}

std::string reply_unsubscribed(std::string_view topic, const json::value& ref) {
  return with_ref({{"type", "unsubscribed"}, {"topic", topic}}, ref);
}

std::string reply_published(std::string_view topic, std::size_t delivered, const json::value& ref) {
  return with_ref({{"type", "published"}, {"topic", topic}, {"delivered", delivered}}, ref);
}

std::string reply_pong(const json::value& ref) { return with_ref({{"type", "pong"}}, ref); }

std::string reply_error(CommandErrorCode code, std::string_view message, const json::value& ref) {
  return with_ref({{"type", "error"}, {"code", to_string(code)}, {"message", message}}, ref);
}

}  // namespace boundary::realtime::core
