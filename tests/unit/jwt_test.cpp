// JWT parsing, claim rules and the OpenSSL verifier. Asymmetric tokens are signed here with
// OpenSSL directly (test-only helper) from keys generated per run.

#include <atomic>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/jwt.hpp"
#include "shell/adapters/jwt_openssl.hpp"

namespace {

using namespace boundary::realtime;
using core::base64url_decode;
using core::base64url_encode;
using core::identity_from_claims;
using core::parse_jwt;
using shell::OpenSslJwtVerifier;
using shell::sign_hs256;

constexpr std::int64_t now = 1'700'000'000;
const std::string secret = "0123456789abcdef0123456789abcdef";  // exactly 32 bytes

// Readable outcomes for assertions: "ok" or the AuthError's text.
template <class T>
std::string why(const boost::system::result<T, AuthError>& r) {
  return r ? "ok" : std::string(to_string(r.error()));
}
std::string why(AuthError e) { return std::string(to_string(e)); }

boost::json::object claims(std::string_view json) { return boost::json::parse(json).as_object(); }

// The identity's user id, or the refusal reason (never dereferences an error).
std::string user_id_of(std::string_view json) {
  auto id = identity_from_claims(claims(json), now);
  return id ? id->user_id : "refused: " + why(id);
}

std::vector<std::string> roles_of(std::string_view json) {
  auto id = identity_from_claims(claims(json), now);
  return id ? id->roles.list() : std::vector<std::string>{"refused: " + why(id)};
}

std::string token_of(std::string_view header, std::string_view payload, std::string_view sig) {
  return base64url_encode(header) + "." + base64url_encode(payload) + "." + base64url_encode(sig);
}

// --- test-side signing (never in production code) ----------------------------------------

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

Pkey must(EVP_PKEY* key) {
  if (!key) throw std::runtime_error("test key generation failed");
  return Pkey(key);
}

// Generated once per run: RSA keygen is slow under sanitizers.
EVP_PKEY* rsa_key() {
  static Pkey k = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048}));
  return k.get();
}
EVP_PKEY* ec_key(const char* curve) {
  static Pkey p256 = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  static Pkey p384 = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"));
  static Pkey p521 = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-521"));
  const std::string c = curve;
  return c == "P-256" ? p256.get() : c == "P-384" ? p384.get() : p521.get();
}
EVP_PKEY* ed25519_key() {
  static Pkey k = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  return k.get();
}
EVP_PKEY* ed448_key() {
  static Pkey k = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED448"));
  return k.get();
}

std::string public_pem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
  if (!PEM_write_bio_PUBKEY(bio.get(), key)) throw std::runtime_error("PEM write failed");
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(len));
}

const EVP_MD* md_for(std::string_view alg) {
  if (alg == "EdDSA") return nullptr;
  if (alg.ends_with("256")) return EVP_sha256();
  if (alg.ends_with("384")) return EVP_sha384();
  return EVP_sha512();
}

std::string hmac_sign(std::string_view alg, std::string_view key, std::string_view input) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(md_for(alg), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

// OpenSSL's ECDSA output is DER; JOSE wants r||s, each left-padded to the curve's size.
std::string der_to_jose(const std::string& der, int scalar_bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig) throw std::runtime_error("bad DER signature");
  std::string out(2 * static_cast<std::size_t>(scalar_bytes), '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  BN_bn2binpad(ECDSA_SIG_get0_r(sig), o, scalar_bytes);
  BN_bn2binpad(ECDSA_SIG_get0_s(sig), o + scalar_bytes, scalar_bytes);
  ECDSA_SIG_free(sig);
  return out;
}

// Signs `input` with `alg`'s hash; ES signatures come out as OpenSSL's DER.
std::string openssl_sign(EVP_PKEY* key, std::string_view alg, std::string_view input,
                         bool pss = false) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_PKEY_CTX* pctx = nullptr;
  const EVP_MD* md = md_for(alg);
  if (EVP_DigestSignInit(ctx.get(), &pctx, md, nullptr, key) != 1)
    throw std::runtime_error("sign init failed");
  if (pss) {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md);
  }
  std::size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  EVP_DigestSign(ctx.get(), nullptr, &len, in, input.size());
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                     input.size()) != 1)
    throw std::runtime_error("sign failed");
  sig.resize(len);
  return sig;
}

int es_scalar_bytes(std::string_view alg) {
  return alg == "ES256" ? 32 : alg == "ES384" ? 48 : 66;
}

// A JOSE-correct signature for `alg` (PS* as PSS, ES* as raw r||s).
std::string jose_sign(EVP_PKEY* key, std::string_view alg, std::string_view input) {
  if (alg.starts_with("HS")) throw std::logic_error("use hmac_sign");
  std::string sig = openssl_sign(key, alg, input, alg.starts_with("PS"));
  return alg.starts_with("ES") ? der_to_jose(sig, es_scalar_bytes(alg)) : sig;
}

std::string header_for(std::string_view alg) {
  return R"({"alg":")" + std::string(alg) + R"(","typ":"JWT"})";
}

const std::string good_claims = R"({"sub":"42","roles":["admin"],"exp":1700003600})";

std::string signed_token(EVP_PKEY* key, std::string_view alg,
                         std::string_view payload = good_claims) {
  std::string input = base64url_encode(header_for(alg)) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(jose_sign(key, alg, input));
}

std::string hmac_token(std::string_view alg, std::string_view key,
                       std::string_view payload = good_claims) {
  std::string input = base64url_encode(header_for(alg)) + "." + base64url_encode(payload);
  return input + "." + base64url_encode(hmac_sign(alg, key, input));
}

// Replaces one byte of the decoded signature, so only the signature check can catch it.
std::string with_flipped_signature_byte(const std::string& token) {
  const auto dot = token.rfind('.');
  std::string sig = *base64url_decode(token.substr(dot + 1));
  sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x01);
  return token.substr(0, dot + 1) + base64url_encode(sig);
}

// Swaps in a different payload, keeping the original header and signature.
std::string with_payload(const std::string& token, std::string_view payload) {
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  return token.substr(0, dot1 + 1) + base64url_encode(payload) + token.substr(dot2);
}

// ==========================================================================================
// base64url

TEST(Base64Url, EncodesRfc4648VectorsWithoutPadding) {
  EXPECT_EQ(base64url_encode(""), "");
  EXPECT_EQ(base64url_encode("f"), "Zg");
  EXPECT_EQ(base64url_encode("fo"), "Zm8");
  EXPECT_EQ(base64url_encode("foo"), "Zm9v");
  EXPECT_EQ(base64url_encode("foob"), "Zm9vYg");
  EXPECT_EQ(base64url_encode("fooba"), "Zm9vYmE");
  EXPECT_EQ(base64url_encode("foobar"), "Zm9vYmFy");
}

TEST(Base64Url, UsesUrlSafeAlphabet) {
  EXPECT_EQ(base64url_encode("\xfb\xff\xbf"), "-_-_");
  EXPECT_EQ(base64url_decode("-_-_"), std::string("\xfb\xff\xbf"));
}

TEST(Base64Url, DecodeRoundTripsEveryByteValueAtEveryLength) {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (std::size_t n = 0; n <= all.size(); n += 1) {
    const auto part = all.substr(0, n);
    EXPECT_EQ(base64url_decode(base64url_encode(part)), part) << "length " << n;
  }
}

TEST(Base64Url, DecodeRejectsPadding) {
  EXPECT_EQ(base64url_decode("Zg=="), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm8="), std::nullopt);
  EXPECT_EQ(base64url_decode("===="), std::nullopt);
}

TEST(Base64Url, DecodeRejectsStandardAlphabetAndStrayCharacters) {
  EXPECT_EQ(base64url_decode("+/+/"), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm9v YmFy"), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm9v\n"), std::nullopt);
  EXPECT_EQ(base64url_decode(std::string_view("Zm\0v", 4)), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm9\xc3"), std::nullopt);
}

TEST(Base64Url, DecodeRejectsImpossibleLengths) {
  EXPECT_EQ(base64url_decode("Z"), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm9vY"), std::nullopt);
  EXPECT_NE(base64url_decode("Zm9vYg"), std::nullopt);
}

TEST(Base64Url, DecodeRejectsNonZeroTrailingBits) {
  // "Zg" is canonical for "f"; "Zh" would decode to the same byte if the leftover bits were
  // ignored, making tokens malleable.
  EXPECT_EQ(base64url_decode("Zg"), std::string("f"));
  EXPECT_EQ(base64url_decode("Zh"), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm9"), std::nullopt);
  EXPECT_EQ(base64url_decode("Zm8"), std::string("fo"));
}

// ==========================================================================================
// parse_jwt

TEST(ParseJwt, SplitsHeaderClaimsSignatureAndSigningInput) {
  const std::string token = token_of(R"({"alg":"HS256","typ":"JWT"})", R"({"sub":"7"})", "sig");
  auto parsed = parse_jwt(token);
  ASSERT_TRUE(parsed) << why(parsed);
  EXPECT_EQ(parsed->alg, "HS256");
  EXPECT_EQ(parsed->signature, "sig");
  EXPECT_EQ(parsed->claims.at("sub").as_string(), "7");
  EXPECT_EQ(parsed->signing_input, token.substr(0, token.rfind('.')));
}

TEST(ParseJwt, EmptyTokenIsMissing) {
  EXPECT_EQ(why(parse_jwt("")), why(AuthError::missing));
}

TEST(ParseJwt, RejectsWrongNumberOfParts) {
  const auto h = base64url_encode(R"({"alg":"HS256"})");
  const auto p = base64url_encode(R"({"sub":"1"})");
  EXPECT_EQ(why(parse_jwt(h)), why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(h + "." + p)), why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(h + "." + p + ".c2ln.c2ln")), why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(h + "." + p + ".c2ln")), "ok");
}

// Builds a structurally valid token of exactly `size` bytes by padding a claim.
std::string token_of_size(std::size_t size) {
  // base64url grows 4 characters per 3 bytes; start just below the target.
  const std::size_t start = size * 3 / 4 > 64 ? size * 3 / 4 - 64 : 0;
  for (std::size_t pad = start; pad < size; ++pad) {
    for (int spaces = 0; spaces < 3; ++spaces) {
      std::string header = "{" + std::string(spaces, ' ') + R"("alg":"HS256"})";
      std::string t = token_of(header, R"({"sub":"1","p":")" + std::string(pad, 'x') + "\"}", "");
      if (t.size() == size) return t;
    }
  }
  throw std::logic_error("no token of that size");
}

TEST(ParseJwt, AcceptsMaxSizeAndRefusesOneByteMore) {
  EXPECT_EQ(why(parse_jwt(token_of_size(core::max_token_bytes))), "ok");
  EXPECT_EQ(why(parse_jwt(token_of_size(core::max_token_bytes + 1))), why(AuthError::malformed));
}

TEST(ParseJwt, RejectsHeaderThatIsNotAJsonObjectWithStringAlg) {
  const std::string payload = R"({"sub":"1"})";
  for (const char* header : {R"(["alg","HS256"])", "not json", R"({"alg":"HS256")",
                             R"({"typ":"JWT"})", R"({"alg":256})", R"({"alg":null})", ""}) {
    EXPECT_EQ(why(parse_jwt(token_of(header, payload, "s"))), why(AuthError::malformed))
        << header;
  }
}

TEST(ParseJwt, RejectsTypOtherThanJwtButIgnoresItsCase) {
  const std::string payload = R"({"sub":"1"})";
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","typ":"jwt"})", payload, "s"))), "ok");
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","typ":"Jwt"})", payload, "s"))), "ok");
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","typ":"JWS"})", payload, "s"))),
            why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","typ":1})", payload, "s"))),
            why(AuthError::malformed));
}

TEST(ParseJwt, RejectsCritHeader) {
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","crit":["exp"]})", R"({"sub":"1"})", "s"))),
            why(AuthError::malformed));
}

TEST(ParseJwt, RejectsCritEvenWhenEmptyOrNamingAnUnknownExtension) {
  for (const char* header : {R"({"alg":"HS256","crit":[]})", R"({"alg":"HS256","crit":["b64"],"b64":false})",
                             R"({"alg":"HS256","crit":["x-unknown"],"x-unknown":1})"})
    EXPECT_EQ(why(parse_jwt(token_of(header, R"({"sub":"1"})", "s"))), why(AuthError::malformed)) << header;
}

TEST(ParseJwt, IgnoresKidJkuAndX5uHeaders) {
  // They name keys; the server's key is fixed by its configuration and nothing is fetched.
  auto parsed = parse_jwt(token_of(R"({"alg":"HS256","kid":"../../dev/null","jku":"http://127.0.0.1:1/k",)"
                                   R"("x5u":"http://127.0.0.1:1/c"})",
                                   R"({"sub":"1"})", "s"));
  ASSERT_EQ(why(parsed), "ok");
  EXPECT_EQ(parsed->alg, "HS256");
}

TEST(ParseJwt, RejectsAKeyTwiceInHeaderOrPayload) {
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"none","alg":"HS256"})", R"({"sub":"1"})", "s"))),
            why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256","alg":"HS256"})", R"({"sub":"1"})", "s"))),
            why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256"})", R"({"sub":"1","sub":"admin"})", "s"))),
            why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256"})", R"({"sub":"1","info":{"a":1,"a":2}})", "s"))),
            why(AuthError::malformed));
}

TEST(HmacVerifier, RefusesAKeyTwiceEvenWhenSigned) {
  auto verifier = OpenSslJwtVerifier::from_secret(secret);
  const std::string good = hmac_token("HS256", secret, R"({"sub":"1"})");
  EXPECT_EQ(why(verifier->verify(good, now)), "ok");
  EXPECT_EQ(why(verifier->verify(hmac_token("HS256", secret, R"({"sub":"1","sub":"2"})"), now)),
            why(AuthError::malformed));
}

TEST(ParseJwt, RejectsPayloadThatIsNotAJsonObject) {
  for (const char* payload : {R"(["sub"])", R"("sub")", "42", "{", "", R"({"sub":"1",})"}) {
    EXPECT_EQ(why(parse_jwt(token_of(R"({"alg":"HS256"})", payload, "s"))),
              why(AuthError::malformed))
        << payload;
  }
}

TEST(ParseJwt, RejectsPaddedOrInvalidSegments) {
  const std::string good = token_of(R"({"alg":"HS256"})", R"({"sub":"1"})", "s");
  EXPECT_EQ(why(parse_jwt(good)), "ok");
  EXPECT_EQ(why(parse_jwt(good + "==")), why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt(good + "*")), why(AuthError::malformed));
  EXPECT_EQ(why(parse_jwt("*" + good)), why(AuthError::malformed));
}

TEST(ParseJwt, AcceptsEmptySignatureSoTheVerifierCanRefuseItByAlg) {
  auto parsed = parse_jwt(token_of(R"({"alg":"none"})", R"({"sub":"1"})", ""));
  ASSERT_TRUE(parsed) << why(parsed);
  EXPECT_EQ(parsed->alg, "none");
  EXPECT_TRUE(parsed->signature.empty());
}

// ==========================================================================================
// identity_from_claims

TEST(JwtClaims, UserIdClaimWinsOverSub) {
  auto id = identity_from_claims(claims(R"({"user-id":"u1","sub":"s1"})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->user_id, "u1");
}

TEST(JwtClaims, SubIsUsedWithoutUserId) {
  auto id = identity_from_claims(claims(R"({"sub":"s1"})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->user_id, "s1");
}

TEST(JwtClaims, IntegerUserIdsBecomeDecimalStrings) {
  EXPECT_EQ(user_id_of(R"({"sub":42})"), "42");
  EXPECT_EQ(user_id_of(R"({"user-id":-7,"sub":"s"})"), "-7");
  EXPECT_EQ(user_id_of(R"({"sub":18446744073709551615})"), "18446744073709551615");
}

TEST(JwtClaims, UnusableUserIdsAreNoUserId) {
  for (const char* c : {R"({})", R"({"sub":""})", R"({"sub":4.5})", R"({"sub":true})",
                        R"({"sub":null})", R"({"sub":["42"]})", R"({"sub":{"id":1}})"}) {
    EXPECT_EQ(why(identity_from_claims(claims(c), now)), why(AuthError::no_user_id)) << c;
  }
}

TEST(JwtClaims, PresentButUnusableUserIdDoesNotFallBackToSub) {
  EXPECT_EQ(why(identity_from_claims(claims(R"({"user-id":"","sub":"42"})"), now)),
            why(AuthError::no_user_id));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"user-id":1.5,"sub":"42"})"), now)),
            why(AuthError::no_user_id));
}

TEST(JwtClaims, RolesArrayWinsOverRole) {
  auto id = identity_from_claims(claims(R"({"sub":"1","roles":["a","b"],"role":"c"})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->roles, (std::vector<std::string>{"a", "b"}));
}

TEST(JwtClaims, SingleRoleStringBecomesOneRole) {
  auto id = identity_from_claims(claims(R"({"sub":"1","role":"admin"})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->roles, (std::vector<std::string>{"admin"}));
  EXPECT_TRUE(id->has_role("admin"));
}

TEST(JwtClaims, NoRoleClaimsMeansNoRolesAndEmptyNamesAreDropped) {
  EXPECT_EQ(roles_of(R"({"sub":"1"})"), std::vector<std::string>{});
  EXPECT_EQ(roles_of(R"({"sub":"1","role":""})"), std::vector<std::string>{});
  EXPECT_EQ(roles_of(R"({"sub":"1","roles":["","x"]})"), (std::vector<std::string>{"x"}));
}

TEST(JwtClaims, MistypedRolesAreMalformed) {
  for (const char* c : {R"({"sub":"1","roles":["a",1]})", R"({"sub":"1","roles":"a"})",
                        R"({"sub":"1","roles":null})", R"({"sub":"1","role":["a"]})",
                        R"({"sub":"1","role":7})"}) {
    EXPECT_EQ(why(identity_from_claims(claims(c), now)), why(AuthError::malformed)) << c;
  }
}

TEST(JwtClaims, EmailPermissionsExpAndIatAreKept) {
  auto id = identity_from_claims(
      claims(R"({"sub":"1","email":"a@b.c","permissions":["read","write"],)"
             R"("exp":1700000100,"iat":1699999000})"),
      now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->email(), "a@b.c");
  EXPECT_EQ(id->permissions(), (std::vector<std::string>{"read", "write"}));
  EXPECT_EQ(id->exp, 1700000100);
  EXPECT_EQ(id->iat, 1699999000);
}

TEST(JwtClaims, EitherProfileClaimAloneIsKept) {
  auto only_email = identity_from_claims(claims(R"({"sub":"1","email":"a@b.c"})"), now);
  ASSERT_TRUE(only_email) << why(only_email);
  EXPECT_EQ(only_email->email(), "a@b.c");
  EXPECT_TRUE(only_email->permissions().empty());
  auto only_permissions = identity_from_claims(claims(R"({"sub":"1","permissions":["x"]})"), now);
  ASSERT_TRUE(only_permissions) << why(only_permissions);
  EXPECT_FALSE(only_permissions->email());
  EXPECT_EQ(only_permissions->permissions(), (std::vector<std::string>{"x"}));
}

TEST(JwtClaims, OptionalClaimsAbsentStayEmpty) {
  auto id = identity_from_claims(claims(R"({"sub":"1"})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_FALSE(id->email());
  EXPECT_FALSE(id->profile);  // nothing allocated for a token without them
  EXPECT_FALSE(id->exp);
  EXPECT_FALSE(id->iat);
  EXPECT_TRUE(id->permissions().empty());
}

TEST(JwtClaims, MistypedEmailOrPermissionsAreMalformed) {
  for (const char* c : {R"({"sub":"1","email":1})", R"({"sub":"1","email":null})",
                        R"({"sub":"1","permissions":"read"})",
                        R"({"sub":"1","permissions":["read",false]})"}) {
    EXPECT_EQ(why(identity_from_claims(claims(c), now)), why(AuthError::malformed)) << c;
  }
}

TEST(JwtClaims, NonNumericTimesAreMalformed) {
  for (const char* c : {R"({"sub":"1","exp":"1800000000"})", R"({"sub":"1","iat":null})",
                        R"({"sub":"1","nbf":true})", R"({"sub":"1","exp":[1]})"}) {
    EXPECT_EQ(why(identity_from_claims(claims(c), now)), why(AuthError::malformed)) << c;
  }
}

TEST(JwtClaims, ExpAtOrBeforeNowIsExpired) {
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1700000000})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1699999999.9})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":-1})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1700000001})"), now)), "ok");
}

TEST(JwtClaims, FractionalExpJustAfterNowIsStillValid) {
  auto id = identity_from_claims(claims(R"({"sub":"1","exp":1700000000.5})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_GT(*id->exp, now);
}

TEST(JwtClaims, HugeExpSaturatesInsteadOfOverflowing) {
  auto id = identity_from_claims(claims(R"({"sub":"1","exp":1e300})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->exp, std::numeric_limits<std::int64_t>::max());
  auto big = identity_from_claims(claims(R"({"sub":"1","exp":18446744073709551615})"), now);
  ASSERT_TRUE(big) << why(big);
  EXPECT_EQ(big->exp, std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":-1e300})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1e400})"), now)), "ok");
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":-1e400})"), now)),
            why(AuthError::expired));
}

TEST(JwtClaims, TimeThatParsesAsNotANumberIsMalformed) {
  // Boost.JSON 1.81 reads 0e320 as 0 * inf = NaN; found by fuzz_jwt.
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":0e320})"), now)),
            why(AuthError::malformed));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","nbf":0e320})"), now)),
            why(AuthError::malformed));
}

TEST(JwtClaims, NbfAfterNowIsNotYetValid) {
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","nbf":1700000001})"), now)),
            why(AuthError::not_yet_valid));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","nbf":1700000000.5})"), now)),
            why(AuthError::not_yet_valid));
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","nbf":1700000000})"), now)), "ok");
}

TEST(JwtClaims, TypesAreCheckedBeforeTimesAndTimesBeforeUserId) {
  // Types before exp.
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1,"email":2})"), now)),
            why(AuthError::malformed));
  // exp before nbf.
  EXPECT_EQ(why(identity_from_claims(claims(R"({"sub":"1","exp":1,"nbf":1800000000})"), now)),
            why(AuthError::expired));
  // nbf before user id.
  EXPECT_EQ(why(identity_from_claims(claims(R"({"nbf":1800000000})"), now)),
            why(AuthError::not_yet_valid));
  // exp before user id.
  EXPECT_EQ(why(identity_from_claims(claims(R"({"exp":1})"), now)), why(AuthError::expired));
}

// ==========================================================================================
// OpenSslJwtVerifier: HMAC

TEST(HmacVerifier, RefusesSecretShorterThan32BytesWithClearMessage) {
  try {
    OpenSslJwtVerifier::from_secret(std::string(31, 'k'));
    FAIL() << "a 31-byte secret was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "JWT secret must be at least 32 bytes (got 31)");
  }
  EXPECT_THROW(OpenSslJwtVerifier::from_secret(""), std::invalid_argument);
  EXPECT_NO_THROW(OpenSslJwtVerifier::from_secret(secret));
}

TEST(HmacVerifier, SignHs256MatchesKnownAnswer) {
  // The jwt.io example token (RFC 7515-style HS256 with secret "your-256-bit-secret").
  EXPECT_EQ(sign_hs256("your-256-bit-secret",
                       R"({"sub":"1234567890","name":"John Doe","iat":1516239022})"),
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
            "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c");
}

TEST(HmacVerifier, AcceptsTokenFromSignHs256) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  auto id = v->verify(sign_hs256(secret, R"({"user-id":"42","role":"admin","exp":1700003600})"), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->user_id, "42");
  EXPECT_EQ(id->roles, (std::vector<std::string>{"admin"}));
  EXPECT_EQ(id->exp, 1700003600);
}

TEST(HmacVerifier, AcceptsHs384AndHs512) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  for (const char* alg : {"HS384", "HS512"}) {
    auto id = v->verify(hmac_token(alg, secret), now);
    ASSERT_TRUE(id) << alg << ": " << why(id);
    EXPECT_EQ(id->user_id, "42");
  }
}

TEST(HmacVerifier, RefusesTokenSignedWithAnotherSecret) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  EXPECT_EQ(why(v->verify(sign_hs256(std::string(32, 'z'), good_claims), now)),
            why(AuthError::bad_signature));
}

TEST(HmacVerifier, RefusesTamperedPayloadAndSignature) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  const std::string token = sign_hs256(secret, good_claims);
  ASSERT_EQ(why(v->verify(token, now)), "ok");
  EXPECT_EQ(why(v->verify(with_payload(token, R"({"sub":"1","roles":["admin"]})"), now)),
            why(AuthError::bad_signature));
  EXPECT_EQ(why(v->verify(with_flipped_signature_byte(token), now)),
            why(AuthError::bad_signature));
  // A truncated signature must not compare equal on a prefix.
  const std::string hs = hmac_sign("HS256", secret, token.substr(0, token.rfind('.')));
  EXPECT_EQ(why(v->verify(token.substr(0, token.rfind('.') + 1) + base64url_encode(hs.substr(0, 16)),
                          now)),
            why(AuthError::bad_signature));
}

TEST(HmacVerifier, RefusesNoneInAnySpelling) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  for (const char* alg : {"none", "None", "NONE"}) {
    const std::string header = R"({"alg":")" + std::string(alg) + R"("})";
    EXPECT_EQ(why(v->verify(token_of(header, good_claims, ""), now)), why(AuthError::wrong_algorithm))
        << alg;
  }
}

TEST(HmacVerifier, RefusesAsymmetricAlgs) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  EXPECT_EQ(why(v->verify(signed_token(rsa_key(), "RS256"), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(signed_token(ec_key("P-256"), "ES256"), now)),
            why(AuthError::wrong_algorithm));
  // Lower-case alg is a different (unknown) alg: JOSE names are case-sensitive.
  EXPECT_EQ(why(v->verify(token_of(R"({"alg":"hs256"})", good_claims, "x"), now)),
            why(AuthError::wrong_algorithm));
}

TEST(HmacVerifier, ReportsEachClaimErrorOnlyAfterTheSignatureHolds) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  EXPECT_EQ(why(v->verify("", now)), why(AuthError::missing));
  EXPECT_EQ(why(v->verify("a.b", now)), why(AuthError::malformed));
  EXPECT_EQ(why(v->verify(sign_hs256(secret, R"({"sub":"1","exp":1})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(v->verify(sign_hs256(secret, R"({"sub":"1","nbf":1800000000})"), now)),
            why(AuthError::not_yet_valid));
  EXPECT_EQ(why(v->verify(sign_hs256(secret, R"({"roles":["a"]})"), now)),
            why(AuthError::no_user_id));
  EXPECT_EQ(why(v->verify(sign_hs256(secret, R"({"sub":"1","exp":"soon"})"), now)),
            why(AuthError::malformed));
  // A forged expired token is a bad signature, not "expired": claims are untrusted until then.
  EXPECT_EQ(why(v->verify(sign_hs256(std::string(32, 'z'), R"({"sub":"1","exp":1})"), now)),
            why(AuthError::bad_signature));
}

TEST(HmacVerifier, VerifiesConcurrentlyFromManyThreads) {
  auto v = OpenSslJwtVerifier::from_secret(secret);
  const std::string good = sign_hs256(secret, good_claims);
  const std::string bad = with_flipped_signature_byte(good);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        if (!v->verify(good, now)) ++wrong;
        if (v->verify(bad, now)) ++wrong;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

// ==========================================================================================
// OpenSslJwtVerifier: public keys

struct AsymmetricCase {
  const char* name;
  const char* alg;
  EVP_PKEY* (*key)();
};

class PublicKeyVerifier : public ::testing::TestWithParam<AsymmetricCase> {};

TEST_P(PublicKeyVerifier, AcceptsTokenSignedWithMatchingPrivateKey) {
  const auto& c = GetParam();
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(c.key()));
  auto id = v->verify(signed_token(c.key(), c.alg), now);
  ASSERT_TRUE(id) << why(id);
  EXPECT_EQ(id->user_id, "42");
  EXPECT_EQ(id->roles, (std::vector<std::string>{"admin"}));
}

TEST_P(PublicKeyVerifier, RefusesTamperedPayload) {
  const auto& c = GetParam();
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(c.key()));
  const std::string token = signed_token(c.key(), c.alg);
  EXPECT_EQ(why(v->verify(with_payload(token, R"({"sub":"43","roles":["admin"]})"), now)),
            why(AuthError::bad_signature));
}

TEST_P(PublicKeyVerifier, RefusesTamperedSignature) {
  const auto& c = GetParam();
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(c.key()));
  const std::string token = signed_token(c.key(), c.alg);
  EXPECT_EQ(why(v->verify(with_flipped_signature_byte(token), now)), why(AuthError::bad_signature));
}

TEST_P(PublicKeyVerifier, RefusesNoneAndHmacConfusion) {
  const auto& c = GetParam();
  const std::string pem = public_pem(c.key());
  auto v = OpenSslJwtVerifier::from_public_key_pem(pem);
  // The classic attack: HS256 keyed with the public key text the server is known to hold.
  EXPECT_EQ(why(v->verify(hmac_token("HS256", pem), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(token_of(R"({"alg":"none"})", good_claims, ""), now)),
            why(AuthError::wrong_algorithm));
}

EVP_PKEY* p256() { return ec_key("P-256"); }
EVP_PKEY* p384() { return ec_key("P-384"); }
EVP_PKEY* p521() { return ec_key("P-521"); }

INSTANTIATE_TEST_SUITE_P(
    EveryAsymmetricAlg, PublicKeyVerifier,
    ::testing::Values(AsymmetricCase{"RS256", "RS256", rsa_key}, AsymmetricCase{"RS384", "RS384", rsa_key},
                      AsymmetricCase{"RS512", "RS512", rsa_key}, AsymmetricCase{"PS256", "PS256", rsa_key},
                      AsymmetricCase{"PS384", "PS384", rsa_key}, AsymmetricCase{"PS512", "PS512", rsa_key},
                      AsymmetricCase{"ES256", "ES256", p256}, AsymmetricCase{"ES384", "ES384", p384},
                      AsymmetricCase{"ES512", "ES512", p521},
                      AsymmetricCase{"EdDSA_Ed25519", "EdDSA", ed25519_key},
                      AsymmetricCase{"EdDSA_Ed448", "EdDSA", ed448_key}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(PublicKeyVerifierKeys, EcKeyAcceptsOnlyItsCurvesAlg) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(p256()));
  EXPECT_EQ(why(v->verify(signed_token(p256(), "ES256"), now)), "ok");
  EXPECT_EQ(why(v->verify(signed_token(p384(), "ES384"), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(signed_token(p521(), "ES512"), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(signed_token(rsa_key(), "RS256"), now)), why(AuthError::wrong_algorithm));
}

TEST(PublicKeyVerifierKeys, RsaKeyRefusesEcAndEdDsaAlgs) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(rsa_key()));
  EXPECT_EQ(why(v->verify(signed_token(p256(), "ES256"), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(signed_token(ed25519_key(), "EdDSA"), now)),
            why(AuthError::wrong_algorithm));
}

TEST(PublicKeyVerifierKeys, EdKeyRefusesOtherAlgs) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(ed25519_key()));
  EXPECT_EQ(why(v->verify(signed_token(rsa_key(), "PS256"), now)), why(AuthError::wrong_algorithm));
  EXPECT_EQ(why(v->verify(signed_token(p256(), "ES256"), now)), why(AuthError::wrong_algorithm));
}

TEST(PublicKeyVerifierKeys, RefusesTokenSignedByAnotherKeyOfTheSameType) {
  Pkey other = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(ed25519_key()));
  EXPECT_EQ(why(v->verify(signed_token(other.get(), "EdDSA"), now)), why(AuthError::bad_signature));
}

TEST(PublicKeyVerifierKeys, RefusesDerEncodedEcdsaSignature) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(p256()));
  const std::string input = base64url_encode(header_for("ES256")) + "." + base64url_encode(good_claims);
  const std::string der = openssl_sign(p256(), "ES256", input);
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(der), now)), why(AuthError::bad_signature));
  const std::string raw = der_to_jose(der, 32);
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(raw), now)), "ok");
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(raw.substr(1)), now)),
            why(AuthError::bad_signature));
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(raw + '\0'), now)),
            why(AuthError::bad_signature));
}

// The classic confusion: an HMAC token keyed with the public key's PEM text. The key pins its
// family, so HS* never reaches an HMAC with the PEM as secret.
TEST(PublicKeyVerifierKeys, HmacTokenKeyedWithThePublicKeyPemIsRefused) {
  for (EVP_PKEY* key : {rsa_key(), p256(), ed25519_key()}) {
    const std::string pem = public_pem(key);
    auto v = OpenSslJwtVerifier::from_public_key_pem(pem);
    for (const char* alg : {"HS256", "HS384", "HS512"}) {
      EXPECT_EQ(why(v->verify(hmac_token(alg, pem), now)), why(AuthError::wrong_algorithm)) << alg;
      EXPECT_EQ(why(v->verify(hmac_token(alg, pem.substr(0, pem.size() - 1)), now)),
                why(AuthError::wrong_algorithm)) << alg;
    }
  }
}

// ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s). RFC 7518 does not ask
// for low S, and common signers (OpenSSL, Python cryptography) emit either half, so both are
// accepted; nothing here identifies a token by its signature bytes, so the twin gains nothing.
TEST(PublicKeyVerifierKeys, HighSTwinOfAnEcdsaSignatureIsAccepted) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(p256()));
  const std::string input = base64url_encode(header_for("ES256")) + "." + base64url_encode(good_claims);
  const std::string raw = der_to_jose(openssl_sign(p256(), "ES256", input), 32);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> s(BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr), BN_free);
  std::unique_ptr<BIGNUM, decltype(&BN_free)> n(nullptr, BN_free);
  BIGNUM* order = nullptr;
  ASSERT_TRUE(BN_hex2bn(&order, "FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"));
  n.reset(order);
  ASSERT_TRUE(BN_sub(s.get(), n.get(), s.get()));
  std::string twin = raw.substr(0, 32) + std::string(32, '\0');
  ASSERT_EQ(BN_bn2binpad(s.get(), reinterpret_cast<unsigned char*>(twin.data()) + 32, 32), 32);
  ASSERT_NE(twin, raw);
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(raw), now)), "ok");
  EXPECT_EQ(why(v->verify(input + "." + base64url_encode(twin), now)), "ok");
}

TEST(PublicKeyVerifierKeys, RsaPaddingMustMatchTheAlg) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(rsa_key()));
  // PKCS#1 v1.5 signature presented as PS256, and PSS presented as RS256.
  for (auto [claimed, pss] : {std::pair{"PS256", false}, std::pair{"RS256", true}}) {
    const std::string input =
        base64url_encode(header_for(claimed)) + "." + base64url_encode(good_claims);
    const std::string sig = openssl_sign(rsa_key(), claimed, input, pss);
    EXPECT_EQ(why(v->verify(input + "." + base64url_encode(sig), now)),
              why(AuthError::bad_signature))
        << claimed;
  }
}

TEST(PublicKeyVerifierKeys, ReportsClaimErrorsAfterTheSignature) {
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(p384()));
  EXPECT_EQ(why(v->verify(signed_token(p384(), "ES384", R"({"sub":"1","exp":5})"), now)),
            why(AuthError::expired));
  EXPECT_EQ(why(v->verify(signed_token(p384(), "ES384", R"({"email":"x@y"})"), now)),
            why(AuthError::no_user_id));
}

TEST(PublicKeyVerifierKeys, PssSaltMustBeTheDigestLength) {
  // RFC 7518 §3.5 fixes the salt at the hash size; other salts are different signatures.
  auto v = OpenSslJwtVerifier::from_public_key_pem(public_pem(rsa_key()));
  const std::string input = base64url_encode(header_for("PS256")) + "." + base64url_encode(good_claims);
  for (int salt : {0, 20, 64}) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_PKEY_CTX* pctx = nullptr;
    ASSERT_EQ(EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha256(), nullptr, rsa_key()), 1);
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, salt);
    std::string sig(256, '\0');
    std::size_t len = sig.size();
    ASSERT_EQ(EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()),
              1);
    EXPECT_EQ(why(v->verify(input + "." + base64url_encode(sig.substr(0, len)), now)),
              why(AuthError::bad_signature))
        << "salt " << salt;
  }
}

void expect_pem_refused(const std::string& pem, std::string_view message_part) {
  try {
    OpenSslJwtVerifier::from_public_key_pem(pem);
    ADD_FAILURE() << "accepted a key it should refuse: " << message_part;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(message_part), std::string::npos) << e.what();
  }
}

TEST(PublicKeyVerifierKeys, RefusesUnreadableOrUnsupportedKeys) {
  expect_pem_refused("", "BEGIN PUBLIC KEY");
  expect_pem_refused("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n",
                     "BEGIN PUBLIC KEY");
  Pkey x25519 = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  expect_pem_refused(public_pem(x25519.get()), "unsupported key type");
  Pkey k1 = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "secp256k1"));
  expect_pem_refused(public_pem(k1.get()), "P-256, P-384 or P-521");
  Pkey small = must(EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{1024}));
  expect_pem_refused(public_pem(small.get()), "at least 2048 bits (got 1024)");
}

}  // namespace
