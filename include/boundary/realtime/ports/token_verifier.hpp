#pragma once
// Port: decides whether a bearer token is acceptable and whose it is.
// Guarantees of every adapter: pure with respect to `now` (no clock read inside), thread-safe
// for concurrent calls (the server calls it from every event loop), never logs the token.

#include <cstdint>
#include <functional>
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

  // For adapters whose keys change at run time (a JWKS): after verify() refused `token` with
  // AuthError::unknown_key, a caller may ask to hear when the key fetch that the token caused, or
  // one already under way, has ended, and then verify once more. Returns false when waiting
  // cannot help (no fetch is coming, the token names no key) or too many callers wait already;
  // then `ready` is dropped. Otherwise `ready` is called exactly once, on any thread, within the
  // adapter's fetch timeout. Fixed-key adapters keep this default.
  virtual bool await_keys(std::string_view token, std::function<void()> ready) const {
    (void)token;
    (void)ready;
    return false;
  }
};

}  // namespace boundary::realtime
