// libFuzzer target: the subscribe proxy's parsers (src/core/subscribe_proxy.*) and the strict
// JSON reader its replies go through, fed with what a compromised or broken backend could send.
// Invariants: nothing crashes; a reply that allows is a 200 whose JSON is an object with no key
// twice and `"allow": true`; a parsed URL has a host and a target starting with '/'; a question
// built from hostile strings is a JSON object that carries them unchanged; parse_strict_json
// agrees with Boost.JSON's parser (same value when it accepts, and a "key twice" refusal only for
// a text Boost.JSON reads).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "core/parse_util.hpp"
#include "core/subscribe_proxy.hpp"
#include "core/utf8.hpp"

using namespace boundary::realtime;
namespace json = boost::json;

namespace {

void check_strict_json(std::string_view text) {
  boost::system::error_code ec;
  json::value plain = json::parse(text, ec);
  auto strict = core::parse_strict_json(text);
  switch (strict.problem) {
    case core::JsonProblem::none:
      // Compared as text: Boost.JSON 1.81 reads some numbers (0e400) as NaN, never equal to itself.
      if (ec || json::serialize(strict.value) != json::serialize(plain)) std::abort();
      break;
    case core::JsonProblem::duplicate_key:
      if (ec || !strict.value.is_null()) std::abort();
      break;
    case core::JsonProblem::invalid:
      if (!ec) std::abort();
      break;
  }
}

void check_reply(std::string_view text) {
  for (unsigned status : {200u, 403u, 500u}) {
    if (!core::proxy_reply_allows(status, text)) continue;
    auto strict = core::parse_strict_json(text);
    if (status != 200 || strict.problem != core::JsonProblem::none || !strict.value.is_object() ||
        strict.value.get_object().at("allow") != true)
      std::abort();
  }
}

void check_url(std::string_view text) {
  if (auto url = core::parse_http_url(text); url && (url->host.empty() || url->target.empty() || url->target[0] != '/'))
    std::abort();
}

// The input split at the first two NULs into user id, connection id and topic (valid UTF-8 only:
// they come from a verified token, a generated id and a checked topic).
void check_question(std::string_view text) {
  auto a = text.find('\0');
  if (a == std::string_view::npos) return;
  auto b = text.find('\0', a + 1);
  if (b == std::string_view::npos) return;
  const auto user = text.substr(0, a), conn = text.substr(a + 1, b - a - 1), topic = text.substr(b + 1);
  if (!core::is_valid_utf8(user) || !core::is_valid_utf8(conn) || !core::is_valid_utf8(topic)) return;
  auto body = core::parse_strict_json(core::proxy_request_body(user, conn, topic));
  if (body.problem != core::JsonProblem::none || !body.value.is_object()) std::abort();
  const auto& o = body.value.get_object();
  if (o.size() != 3 || o.at("user-id").as_string() != user || o.at("connection-id").as_string() != conn ||
      o.at("topic").as_string() != topic)
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_strict_json(text);
  check_reply(text);
  check_url(text);
  check_question(text);
  return 0;
}
