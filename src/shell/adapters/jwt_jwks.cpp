#include "shell/adapters/jwt_jwks.hpp"

#include <map>

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "core/jwks.hpp"
#include "core/jwt.hpp"
#include "shell/adapters/jwt_openssl.hpp"

namespace boundary::realtime::shell {
namespace asio = boost::asio;
using boost::system::error_code;

struct JwksKeys {
  std::map<std::string, std::unique_ptr<OpenSslJwtVerifier>, std::less<>> by_kid;
};

boost::system::result<Identity, AuthError> JwksVerifier::verify(std::string_view token,
                                                                std::int64_t now_unix_seconds) const {
  auto parsed = core::parse_jwt(token);
  if (!parsed) return parsed.error();
  // A token without `kid` cannot name a key; it asks for no fetch either (a new key is always
  // a new kid).
  if (parsed->kid.empty()) return AuthError::unknown_key;
  const auto keys = store_->current();
  if (keys) {
    if (auto it = keys->by_kid.find(parsed->kid); it != keys->by_kid.end())
      return it->second->verify_parsed(*parsed, now_unix_seconds);
  }
  if (store_->on_unknown_kid) store_->on_unknown_kid();
  return AuthError::unknown_key;
}

bool JwksVerifier::await_keys(std::string_view token, std::function<void()> ready) const {
  auto parsed = core::parse_jwt(token);
  if (!parsed || parsed->kid.empty()) return false;  // no fetch can bring its key
  if (!store_->add_waiter(std::move(ready))) return false;
  if (store_->on_unknown_kid) store_->on_unknown_kid();  // the fetcher decides, and releases
  return true;
}

bool JwksKeyStore::add_waiter(std::function<void()> ready) {
  std::lock_guard lock(waiters_mutex_);
  if (waiters_.size() >= max_waiters) return false;
  waiters_.push_back(std::move(ready));
  return true;
}

void JwksKeyStore::drop_waiters() {
  std::vector<std::function<void()>> dropped;
  std::lock_guard lock(waiters_mutex_);
  dropped.swap(waiters_);
}

void JwksKeyStore::release_waiters() {
  std::vector<std::function<void()>> ready;
  {
    std::lock_guard lock(waiters_mutex_);
    ready.swap(waiters_);
  }
  for (auto& r : ready) r();
}

JwksFetcher::JwksFetcher(asio::io_context& io, JwksSettings settings, Metrics& metrics)
    : io_(io),
      settings_(std::move(settings)),
      metrics_(metrics),
      tls_(settings_.url.tls ? make_http_client_tls(settings_.ca_file) : nullptr),
      store_(std::make_shared<JwksKeyStore>()),
      timer_(io) {
  metrics_.jwks = true;
}

JwksFetcher::~JwksFetcher() {
  // Waiters hold sessions of loops that are stopping: drop them uncalled, before the loops' io
  // contexts go.
  store_->drop_waiters();
}

// Set before the loops' threads start, so they see it. The store outlives the loops (the
// verifier holds it), the fetcher may not: hence the weak pointer.
void JwksFetcher::start() {
  store_->on_unknown_kid = [weak = weak_from_this()] {
    if (auto self = weak.lock()) self->want_fetch();
  };
  asio::post(io_, [self = shared_from_this()] { self->fetch(); });
}

void JwksFetcher::want_fetch() {
  if (fetch_wanted_.exchange(true, std::memory_order_acq_rel)) return;
  asio::post(io_, [self = shared_from_this()] {
    // Cleared first: a kid that arrives after this line posts again.
    self->fetch_wanted_.store(false, std::memory_order_release);
    if (core::should_fetch_for_unknown_kid(self->state_, std::chrono::steady_clock::now())) return self->fetch();
    // No fetch now (the floor): waiters hear so at once. A fetch under way releases them itself.
    if (!self->state_.in_flight) self->store_->release_waiters();
  });
}

void JwksFetcher::fetch() {
  if (state_.in_flight) return;
  state_.in_flight = true;
  state_.last_start = std::chrono::steady_clock::now();
  timer_.cancel();
  HttpCall call{settings_.url, false, {}, {}, settings_.timeout, core::max_jwks_bytes};
  http_call(io_, tls_, std::move(call), [self = shared_from_this()](boost::system::result<HttpReply, std::string> r) {
    self->on_fetched(std::move(r));
  });
}

void JwksFetcher::on_fetched(boost::system::result<HttpReply, std::string> reply) {
  state_.in_flight = false;
  handle_reply(std::move(reply));
  // After the set is published (or kept): waiters verify against the outcome.
  store_->release_waiters();
}

void JwksFetcher::handle_reply(boost::system::result<HttpReply, std::string> reply) {
  if (!reply) return failed(reply.error());
  if (reply->status != 200) return failed("HTTP status " + std::to_string(reply->status));
  auto parsed = core::parse_jwks(reply->body);
  if (!parsed) return failed("not a usable JWKS: " + parsed.error());
  auto keys = std::make_shared<JwksKeys>();
  std::string kids;
  for (const auto& jwk : parsed->keys) {
    try {
      keys->by_kid.emplace(jwk.kid, OpenSslJwtVerifier::from_jwk(jwk));
      kids += (kids.empty() ? "" : ",") + jwk.kid.substr(0, 64);
    } catch (const std::exception& e) {
      parsed->skipped.push_back("kid '" + jwk.kid.substr(0, 64) + "': " + e.what());
    }
  }
  // Only a handful: a long document of odd entries must not flood the log.
  constexpr std::size_t logged_skips = 5;
  for (std::size_t i = 0; i < parsed->skipped.size() && i < logged_skips; ++i)
    spdlog::warn("JWKS {}: skipped {}", where(), parsed->skipped[i]);
  if (parsed->skipped.size() > logged_skips)
    spdlog::warn("JWKS {}: {} more keys skipped", where(), parsed->skipped.size() - logged_skips);
  // An identity provider never means "trust nothing"; an empty set is a broken document.
  if (keys->by_kid.empty()) return failed("no usable key in the document");
  const std::size_t count = keys->by_kid.size();
  store_->publish(std::move(keys));
  metrics_.jwks_keys.store(static_cast<std::int64_t>(count), std::memory_order_relaxed);
  metrics_.jwks_refreshes_ok.fetch_add(1, std::memory_order_relaxed);
  const bool recovered = state_.consecutive_failures > 0;
  state_.consecutive_failures = 0;
  const auto max_age = core::cache_control_max_age(reply->cache_control);
  const auto next = core::next_refresh_delay(state_, max_age);
  if (recovered) spdlog::info("JWKS {}: fetched again after failures", where());
  spdlog::info("JWKS {}: {} keys ({}), next refresh in {} s", where(), count, kids, next.count());
  schedule(max_age);
}

void JwksFetcher::failed(const std::string& why) {
  ++state_.consecutive_failures;
  metrics_.jwks_refreshes_error.fetch_add(1, std::memory_order_relaxed);
  const auto keys = store_->current();
  const std::size_t kept = keys ? keys->by_kid.size() : 0;
  const auto next = core::next_refresh_delay(state_, std::nullopt);
  if (kept)
    spdlog::warn("JWKS {}: fetch failed ({}); keeping the last good set ({} keys), retry in {} s", where(), why, kept,
                 next.count());
  else
    spdlog::warn("JWKS {}: fetch failed ({}); no keys yet, every token is refused; retry in {} s", where(), why,
                 next.count());
  schedule(std::nullopt);
}

void JwksFetcher::schedule(std::optional<std::chrono::seconds> max_age) {
  timer_.expires_after(core::next_refresh_delay(state_, max_age));
  timer_.async_wait([weak = weak_from_this()](const error_code& ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->fetch();
  });
}

// The URL without its query, which might carry a credential.
std::string JwksFetcher::where() const {
  const auto& u = settings_.url;
  const auto path = u.target.substr(0, u.target.find('?'));
  const bool v6 = u.host.find(':') != std::string::npos;
  return std::string(u.tls ? "https://" : "http://") + (v6 ? "[" + u.host + "]" : u.host) + ":" + u.port + path;
}

}  // namespace boundary::realtime::shell
