// Per-upgrade token verification and per-command policy checks: JWT HS256 (core parsing plus the
// OpenSSL adapter's HMAC), the default subscribe policy, publish patterns and the rate limiter.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <benchmark/benchmark.h>

#include "boundary/realtime/jwt_verifier.hpp"
#include "core/jwt.hpp"
#include "core/rate_limiter.hpp"
#include "core/topic.hpp"

namespace boundary::realtime {
namespace {

constexpr std::int64_t issued_at = 1795736230;  // the tokens are valid for 24 h from here
constexpr std::int64_t now_unix = issued_at + 60;
// Claims as Boundary's user module issues them (109 bytes of JSON; the token is ~210 bytes).
constexpr std::string_view claims_json =
    R"({"user-id":"5f0c2a9e-81d4-4b1e-9a53-2c7d0e6f4b18","roles":["admin","user"],"iat":1795736230,"exp":1795822630})";
constexpr std::string_view secret = "7bc6a36baa207c88a6729389efeabbcb5ec285fbd3065016034aa0c8abc8e483";

const std::string& token() {
  static const std::string t = sign_hs256(secret, claims_json);
  return t;
}

// The whole check the server makes per upgrade: parse, pin alg, HMAC-SHA256, claims -> Identity.
void BM_JwtVerifyHs256(benchmark::State& state) {
  const auto verifier = make_hmac_verifier(std::string(secret));
  const std::string& t = token();
  for (auto _ : state) {
    auto who = verifier->verify(t, now_unix);
    if (!who) {
      state.SkipWithError("token refused");
      break;
    }
    benchmark::DoNotOptimize(who->user_id.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(t.size()));
  state.SetLabel(std::to_string(t.size()) + " B token");
}
BENCHMARK(BM_JwtVerifyHs256);

// The core's share of the verify: split, base64url-decode, parse header and claims JSON.
void BM_JwtParse(benchmark::State& state) {
  const std::string& t = token();
  for (auto _ : state) {
    auto parsed = core::parse_jwt(t);
    if (!parsed) {
      state.SkipWithError("token did not parse");
      break;
    }
    benchmark::DoNotOptimize(parsed->signature.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(t.size()));
}
BENCHMARK(BM_JwtParse);

// The core's last step: claims -> Identity (types, exp/nbf, roles copied into the Identity).
void BM_JwtIdentityFromClaims(benchmark::State& state) {
  const auto parsed = core::parse_jwt(token());
  if (!parsed) {
    state.SkipWithError("token did not parse");
    return;
  }
  for (auto _ : state) {
    auto who = core::identity_from_claims(parsed->claims, now_unix);
    if (!who) {
      state.SkipWithError("claims refused");
      break;
    }
    benchmark::DoNotOptimize(who->user_id.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JwtIdentityFromClaims);

Identity subscriber() {
  Identity who;
  who.user_id = "5f0c2a9e-81d4-4b1e-9a53-2c7d0e6f4b18";
  who.roles = {"user", "support"};
  return who;
}

// One topic per case: a plain topic (allowed for all), the user's own topic, a role topic the user
// holds (second role), another user's topic (refused).
void BM_CheckSubscribe(benchmark::State& state, std::string_view topic, bool allowed) {
  const Identity who = subscriber();
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    const auto refusal = core::check_subscribe(who, topic);
    benchmark::DoNotOptimize(refusal);
    if (refusal.has_value() == allowed) {
      state.SkipWithError("unexpected policy decision");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_CheckSubscribe, plain_topic, "order:18342", true);
BENCHMARK_CAPTURE(BM_CheckSubscribe, own_user_topic, "user:5f0c2a9e-81d4-4b1e-9a53-2c7d0e6f4b18", true);
BENCHMARK_CAPTURE(BM_CheckSubscribe, held_role_topic, "role:support:alerts", true);
BENCHMARK_CAPTURE(BM_CheckSubscribe, other_user_topic, "user:0d9b7e4c-1a2f-4c3d-8e5f-6a7b8c9d0e1f", false);

// Client publish: --publish-patterns with three patterns, the topic matching the last one.
void BM_PublishPatternsAllows(benchmark::State& state) {
  const core::TopicPatterns patterns({"chat:*", "presence:*:typing", "game:**"});
  std::string_view topic = "game:lobby-7:moves";
  for (auto _ : state) {
    benchmark::DoNotOptimize(topic);
    const bool ok = patterns.allows(topic);
    benchmark::DoNotOptimize(ok);
    if (!ok) {
      state.SkipWithError("pattern did not match");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PublishPatternsAllows);

// TokenBucketPolicy::try_take (one connection's bucket: the shared policy and its time point) with
// the server's defaults (--commands-per-second 100, --command-burst 200).
// within_rate: a take every 10 ms, all granted; flood: a take every microsecond, so after the
// burst nearly all are refused (the cost of saying no to a flooding client).
void BM_TokenBucketTake(benchmark::State& state, std::chrono::nanoseconds step) {
  constexpr double rate = 100;
  constexpr double burst = 200;
  const core::TokenBucketPolicy policy(rate, burst);
  auto full_at = core::TokenBucketPolicy::Clock::time_point::min();
  auto now = core::TokenBucketPolicy::Clock::time_point{} + std::chrono::hours(1);
  std::int64_t granted = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(now);
    const bool ok = policy.try_take(full_at, now);
    benchmark::DoNotOptimize(ok);
    granted += ok;
    now += step;
  }
  // The burst, plus what the elapsed (simulated) time earned.
  const double elapsed = std::chrono::duration<double>(step).count() * static_cast<double>(state.iterations());
  const double expected = std::min(static_cast<double>(state.iterations()), burst + elapsed * rate);
  if (std::abs(static_cast<double>(granted) - expected) > 1) state.SkipWithError("unexpected number of grants");
  state.SetItemsProcessed(state.iterations());
  state.counters["granted"] = static_cast<double>(granted) / static_cast<double>(state.iterations());
}
BENCHMARK_CAPTURE(BM_TokenBucketTake, within_rate, std::chrono::milliseconds(10));
BENCHMARK_CAPTURE(BM_TokenBucketTake, flood, std::chrono::microseconds(1));

// For scale: the clock read the shell makes before every try_take (ws_session.cpp).
void BM_SteadyClockNow(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(std::chrono::steady_clock::now());
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SteadyClockNow);

}  // namespace
}  // namespace boundary::realtime
