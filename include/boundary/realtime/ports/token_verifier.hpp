#pragma once
// Port: decides whether a bearer token is acceptable and whose it is.
// Guarantees of every adapter: pure with respect to `now` (no clock read inside), thread-safe
// for concurrent calls (the server calls it from every event loop), never logs the token.

#include <cstdint>
#include <string_view>

#include <boost/system/result.hpp>

#include "boundary/realtime/errors.hpp"
#include "boundary/realtime/identity.hpp"

namespace boundary::realtime {

class TokenVerifier {
 public:
  virtual ~TokenVerifier() = default;
  // `now_unix_seconds` is the time used for `exp` and `nbf`.
  virtual boost::system::result<Identity, AuthError> verify(std::string_view token,
                                                            std::int64_t now_unix_seconds) const = 0;
};

}  // namespace boundary::realtime
