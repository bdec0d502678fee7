// Cross-checks OpenSslJwtVerifier against an independent JWT implementation: tests/unit/
// mint_tokens.py on Python's `cryptography` package. Missing Python or `cryptography` is a
// failure, not a skip: scripts/install-deps.sh installs both, and a silently skipped interop
// test would hide exactly the encoding bugs (ES r||s, PSS salt) it exists for.

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include "core/jwt.hpp"
#include "shell/adapters/jwt_openssl.hpp"

namespace {

using namespace boundary::realtime;
using shell::OpenSslJwtVerifier;

constexpr std::int64_t now = 1'700'000'000;
constexpr const char* python = "/usr/bin/python3";
const char* const install_hint =
    "the JWT interop test needs /usr/bin/python3 with the `cryptography` package "
    "(Debian: python3-cryptography; scripts/install-deps.sh installs it)";

std::string script_path() {
  return (std::filesystem::path(__FILE__).parent_path() / "mint_tokens.py").string();
}

std::string shell_quote(std::string_view s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct RunResult {
  int exit_code = -1;
  std::string out;
};

RunResult run(const std::string& args) {
  const std::string cmd = std::string(python) + " " + shell_quote(script_path()) + " " + args;
  RunResult result;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return result;
  char buf[4096];
  for (std::size_t n; (n = fread(buf, 1, sizeof buf, pipe)) > 0;) result.out.append(buf, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string why(const boost::system::result<Identity, AuthError>& r) {
  return r ? "ok" : std::string(to_string(r.error()));
}

std::string hex_decode(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
  return out;
}

std::unique_ptr<OpenSslJwtVerifier> verifier_for(const boost::json::object& entry) {
  if (const auto* pem = entry.if_contains("pem"))
    return OpenSslJwtVerifier::from_public_key_pem(pem->as_string());
  return OpenSslJwtVerifier::from_secret(hex_decode(entry.at("secret-hex").as_string()));
}

std::string with_flipped_signature_byte(const std::string& token) {
  const auto dot = token.rfind('.');
  std::string sig = *core::base64url_decode(token.substr(dot + 1));
  sig[sig.size() / 2] = static_cast<char>(sig[sig.size() / 2] ^ 0x80);
  return token.substr(0, dot + 1) + core::base64url_encode(sig);
}

// Changes one character in the middle of the payload segment to another base64url character.
std::string with_flipped_payload_char(std::string token) {
  const auto dot1 = token.find('.');
  const auto dot2 = token.rfind('.');
  char& c = token[dot1 + (dot2 - dot1) / 2];
  c = (c == 'A') ? 'B' : 'A';
  return token;
}

boost::json::array mint_tokens() {
  const RunResult r = run("mint " + std::to_string(now));
  if (r.exit_code != 0) {
    ADD_FAILURE() << install_hint << "\n(exit code " << r.exit_code << ", output: " << r.out
                  << ")";
    return {};
  }
  return boost::json::parse(r.out).as_array();
}

TEST(JwtInterop, VerifiesTokensMintedByPythonCryptographyAndRefusesTamperedOnes) {
  ASSERT_TRUE(std::filesystem::exists(script_path()))
      << script_path() << " not found (run from the repository root when built with relative "
      << "source paths)";
  const boost::json::array entries = mint_tokens();
  if (HasFailure()) return;  // the reason is already reported
  std::set<std::string> seen;
  for (const auto& value : entries) {
    const auto& entry = value.as_object();
    const std::string alg(entry.at("alg").as_string());
    const std::string token(entry.at("token").as_string());
    SCOPED_TRACE(alg);
    seen.insert(alg);
    auto verifier = verifier_for(entry);

    auto id = verifier->verify(token, now);
    ASSERT_TRUE(id) << why(id);
    EXPECT_EQ(id->user_id, "interop-" + alg);
    EXPECT_EQ(id->roles, (std::vector<std::string>{"interop"}));
    EXPECT_EQ(id->exp, now + 3600);
    EXPECT_EQ(id->iat, now);

    EXPECT_EQ(why(verifier->verify(with_flipped_signature_byte(token), now)),
              to_string(AuthError::bad_signature));
    EXPECT_NE(why(verifier->verify(with_flipped_payload_char(token), now)), "ok");
  }
  EXPECT_EQ(seen, (std::set<std::string>{"RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA",
                                         "HS512"}));
}

TEST(JwtInterop, PythonAcceptsSignHs256TokensAndRefusesForgedOnes) {
  const std::string secret = "interop-secret-interop-secret-32";
  const std::string secret_hex = "696e7465726f702d7365637265742d696e7465726f702d7365637265742d3332";
  ASSERT_EQ(hex_decode(secret_hex), secret);
  const std::string token = shell::sign_hs256(secret, R"({"sub":"42","exp":1700003600})");
  const RunResult ok = run("verify-hs256 " + secret_hex + " " + shell_quote(token));
  ASSERT_TRUE(ok.exit_code == 0 || ok.exit_code == 1)
      << install_hint << "\n(exit code " << ok.exit_code << ", output: " << ok.out << ")";
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  const std::string forged = shell::sign_hs256(std::string(32, 'x'), R"({"sub":"42"})");
  EXPECT_EQ(run("verify-hs256 " + secret_hex + " " + shell_quote(forged)).exit_code, 1);
}

}  // namespace
