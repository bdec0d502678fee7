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
  if (name == "history") return Action::history;
  if (name == "presence") return Action::presence;
  return std::nullopt;
}

std::optional<std::uint64_t> whole_number(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
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
  if (cmd.action == Action::subscribe) {
    if (auto* r = obj.if_contains("recover")) {
      auto* o = r->if_object();
      auto* offset = o ? o->if_contains("offset") : nullptr;
      auto* epoch = o ? o->if_contains("epoch") : nullptr;
      auto n = offset ? whole_number(*offset) : std::nullopt;
      if (!n || !epoch || !epoch->is_string())
        return fail(CommandErrorCode::bad_request, "recover must be {\"offset\": a whole number >= 0, \"epoch\": a string}", cmd.ref);
      cmd.recover = RecoverFrom{*n, std::string(epoch->get_string())};
    }
    return cmd;
  }
  if (cmd.action == Action::history) {
    if (auto* since = obj.if_contains("since")) {
      auto n = whole_number(*since);
      if (!n) return fail(CommandErrorCode::bad_request, "since must be a whole number >= 0", cmd.ref);
      cmd.since = *n;
    }
    if (auto* limit = obj.if_contains("limit")) {
      auto n = whole_number(*limit);
      if (!n || *n == 0 || *n > max_history_limit)
        return fail(CommandErrorCode::bad_request, "limit must be a whole number from 1 to " + std::to_string(max_history_limit), cmd.ref);
      cmd.limit = static_cast<std::size_t>(*n);
    }
    return cmd;
  }
  if (cmd.action != Action::publish) return cmd;

  auto* message = obj.if_contains("message");
  if (!message || !message->is_object())
    return fail(CommandErrorCode::bad_request, "missing field: message (a JSON object)", cmd.ref);
  auto* type = message->get_object().if_contains("type");
  if (!type || !type->is_string())
    return fail(CommandErrorCode::bad_request, "message must have a string type", cmd.ref);
  if (is_reserved_topic_type(type->get_string()))
    return fail(CommandErrorCode::bad_request, std::string(reserved_type_refusal), cmd.ref);
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
    case Action::history:
    case Action::presence:
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

std::string reply_subscribed(std::string_view topic, const json::value& ref, std::optional<bool> recovered) {
  json::object r{{"type", "subscribed"}, {"topic", topic}};
  if (recovered) r["recovered"] = *recovered;
  return with_ref(std::move(r), ref);
}

std::string reply_subscribed(std::string_view topic, std::uint64_t offset, std::string_view epoch,
                             std::optional<bool> recovered, const json::value& ref) {
  json::object r{{"type", "subscribed"}, {"topic", topic}, {"offset", offset}, {"epoch", epoch}};
  if (recovered) r["recovered"] = *recovered;
  return with_ref(std::move(r), ref);
}

std::string reply_history(std::string_view topic, std::string_view epoch, std::uint64_t offset,
                          const std::vector<std::string_view>& messages, const json::value& ref) {
  json::object head{{"type", "history"}, {"topic", topic}, {"epoch", epoch}, {"offset", offset}};
  if (!ref.is_null()) head["ref"] = ref;
  std::string out = json::serialize(head);
  out.pop_back();  // the closing brace: the messages follow
  std::size_t total = out.size() + 16;
  for (auto m : messages) total += m.size() + 1;
  out.reserve(total);
  out += ",\"messages\":[";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i) out += ',';
    out += messages[i];
  }
  out += "]}";
  return out;
}

std::string reply_unsubscribed(std::string_view topic, const json::value& ref) {
  return with_ref({{"type", "unsubscribed"}, {"topic", topic}}, ref);
}

std::string reply_published(std::string_view topic, std::size_t delivered, const json::value& ref,
                            std::uint64_t offset) {
  json::object r{{"type", "published"}, {"topic", topic}, {"delivered", delivered}};
  if (offset != 0) r["offset"] = offset;
  return with_ref(std::move(r), ref);
}

std::string reply_pong(const json::value& ref) { return with_ref({{"type", "pong"}}, ref); }

std::string reply_error(CommandErrorCode code, std::string_view message, const json::value& ref) {
  return with_ref({{"type", "error"}, {"code", to_string(code)}, {"message", message}}, ref);
}

}  // namespace boundary::realtime::core
