// libFuzzer target: payloads read from Redis in cluster mode (fan-outs, answers, MOVED / ASK
// errors) and --redis URLs (redis:// and redis-cluster://).
// Invariants: no decoder crashes; a decoded fan-out encodes back to the same bytes; a decoded
// answer re-encodes to an answer that decodes to the same values.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/cluster_codec.hpp"
#include "core/redis_target.hpp"
#include "core/redis_cluster.hpp"

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
    (void)core::channel_for("rt", w->fanout.route, w->fanout.target);
  }
  if (auto r = core::decode_reply(text)) {
    auto again = core::decode_reply(core::encode_reply(r->request_id, r->count));
    if (!again || again->request_id != r->request_id || again->count != r->count) std::abort();
  }
  if (auto t = core::parse_redis_target(text)) {
    if (t->nodes.empty()) std::abort();
  }
  (void)core::redact_redis_url(text);
  if (auto u = core::parse_redis_url(text)) {
    if (u->host.empty() || u->port == 0) std::abort();
  }
  if (auto seeds = core::parse_cluster_url(text)) {
    if (seeds->empty()) std::abort();
    for (const auto& e : *seeds)
      if (e.host.empty() || e.port == 0) std::abort();
  }
  if (auto r = core::parse_redirect(text)) {
    if (r->slot >= core::cluster_slots || r->to.port == 0) std::abort();
  }
  if (core::key_slot(text) >= core::cluster_slots) std::abort();
  return 0;
}
