// libFuzzer target: client commands (text frames) from hostile clients.
// Invariants: parse_command and decide_command never crash; a success has a valid topic where
// the action needs one and a message with a string type for publish; every reply serializes to
// a JSON object. (The subscribe proxy's parsers have their own target, fuzz_subscribe_proxy.)
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <boost/json/parse.hpp>

#include "core/command.hpp"
#include "core/topic.hpp"

using namespace boundary::realtime;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = core::parse_command(text);
  std::string reply;
  if (parsed) {
    const bool topical = parsed->action != core::Action::ping && parsed->action != core::Action::custom &&
                         parsed->action != core::Action::refresh;
    if (topical && !core::is_valid_topic(parsed->topic)) std::abort();
    if (parsed->action == core::Action::refresh && parsed->token.empty()) std::abort();
    if (parsed->action == core::Action::publish) {
      auto* type = parsed->message.if_contains("type");
      if (!type || !type->is_string()) std::abort();
    }
    reply = core::reply_subscribed(parsed->topic, parsed->ref);
    Identity who{.user_id = "42", .roles = {"admin"}};
    (void)core::check_subscribe(who, parsed->topic);
  } else {
    reply = core::reply_error(parsed.error().code, parsed.error().message, parsed.error().ref);
  }
  boost::system::error_code ec;
  auto v = boost::json::parse(reply, ec);
  if (ec || !v.is_object()) std::abort();
  static const core::CommandRules rules{core::TopicPatterns({"chat:*"}), core::TokenBucketPolicy(0, 1), true};
  auto bucket = core::TokenBucketPolicy::Clock::time_point::min();
  const Identity who{.user_id = "7", .roles = {}};
  auto decided = core::decide_command(text, who, rules, bucket, core::TokenBucketPolicy::Clock::time_point{});
  if (auto* refusal = std::get_if<core::Refusal>(&decided)) {
    auto r = boost::json::parse(refusal->reply, ec);
    if (ec || !r.is_object()) std::abort();
  }
  return 0;
}
