#include "boundary/realtime/errors.hpp"

namespace boundary::realtime {

std::string_view to_string(AuthError e) noexcept {
  switch (e) {
    case AuthError::missing: return "missing token";
    case AuthError::malformed: return "malformed token";
    case AuthError::wrong_algorithm: return "algorithm not allowed for the configured key";
    case AuthError::bad_signature: return "bad signature";
    case AuthError::expired: return "token expired";
    case AuthError::not_yet_valid: return "token not yet valid";
    case AuthError::no_user_id: return "token has no user id";
    case AuthError::unknown_key: return "no key for the token's kid";
  }
  return "unknown";
}

std::string_view to_string(CommandErrorCode e) noexcept {
  switch (e) {
    case CommandErrorCode::bad_request: return "bad-request";
    case CommandErrorCode::invalid_topic: return "invalid-topic";
    case CommandErrorCode::forbidden: return "forbidden";
    case CommandErrorCode::rate_limited: return "rate-limited";
    case CommandErrorCode::too_many_subscriptions: return "too-many-subscriptions";
  }
  return "bad-request";
}

}  // namespace boundary::realtime
