#include "shell/adapters/websocket_accept.hpp"

#include <array>

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace boundary::realtime::shell {
namespace {
// SHA-1 fetched once: OpenSSL 3's SHA1() looks the digest up by name on every call, which was
// about a tenth of the user-space instructions of a handshake (callgrind).
const EVP_MD* sha1() {
  static const EVP_MD* const md = [] {
    const EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA1", nullptr);
    return fetched ? fetched : EVP_sha1();
  }();
  return md;
}
}  // namespace

std::string websocket_accept(std::string_view key) {
  std::string input(key);
  input += "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int digest_len = 0;
  if (EVP_Digest(input.data(), input.size(), digest.data(), &digest_len, sha1(), nullptr) != 1 ||
      digest_len != SHA_DIGEST_LENGTH)
    SHA1(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest.data());
  std::array<unsigned char, 4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1> out{};
  const int n = EVP_EncodeBlock(out.data(), digest.data(), SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(out.data()), static_cast<std::size_t>(n));
}

}  // namespace boundary::realtime::shell
