// libFuzzer target: permessage-deflate from hostile clients. The first byte picks the input:
//   even: a Sec-WebSocket-Extensions header. Invariants: negotiation never crashes; an agreement
//         has a window of 0 (not limited) or 8-15; the server's own answer, offered back, gives
//         the same agreement.
//   odd:  a compressed message payload. Invariants: inflating never crashes, never produces more
//         than the limit, and a stream reset after an error inflates a valid message again.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/deflate_codec.hpp"
#include "core/permessage_deflate.hpp"

using namespace boundary::realtime;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    const auto agreement = core::negotiate_deflate(input);
    if (!agreement) return 0;
    const auto bits = agreement->server_max_window_bits;
    if (bits != 0 && (bits < 8 || bits > 15)) std::abort();
    if (core::negotiate_deflate(core::deflate_response(*agreement)) != agreement) std::abort();
    return 0;
  }
  constexpr std::size_t limit = 4096;
  static core::Inflater inflater;  // shared, as a loop's: errors must leave it usable
  std::string out;
  inflater.inflate(input, limit, out, true);
  if (out.size() > limit) std::abort();
  static const std::string sample = R"({"action":"publish","topic":"chat:room","message":{"type":"chat","text":"hello hello hello"}})";
  if (inflater.inflate(core::deflate_message(sample), limit, out, true) != core::Inflater::Result::ok || out != sample)
    std::abort();
  return 0;
}
