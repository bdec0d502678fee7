#pragma once
// Randomness from OpenSSL's CSPRNG, for ids that must not be guessable.

#include <cstddef>
#include <string>

namespace boundary::realtime::shell {

// A UUID v4 (connection ids). Bytes are drawn from a per-thread pool refilled 512 at a time.
std::string uuid_v4();
// A Pusher socket id ("<n>.<n>", two random numbers below 10^10: 66 bits), from the same pool.
std::string pusher_socket_id();
// `bytes` random bytes as lowercase hex (node ids, dev-mode secrets). Throws std::runtime_error
// when no randomness is available (startup only).
std::string random_hex(std::size_t bytes);

}  // namespace boundary::realtime::shell
