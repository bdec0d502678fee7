#include "shell/adapters/jwt_openssl.hpp"

#include <algorithm>
#include <climits>
#include <optional>
#include <stdexcept>
#include <vector>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "core/jwks.hpp"
#include "core/jwt.hpp"

namespace boundary::realtime::shell {

namespace {

// RFC 7518 §2: HMAC keys should be at least as long as the hash; the contract fixes the floor
// at 32 bytes (enough for HS256) so that dev secrets and `token --secret` stay usable.
constexpr std::size_t min_secret_bytes = 32;
// RFC 7518 §3.3: RSA keys for JWS must be at least 2048 bits.
constexpr int min_rsa_bits = 2048;

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct EcdsaSigFree {
  void operator()(ECDSA_SIG* p) const { ECDSA_SIG_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct BnFree {
  void operator()(BIGNUM* p) const { BN_free(p); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct MacFree {
  void operator()(EVP_MAC* p) const { EVP_MAC_free(p); }
};
struct MacCtxFree {
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, MacCtxFree>;

enum class Family { hmac, rsa_pkcs1, rsa_pss, ecdsa, eddsa };

struct Alg {
  std::string_view name;  // JOSE names are case-sensitive (RFC 7515 §4.1.1)
  Family family;
  const EVP_MD* (*md)();  // nullptr for EdDSA, which hashes internally
};

const Alg all_algs[] = {
    {"HS256", Family::hmac, EVP_sha256},      {"HS384", Family::hmac, EVP_sha384},
    {"HS512", Family::hmac, EVP_sha512},      {"RS256", Family::rsa_pkcs1, EVP_sha256},
    {"RS384", Family::rsa_pkcs1, EVP_sha384}, {"RS512", Family::rsa_pkcs1, EVP_sha512},
    {"PS256", Family::rsa_pss, EVP_sha256},   {"PS384", Family::rsa_pss, EVP_sha384},
    {"PS512", Family::rsa_pss, EVP_sha512},   {"ES256", Family::ecdsa, EVP_sha256},
    {"ES384", Family::ecdsa, EVP_sha384},     {"ES512", Family::ecdsa, EVP_sha512},
    {"EdDSA", Family::eddsa, nullptr},
};

std::vector<const Alg*> algs_of(std::initializer_list<Family> families) {
  std::vector<const Alg*> out;
  for (const auto& alg : all_algs)
    for (Family f : families)
      if (alg.family == f) out.push_back(&alg);
  return out;
}

const Alg* alg_named(std::string_view name) {
  for (const auto& alg : all_algs)
    if (alg.name == name) return &alg;
  return nullptr;
}

std::optional<std::string> hmac(const EVP_MD* md, std::string_view key, std::string_view data) {
  if (key.size() > static_cast<std::size_t>(INT_MAX)) return std::nullopt;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  // OpenSSL 3's HMAC() rejects a null key pointer even with length 0.
  const char* key_ptr = key.empty() ? "" : key.data();
  if (!HMAC(md, key_ptr, static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &out_len))
    return std::nullopt;
  return std::string(reinterpret_cast<const char*>(out), out_len);
}

// An HMAC keyed once with the verifier's secret. OpenSSL 3's one-shot HMAC() fetches the MAC
// and the digest by name (provider lookups under locks) and hashes the key pads on every call;
// a verification here copies the keyed context instead (server CPU per 19k-connection burst:
// 31.4 -> 30.7 us per connection, three runs each). The template is only read after construction,
// so copies can be taken from every event loop at once.
class KeyedHmac {
 public:
  KeyedHmac(const EVP_MD* md, std::string_view key) {
    std::unique_ptr<EVP_MAC, MacFree> mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (mac) ctx_.reset(EVP_MAC_CTX_new(mac.get()));
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>(EVP_MD_get0_name(md)), 0),
        OSSL_PARAM_construct_end()};
    const auto* key_bytes = reinterpret_cast<const unsigned char*>(key.empty() ? "" : key.data());
    if (!ctx_ || EVP_MAC_init(ctx_.get(), key_bytes, key.size(), params) != 1) {
      ERR_clear_error();
      throw std::runtime_error("cannot set up HMAC");
    }
  }

  bool matches(std::string_view input, std::string_view signature) const {
    MacCtxPtr c(EVP_MAC_CTX_dup(ctx_.get()));
    unsigned char out[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    if (!c || EVP_MAC_update(c.get(), reinterpret_cast<const unsigned char*>(input.data()), input.size()) != 1 ||
        EVP_MAC_final(c.get(), out, &len, sizeof out) != 1)
      return false;
    // Lengths are public (they follow from alg); only the bytes need a constant-time compare.
    const bool ok = len == signature.size() && CRYPTO_memcmp(out, signature.data(), len) == 0;
    OPENSSL_cleanse(out, sizeof out);
    return ok;
  }

 private:
  MacCtxPtr ctx_;
};

// JWS carries ECDSA signatures as fixed-size big-endian r||s (RFC 7518 §3.4); OpenSSL
// verifies DER. A wrong length is refused here rather than guessed at.
std::optional<std::vector<unsigned char>> jose_ecdsa_to_der(std::string_view sig,
                                                            std::size_t scalar_bytes) {
  if (scalar_bytes == 0 || sig.size() != 2 * scalar_bytes) return std::nullopt;
  const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> ecdsa(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(p, static_cast<int>(scalar_bytes), nullptr);
  BIGNUM* s = BN_bin2bn(p + scalar_bytes, static_cast<int>(scalar_bytes), nullptr);
  if (!ecdsa || !r || !s || !ECDSA_SIG_set0(ecdsa.get(), r, s)) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  const int len = i2d_ECDSA_SIG(ecdsa.get(), nullptr);
  if (len <= 0) return std::nullopt;
  std::vector<unsigned char> der(static_cast<std::size_t>(len));
  unsigned char* out = der.data();
  if (i2d_ECDSA_SIG(ecdsa.get(), &out) != len) return std::nullopt;
  return der;
}

// PSS parameters are fixed by RFC 7518 §3.5: MGF1 with the same hash, salt = hash length.
bool configure_pss(EVP_PKEY_CTX* pctx, const EVP_MD* md) {
  return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
}

bool digest_verify(EVP_PKEY* key, const Alg& alg, std::string_view input,
                   const unsigned char* sig, std::size_t sig_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return false;
  const EVP_MD* md = alg.md ? alg.md() : nullptr;
  EVP_PKEY_CTX* pctx = nullptr;  // owned by ctx
  if (EVP_DigestVerifyInit(ctx.get(), &pctx, md, nullptr, key) != 1) return false;
  if (alg.family == Family::rsa_pss && !configure_pss(pctx, md)) return false;
  if (alg.family == Family::rsa_pkcs1 &&
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) <= 0)
    return false;
  return EVP_DigestVerify(ctx.get(), sig, sig_len,
                          reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

std::string pem_error(std::string_view what) {
  return "JWT public key: " + std::string(what);
}

int curve_nid(EVP_PKEY* key) {
  char name[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(key, name, sizeof name, &len) != 1) return NID_undef;
  return OBJ_txt2nid(name);
}

// The one ES alg a curve can sign for and the byte length of its scalars (r and s).
std::pair<const Alg*, std::size_t> es_alg_for_curve(int nid) {
  switch (nid) {
    case NID_X9_62_prime256v1: return {alg_named("ES256"), 32};
    case NID_secp384r1: return {alg_named("ES384"), 48};
    case NID_secp521r1: return {alg_named("ES512"), 66};
    default: return {nullptr, 0};
  }
}

const unsigned char* bytes(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// A public key from OSSL_PARAMs (RFC 7518 §6: RSA n/e, EC curve and point), checked by OpenSSL.
PkeyPtr pkey_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1)
    return nullptr;
  PkeyPtr key(raw);
  // An EC point must lie on its curve (invalid-curve attacks). RSA is left unchecked: OpenSSL's
  // check runs Miller-Rabin rounds on n, slow for a 16384-bit modulus on the loop that fetched
  // it, and a malformed RSA public key lets no one forge a signature.
  if (std::string_view(type) == "EC") {
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
    if (!check || EVP_PKEY_public_check(check.get()) != 1) return nullptr;
  }
  return key;
}

PkeyPtr pkey_from_jwk(const core::Jwk& jwk) {
  if (jwk.type == core::JwkType::okp)
    return PkeyPtr(EVP_PKEY_new_raw_public_key_ex(nullptr, jwk.curve == "Ed448" ? "ED448" : "ED25519", nullptr,
                                                  bytes(jwk.x), jwk.x.size()));
  std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
  if (!bld) return nullptr;
  if (jwk.type == core::JwkType::rsa) {
    std::unique_ptr<BIGNUM, BnFree> n(BN_bin2bn(bytes(jwk.n), static_cast<int>(jwk.n.size()), nullptr));
    std::unique_ptr<BIGNUM, BnFree> e(BN_bin2bn(bytes(jwk.e), static_cast<int>(jwk.e.size()), nullptr));
    if (!n || !e || OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1)
      return nullptr;
    return pkey_from_params("RSA", bld.get());  // the params copy the numbers
  }
  std::string point = "\x04" + jwk.x + jwk.y;  // uncompressed SEC 1 point
  if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, jwk.curve.c_str(), 0) != 1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size()) != 1)
    return nullptr;
  return pkey_from_params("EC", bld.get());
}

}  // namespace

struct OpenSslJwtVerifier::Impl {
  std::vector<std::pair<const Alg*, KeyedHmac>> hmacs;  // HMAC verifiers: one per HS* alg, keyed
  PkeyPtr key;                     // public-key verifiers only; read-only after construction
  std::vector<const Alg*> allowed;  // the key pins the algorithm (no alg confusion)
  std::size_t ec_scalar_bytes = 0;


  const Alg* allowed_alg(std::string_view name) const {
    for (const Alg* alg : allowed)
      if (alg->name == name) return alg;
    return nullptr;
  }

  // Decides from the key's type which algs it accepts. Throws std::invalid_argument.
  static std::unique_ptr<Impl> for_key(PkeyPtr key) {
    auto impl = std::make_unique<Impl>();
    if (EVP_PKEY_is_a(key.get(), "RSA")) {
      const int bits = EVP_PKEY_get_bits(key.get());
      if (bits < min_rsa_bits)
        throw std::invalid_argument(pem_error("RSA key must be at least 2048 bits (got " +
                                              std::to_string(bits) + ")"));
      impl->allowed = algs_of({Family::rsa_pkcs1, Family::rsa_pss});
    } else if (EVP_PKEY_is_a(key.get(), "EC")) {
      auto [alg, scalar_bytes] = es_alg_for_curve(curve_nid(key.get()));
      if (!alg)
        throw std::invalid_argument(pem_error("EC key must be on P-256, P-384 or P-521"));
      impl->allowed = {alg};
      impl->ec_scalar_bytes = scalar_bytes;
    } else if (EVP_PKEY_is_a(key.get(), "ED25519") || EVP_PKEY_is_a(key.get(), "ED448")) {
      impl->allowed = algs_of({Family::eddsa});
    } else {
      throw std::invalid_argument(pem_error(
          "unsupported key type (expected RSA, EC P-256/P-384/P-521, Ed25519 or Ed448; "
          "RSA-PSS-restricted keys are not supported, use a plain RSA key for PS*)"));
    }
    impl->key = std::move(key);
    return impl;
  }

  bool signature_ok(const Alg& alg, std::string_view input, const std::string& sig) const {
    if (alg.family == Family::hmac) {
      for (const auto& [a, keyed] : hmacs)
        if (a == &alg) return keyed.matches(input, sig);
      return false;
    }
    if (alg.family == Family::ecdsa) {
      auto der = jose_ecdsa_to_der(sig, ec_scalar_bytes);
      return der && digest_verify(key.get(), alg, input, der->data(), der->size());
    }
    return digest_verify(key.get(), alg, input,
                         reinterpret_cast<const unsigned char*>(sig.data()), sig.size());
  }
};

OpenSslJwtVerifier::OpenSslJwtVerifier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
OpenSslJwtVerifier::~OpenSslJwtVerifier() = default;

std::unique_ptr<OpenSslJwtVerifier> OpenSslJwtVerifier::from_secret(std::string secret) {
  if (secret.size() < min_secret_bytes)
    throw std::invalid_argument("JWT secret must be at least 32 bytes (got " +
                                std::to_string(secret.size()) + ")");
  if (secret.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument("JWT secret is too long");
  auto impl = std::make_unique<Impl>();
  impl->allowed = algs_of({Family::hmac});
  // The keyed contexts hold the key from here on (OpenSSL wipes them when freed); no copy of
  // the secret is kept, and this one is wiped before its memory goes back to the heap.
  for (const Alg* alg : impl->allowed) impl->hmacs.emplace_back(alg, KeyedHmac(alg->md(), secret));
  OPENSSL_cleanse(secret.data(), secret.size());
  return std::unique_ptr<OpenSslJwtVerifier>(new OpenSslJwtVerifier(std::move(impl)));
}

std::unique_ptr<OpenSslJwtVerifier> OpenSslJwtVerifier::from_public_key_pem(std::string_view pem) {
  if (pem.size() > static_cast<std::size_t>(INT_MAX))
    throw std::invalid_argument(pem_error("PEM text is too long"));
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  ERR_clear_error();
  if (!key)
    throw std::invalid_argument(
        pem_error("cannot read a PEM public key (expected \"-----BEGIN PUBLIC KEY-----\")"));
  return std::unique_ptr<OpenSslJwtVerifier>(new OpenSslJwtVerifier(Impl::for_key(std::move(key))));
}

std::unique_ptr<OpenSslJwtVerifier> OpenSslJwtVerifier::from_jwk(const core::Jwk& jwk) {
  PkeyPtr key = pkey_from_jwk(jwk);
  ERR_clear_error();
  if (!key) throw std::invalid_argument("OpenSSL refused the key");
  auto impl = Impl::for_key(std::move(key));
  std::erase_if(impl->allowed, [&](const Alg* alg) {
    return std::find(jwk.algs.begin(), jwk.algs.end(), alg->name) == jwk.algs.end();
  });
  if (impl->allowed.empty()) throw std::invalid_argument("no algorithm fits the key");
  return std::unique_ptr<OpenSslJwtVerifier>(new OpenSslJwtVerifier(std::move(impl)));
}

boost::system::result<Identity, AuthError> OpenSslJwtVerifier::verify(
    std::string_view token, std::int64_t now_unix_seconds) const {
  auto parsed = core::parse_jwt(token);
  if (!parsed) return parsed.error();
  return verify_parsed(*parsed, now_unix_seconds);
}

// Order matters: the alg is pinned before any signature work, so a token can never choose how
// it is checked (RFC 8725 §3.1), and claims are only trusted once the signature holds.
boost::system::result<Identity, AuthError> OpenSslJwtVerifier::verify_parsed(
    const core::ParsedJwt& token, std::int64_t now_unix_seconds) const {
  const auto* parsed = &token;
  const Alg* alg = impl_->allowed_alg(parsed->alg);
  if (!alg) return AuthError::wrong_algorithm;
  if (!impl_->signature_ok(*alg, parsed->signing_input, parsed->signature)) {
    // Failed checks leave entries on this thread's OpenSSL error queue; stale entries would
    // be misread by the next OpenSSL user on this event loop (e.g. TLS).
    ERR_clear_error();
    return AuthError::bad_signature;
  }
  return core::identity_from_claims(parsed->claims, now_unix_seconds);
}

std::string sign_hs256(std::string_view secret, std::string_view claims_json) {
  std::string token = core::base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  token += '.';
  token += core::base64url_encode(claims_json);
  auto mac = hmac(EVP_sha256(), secret, token);
  if (!mac) throw std::runtime_error("HS256 signing failed");
  token += '.';
  token += core::base64url_encode(*mac);
  return token;
}

}  // namespace boundary::realtime::shell
