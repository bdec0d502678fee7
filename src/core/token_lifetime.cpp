#include "core/token_lifetime.hpp"

#include <algorithm>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/envelope.hpp"

namespace boundary::realtime::core {
namespace json = boost::json;

RefreshDecision decide_refresh(const Identity& current, boost::system::result<Identity, AuthError> verified,
                               const json::value& ref) {
  auto refuse = [&ref](std::string why) {
    return Refusal{CommandErrorCode::forbidden, reply_error(CommandErrorCode::forbidden, why, ref)};
  };
  // A token that fails verification is `forbidden` rather than `bad-request`: whatever the
  // reason (signature, expiry, shape), the client may not have the connection extended.
  if (!verified) return refuse("token refused: " + std::string(to_string(verified.error())));
  Identity next = std::move(*verified);
  if (next.user_id != current.user_id) return refuse("token is for another user");
  if (const auto& app_data = current.app_data()) {
    auto profile = next.profile ? std::make_shared<ProfileClaims>(*next.profile) : std::make_shared<ProfileClaims>();
    profile->app_data = app_data;
    next.profile = std::move(profile);
  }
  return next;
}

std::string reply_refreshed(const std::optional<std::int64_t>& exp, const json::value& ref) {
  json::object reply{{"type", "refreshed"}, {"expires-at", nullptr}};
  if (exp) {
    // A time_point counts nanoseconds up to year 2262; a later exp (the verifier saturates huge
    // values) is reported as that last representable second rather than overflowing.
    constexpr std::int64_t max_seconds =
        std::chrono::duration_cast<std::chrono::seconds>(SystemTime::max().time_since_epoch()).count();
    const std::int64_t s = std::min(*exp, max_seconds);
    reply["expires-at"] = format_timestamp(SystemTime(std::chrono::seconds(s)));
  }
  if (!ref.is_null()) reply["ref"] = ref;
  return json::serialize(reply);
}

}  // namespace boundary::realtime::core
