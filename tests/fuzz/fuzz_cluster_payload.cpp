// libFuzzer target: payloads read from Redis in cluster mode (fan-outs, answers) and --redis URLs.
// Invariants: no decoder crashes; a decoded fan-out encodes back to the same bytes; a decoded
// answer re-encodes to an answer that decodes to the same values.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cluster_codec.hpp"

using namespace boundary::realtime;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto w = core::decode_fanout(text)) {
    if (core::encode_fanout(w->fanout, w->origin, w->request_id) != text) {
      // Only a non-canonical number (leading zeros, "+") may differ; it must decode the same.
      auto again = core::decode_fanout(core::encode_fanout(w->fanout, w->origin, w->request_id));
      if (!again || again->request_id != w->request_id || again->fanout.body != w->fanout.body ||
          again->fanout.target != w->fanout.target || again->origin != w->origin)
        std::abort();
    }
    (void)core::channel_for(w->fanout.route, w->fanout.target);
  }
  if (auto r = core::decode_reply(text)) {
    auto again = core::decode_reply(core::encode_reply(r->request_id, r->count));
    if (!again || again->request_id != r->request_id || again->count != r->count) std::abort();
  }
  if (auto u = core::parse_redis_url(text)) {
    if (u->host.empty() || u->port == 0) std::abort();
  }
  return 0;
}
