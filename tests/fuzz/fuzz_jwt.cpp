// libFuzzer target for the JWT path an unauthenticated client controls: the token string.
// Besides "never crash", it checks two invariants that would otherwise only show up as silent
// auth bugs: base64url decoding is canonical (decode(x) == y implies encode(y) == x), and a
// token we signed ourselves never fails on alg or signature, whatever its claims.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json/parse.hpp>

#include "boundary/realtime/jwt_verifier.hpp"
#include "core/jwt.hpp"

namespace {

using namespace boundary::realtime;

constexpr std::int64_t now = 1'700'000'000;
const std::string secret(32, 'k');

void check(bool invariant) {
  if (!invariant) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  static const auto verifier = make_hmac_verifier(secret);

  if (auto parsed = core::parse_jwt(input)) (void)core::identity_from_claims(parsed->claims, now);

  if (auto decoded = core::base64url_decode(input)) check(core::base64url_encode(*decoded) == input);

  // The claim rules, reached without needing valid base64 around the JSON.
  boost::system::error_code ec;
  if (auto v = boost::json::parse(input, ec); !ec && v.is_object())
    (void)core::identity_from_claims(v.get_object(), now);

  (void)verifier->verify(input, now);

  if (auto r = verifier->verify(sign_hs256(secret, input), now); !r)
    check(r.error() != AuthError::bad_signature && r.error() != AuthError::wrong_algorithm);
  return 0;
}
