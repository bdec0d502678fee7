// The JWKS parser (core/jwks.*), the refresh decision (core/jwks_refresh.*) and OpenSSL's view of
// parsed keys (OpenSslJwtVerifier::from_jwk). Interop with a real issuer (Node's jose) is
// tests/integration/test_jwks.py.

#include <gtest/gtest.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include "core/jwks.hpp"
#include "core/jwks_refresh.hpp"
#include "core/jwt.hpp"
#include "shell/adapters/jwt_jwks.hpp"
#include "shell/adapters/jwt_openssl.hpp"

namespace {

using namespace boundary::realtime;
using namespace boundary::realtime::core;
namespace json = boost::json;
using namespace std::chrono_literals;

// RFC 7517 Appendix A.1 (RSA 2048, P-256) and RFC 8037 Appendix A.2 (Ed25519): real keys, which
// OpenSSL's public key checks accept.
constexpr const char* rsa_n =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
    "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5"
    "hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
constexpr const char* p256_x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4";
constexpr const char* p256_y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM";
constexpr const char* ed25519_x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

std::string b64(std::size_t bytes, char fill = '\x01') { return base64url_encode(std::string(bytes, fill)); }

json::object rsa(std::string kid) { return {{"kty", "RSA"}, {"kid", kid}, {"n", rsa_n}, {"e", "AQAB"}}; }
json::object p256(std::string kid) { return {{"kty", "EC"}, {"kid", kid}, {"crv", "P-256"}, {"x", p256_x}, {"y", p256_y}}; }
json::object ed25519(std::string kid) { return {{"kty", "OKP"}, {"kid", kid}, {"crv", "Ed25519"}, {"x", ed25519_x}}; }

std::string doc(std::initializer_list<json::value> keys) {
  json::array a;
  for (const auto& k : keys) a.push_back(k);
  json::object o;
  o["keys"] = std::move(a);
  return json::serialize(o);
}

JwksParse parsed(const std::string& document) {
  auto r = parse_jwks(document);
  EXPECT_TRUE(r) << document;
  return r ? *r : JwksParse{};
}

std::vector<std::string> kids(const JwksParse& p) {
  std::vector<std::string> out;
  for (const auto& k : p.keys) out.push_back(k.kid);
  return out;
}

TEST(JwksParse, TakesRsaEcAndOkpKeysWithTheAlgsTheirTypeAllows) {
  auto p = parsed(doc({rsa("r"), p256("e"), ed25519("d")}));
  ASSERT_EQ(kids(p), (std::vector<std::string>{"r", "e", "d"}));
  EXPECT_TRUE(p.skipped.empty());
  EXPECT_EQ(p.keys[0].type, JwkType::rsa);
  EXPECT_EQ(p.keys[0].algs, (std::vector<std::string>{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}));
  EXPECT_EQ(p.keys[0].e, std::string("\x01\x00\x01", 3));
  EXPECT_EQ(p.keys[1].algs, std::vector<std::string>{"ES256"});
  EXPECT_EQ(p.keys[1].x.size(), 32u);
  EXPECT_EQ(p.keys[2].algs, std::vector<std::string>{"EdDSA"});
}

TEST(JwksParse, AlgNarrowsTheKeyAndAnAlgThatDoesNotFitSkipsIt) {
  auto r = rsa("r");
  r["alg"] = "PS384";
  auto wrong = p256("e");
  wrong["alg"] = "ES384";  // a P-256 key cannot make ES384 signatures
  auto hmac = rsa("h");
  hmac["alg"] = "HS256";   // never from a public key set
  auto p = parsed(doc({r, wrong, hmac}));
  ASSERT_EQ(kids(p), std::vector<std::string>{"r"});
  EXPECT_EQ(p.keys[0].algs, std::vector<std::string>{"PS384"});
  ASSERT_EQ(p.skipped.size(), 2u);
  EXPECT_NE(p.skipped[0].find("kid 'e'"), std::string::npos) << p.skipped[0];
  EXPECT_NE(p.skipped[0].find("does not fit"), std::string::npos) << p.skipped[0];
}

TEST(JwksParse, KeysForEncryptionAreNotUsedForSignatures) {
  auto enc = rsa("enc");
  enc["use"] = "enc";
  auto sig = rsa("sig");
  sig["use"] = "sig";
  auto wrap = p256("wrap");
  wrap["key_ops"] = json::array{"wrapKey"};
  auto verify = p256("verify");
  verify["key_ops"] = json::array{"sign", "verify"};
  auto p = parsed(doc({enc, sig, wrap, verify}));
  EXPECT_EQ(kids(p), (std::vector<std::string>{"sig", "verify"}));
  ASSERT_EQ(p.skipped.size(), 2u);
  EXPECT_NE(p.skipped[0].find("use is 'enc'"), std::string::npos) << p.skipped[0];
}

TEST(JwksParse, BadKeysAreSkippedWithAReasonAndTheOthersKept) {
  auto short_rsa = rsa("short");
  short_rsa["n"] = b64(255, '\xC3');
  auto bad_y = p256("bad-y");
  bad_y["y"] = b64(31);
  auto p521_short = p256("p521");
  p521_short["crv"] = "P-521";  // 32-byte coordinates are not P-521's 66
  auto secp256k1 = p256("k1");
  secp256k1["crv"] = "secp256k1";
  json::object oct{{"kty", "oct"}, {"kid", "oct"}, {"k", b64(32)}};
  auto no_kid = ed25519("");
  no_kid.erase("kid");
  auto not_b64 = ed25519("not-b64");
  not_b64["x"] = "a+b/";
  auto p = parsed(doc({short_rsa, bad_y, p521_short, secp256k1, oct, no_kid, not_b64, 42, ed25519("good")}));
  EXPECT_EQ(kids(p), std::vector<std::string>{"good"});
  ASSERT_EQ(p.skipped.size(), 8u);
  EXPECT_NE(p.skipped[0].find("shorter than 2048 bits"), std::string::npos) << p.skipped[0];
  EXPECT_NE(p.skipped[3].find("unsupported curve"), std::string::npos) << p.skipped[3];
  EXPECT_NE(p.skipped[4].find("unsupported kty 'oct'"), std::string::npos) << p.skipped[4];
  EXPECT_NE(p.skipped[5].find("no kid"), std::string::npos) << p.skipped[5];
  EXPECT_NE(p.skipped[7].find("not an object"), std::string::npos) << p.skipped[7];
}

TEST(JwksParse, LeadingZeroBytesOfTheModulusDoNotCount) {
  json::object r{{"kty", "RSA"}, {"kid", "z"}, {"n", base64url_encode(std::string(1, '\0') + std::string(255, '\xC3'))},
                 {"e", "AQAB"}};
  auto p = parsed(doc({r}));
  EXPECT_TRUE(p.keys.empty());
  ASSERT_EQ(p.skipped.size(), 1u);
}

TEST(JwksParse, ALaterKeyWithAKidAlreadyTakenIsSkipped) {
  auto p = parsed(doc({p256("same"), rsa("same")}));
  ASSERT_EQ(p.keys.size(), 1u);
  EXPECT_EQ(p.keys[0].type, JwkType::ec);
  ASSERT_EQ(p.skipped.size(), 1u);
  EXPECT_NE(p.skipped[0].find("already used"), std::string::npos);
}

TEST(JwksParse, DocumentErrorsRefuseTheWholeSet) {
  for (const char* bad : {"", "[]", "{\"keys\":{}}", "{\"keys\":[}", "{}", "{\"keys\":[]} x"}) EXPECT_FALSE(parse_jwks(bad)) << bad;
  std::string big = doc({ed25519("k")});
  big.insert(big.size() - 1, std::string(max_jwks_bytes, ' '));
  auto r = parse_jwks(big);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("larger than"), std::string::npos);
  EXPECT_TRUE(parsed("{\"keys\":[]}").keys.empty());
}

TEST(JwksParse, AKeyTwiceRefusesTheWholeSet) {
  // Parsers disagree on which of two values wins: two "keys", or two "x" in one key, are refused.
  const std::string one = doc({ed25519("k")});
  const std::string two_keys = "{\"keys\":[],\"keys\":" + one.substr(one.find('['));
  const std::string two_x = "{\"keys\":[{\"kty\":\"OKP\",\"kid\":\"k\",\"crv\":\"Ed25519\",\"x\":\"" +
                            std::string(ed25519_x) + "\",\"x\":\"" + b64(32) + "\"}]}";
  for (const auto& bad : {two_keys, two_x}) {
    auto r = parse_jwks(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().find("twice"), std::string::npos) << r.error();
  }
  EXPECT_EQ(kids(parsed(one)), std::vector<std::string>{"k"});
}

TEST(JwksParse, KeysPastTheLimitAreSkipped) {
  json::array keys;
  for (std::size_t i = 0; i < max_jwks_keys + 3; ++i) keys.push_back(ed25519("k" + std::to_string(i)));
  json::object o;
  o["keys"] = std::move(keys);
  auto p = parsed(json::serialize(o));
  EXPECT_EQ(p.keys.size(), max_jwks_keys);
  EXPECT_EQ(p.skipped.size(), 3u);
}

TEST(JwksOpenSsl, OpenSslTakesParsedKeysAndRefusesAPointOffTheCurve) {
  auto p = parsed(doc({rsa("r"), p256("e"), ed25519("d")}));
  ASSERT_EQ(p.keys.size(), 3u);
  for (const auto& k : p.keys) EXPECT_NO_THROW(shell::OpenSslJwtVerifier::from_jwk(k)) << k.kid;
  auto off = p.keys[1];
  off.y.back() = static_cast<char>(off.y.back() ^ 1);
  EXPECT_THROW(shell::OpenSslJwtVerifier::from_jwk(off), std::invalid_argument);
}

TEST(JwksOpenSsl, AKeyVerifiesOnlyItsAlgs) {
  auto r = rsa("r");
  r["alg"] = "RS256";
  auto key = parsed(doc({r})).keys.at(0);
  auto verifier = shell::OpenSslJwtVerifier::from_jwk(key);
  // Signatures are garbage: what matters is whether the alg gets as far as the signature check.
  const std::string payload = base64url_encode(R"({"sub":"u"})") + "." + base64url_encode("sig");
  auto with_alg = [&](const char* alg) {
    return base64url_encode(std::string(R"({"alg":")") + alg + R"(","kid":"r"})") + "." + payload;
  };
  EXPECT_EQ(verifier->verify(with_alg("RS256"), 0).error(), AuthError::bad_signature);
  EXPECT_EQ(verifier->verify(with_alg("PS256"), 0).error(), AuthError::wrong_algorithm);
  EXPECT_EQ(verifier->verify(with_alg("HS256"), 0).error(), AuthError::wrong_algorithm);
}

TEST(JwtParse, KidIsReadFromTheHeaderWhenItIsAString) {
  const std::string payload = base64url_encode(R"({"sub":"u"})") + ".";
  auto with_header = [&](const char* h) { return base64url_encode(h) + "." + payload; };
  EXPECT_EQ(parse_jwt(with_header(R"({"alg":"RS256","kid":"k-1"})"))->kid, "k-1");
  EXPECT_EQ(parse_jwt(with_header(R"({"alg":"RS256","kid":7})"))->kid, "");
  EXPECT_EQ(parse_jwt(with_header(R"({"alg":"RS256"})"))->kid, "");
}

// --- the verifier over the key store (no fetcher: the store as the fetcher leaves it) -------

std::string token_with_header(const char* header) {
  return base64url_encode(header) + "." + base64url_encode(R"({"sub":"u"})") + "." + base64url_encode("sig");
}

TEST(JwksVerifier, UnknownKidIsRefusedAndAsksForAFetchAMissingKidDoesNot) {
  auto store = std::make_shared<shell::JwksKeyStore>();
  int asked = 0;
  store->on_unknown_kid = [&] { ++asked; };
  shell::JwksVerifier verifier(store);
  EXPECT_EQ(verifier.verify(token_with_header(R"({"alg":"RS256","kid":"k"})"), 0).error(), AuthError::unknown_key);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(verifier.verify(token_with_header(R"({"alg":"RS256"})"), 0).error(), AuthError::unknown_key);
  EXPECT_EQ(asked, 1);
  EXPECT_EQ(verifier.verify("not a token", 0).error(), AuthError::malformed);
  EXPECT_EQ(asked, 1);
}

TEST(JwksVerifier, WaitersAreCalledOnceOnReleaseBoundedAndNeedAKid) {
  auto store = std::make_shared<shell::JwksKeyStore>();
  shell::JwksVerifier verifier(store);
  int called = 0;
  const auto named = token_with_header(R"({"alg":"RS256","kid":"k"})");
  EXPECT_FALSE(verifier.await_keys(token_with_header(R"({"alg":"RS256"})"), [&] { ++called; }));
  for (std::size_t i = 0; i < shell::JwksKeyStore::max_waiters; ++i) ASSERT_TRUE(verifier.await_keys(named, [&] { ++called; }));
  EXPECT_FALSE(verifier.await_keys(named, [&] { ++called; }));
  store->release_waiters();
  EXPECT_EQ(called, static_cast<int>(shell::JwksKeyStore::max_waiters));
  store->release_waiters();
  EXPECT_EQ(called, static_cast<int>(shell::JwksKeyStore::max_waiters));
  EXPECT_TRUE(verifier.await_keys(named, [&] { ++called; }));
  store->drop_waiters();
  store->release_waiters();
  EXPECT_EQ(called, static_cast<int>(shell::JwksKeyStore::max_waiters));
}

// --- refresh decision --------------------------------------------------------------------

const auto t0 = std::chrono::steady_clock::time_point{} + 1000h;

TEST(JwksRefresh, UnknownKidFetchesAtMostOncePer10Seconds) {
  JwksFetchState s;
  EXPECT_TRUE(should_fetch_for_unknown_kid(s, t0));  // never fetched
  s.last_start = t0;
  EXPECT_FALSE(should_fetch_for_unknown_kid(s, t0));
  EXPECT_FALSE(should_fetch_for_unknown_kid(s, t0 + 9999ms));
  EXPECT_TRUE(should_fetch_for_unknown_kid(s, t0 + 10s));
  s.in_flight = true;
  EXPECT_FALSE(should_fetch_for_unknown_kid(s, t0 + 60s));
}

TEST(JwksRefresh, PeriodicRefreshFollowsMaxAgeWithinBounds) {
  JwksFetchState ok;
  EXPECT_EQ(next_refresh_delay(ok, std::nullopt), 300s);
  EXPECT_EQ(next_refresh_delay(ok, 900s), 900s);
  EXPECT_EQ(next_refresh_delay(ok, 0s), 60s);
  EXPECT_EQ(next_refresh_delay(ok, 86400s), 3600s);
}

TEST(JwksRefresh, FailuresRetryAfter10SecondsDoublingUpToFiveMinutes) {
  JwksFetchState s;
  std::vector<long> delays;
  for (unsigned f = 1; f <= 8; ++f) {
    s.consecutive_failures = f;
    delays.push_back(static_cast<long>(next_refresh_delay(s, 900s).count()));  // max-age ignored
  }
  EXPECT_EQ(delays, (std::vector<long>{10, 20, 40, 80, 160, 300, 300, 300}));
  s.consecutive_failures = 4'000'000'000u;
  EXPECT_EQ(next_refresh_delay(s, std::nullopt), 300s);
}

TEST(JwksRefresh, CacheControlMaxAge) {
  EXPECT_EQ(cache_control_max_age("max-age=600"), 600s);
  EXPECT_EQ(cache_control_max_age("public, Max-Age=\"120\", must-revalidate"), 120s);
  EXPECT_EQ(cache_control_max_age("no-store"), 0s);
  EXPECT_EQ(cache_control_max_age("public, no-cache"), 0s);
  EXPECT_EQ(cache_control_max_age("max-age=99999999999999999999999"), std::chrono::seconds(999999999999999999));
  EXPECT_EQ(cache_control_max_age(""), std::nullopt);
  EXPECT_EQ(cache_control_max_age("max-age=-1"), std::nullopt);
  EXPECT_EQ(cache_control_max_age("max-age="), std::nullopt);
  EXPECT_EQ(cache_control_max_age("s-maxage=5"), std::nullopt);
}

}  // namespace
