#include "shell/adapters/random.hpp"

#include <algorithm>
#include <array>
#include <random>
#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "core/pusher.hpp"

namespace boundary::realtime::shell {
namespace {

constexpr char hex_digits[] = "0123456789abcdef";

// 16 bytes from OpenSSL's CSPRNG, drawn 512 at a time: one RAND_bytes call costs about as much
// as the rest of a UUID's work many times over (8,000 instructions, callgrind), whatever the
// size. Each event loop thread has its own pool; used bytes are wiped.
std::array<unsigned char, 16> random_16() {
  thread_local std::array<unsigned char, 512> pool{};
  thread_local std::size_t used = pool.size();
  std::array<unsigned char, 16> b{};
  if (used == pool.size()) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) != 1) {
      std::random_device rd;  // RAND_bytes failing is near impossible; do not stop serving
      for (auto& x : b) x = static_cast<unsigned char>(rd());
      return b;
    }
    used = 0;
  }
  std::copy_n(pool.begin() + static_cast<std::ptrdiff_t>(used), b.size(), b.begin());
  OPENSSL_cleanse(pool.data() + used, b.size());
  used += b.size();
  return b;
}

}  // namespace

std::string uuid_v4() {
  std::array<unsigned char, 16> b = random_16();
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
  std::string s;
  s.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += hex_digits[b[i] >> 4];
    s += hex_digits[b[i] & 0xF];
  }
  return s;
}

std::string pusher_socket_id() {
  const auto b = random_16();
  std::uint64_t x = 0, y = 0;
  for (std::size_t i = 0; i < 8; ++i) {
    x = (x << 8) | b[i];
    y = (y << 8) | b[8 + i];
  }
  return core::pusher::make_socket_id(x, y);
}

std::string random_hex(std::size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) throw std::runtime_error("no randomness available");
  std::string s;
  s.reserve(2 * bytes);
  for (unsigned char c : b) {
    s += hex_digits[c >> 4];
    s += hex_digits[c & 0xF];
  }
  OPENSSL_cleanse(b.data(), b.size());
  return s;
}

}  // namespace boundary::realtime::shell
