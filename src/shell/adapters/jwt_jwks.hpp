#pragma once
// TokenVerifier over a JSON Web Key Set fetched from --jwt-jwks-url (http:// or https://).
//
// JwksFetcher runs on one event loop: it fetches at start, then periodically and when a token
// names an unknown `kid` (core/jwks_refresh.hpp decides when), and publishes each good set as an
// immutable snapshot. A fetch that fails, or brings a document with no usable key, changes
// nothing: the last good set stays in use. JwksVerifier, called from every loop, reads the
// current snapshot (one atomic load) and checks the token with the key its `kid` names, under
// that key's algorithms only.
//
// A token whose `kid` is not in the set (or any token before the first good fetch) is refused
// with unknown_key and asks for a fetch. Through await_keys() the upgrade waits for that fetch,
// or for one already under way, and verifies again: a new key is accepted on the first try as
// soon as the identity provider publishes it, and tokens sent while the first fetch runs wait
// for it. When no fetch is allowed (the 10 s floor) the refusal stands at once.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "boundary/realtime/ports/token_verifier.hpp"
#include "core/jwks_refresh.hpp"
#include "core/subscribe_proxy.hpp"
#include "shell/adapters/http_client.hpp"
#include "shell/metrics.hpp"

namespace boundary::realtime::shell {

struct JwksSettings {
  core::HttpUrl url;
  std::string ca_file;                        // https: a CA file instead of the system trust store
  std::chrono::milliseconds timeout{5000};    // per fetch, the whole exchange
};

struct JwksKeys;  // one published set: kid -> key

// The snapshot both sides share. Thread-safe.
class JwksKeyStore {
 public:
  std::shared_ptr<const JwksKeys> current() const { return keys_.load(std::memory_order_acquire); }
  void publish(std::shared_ptr<const JwksKeys> keys) { keys_.store(std::move(keys), std::memory_order_release); }
  // Called by the verifier on an unknown kid; set once by the fetcher before any token arrives.
  std::function<void()> on_unknown_kid;

  // Callers waiting for the end of a fetch (await_keys), at most max_waiters: a flood of forged
  // kids gets refusals, not memory.
  static constexpr std::size_t max_waiters = 4096;
  bool add_waiter(std::function<void()> ready);
  void release_waiters();  // calls each once, on the calling thread
  void drop_waiters();     // forgets them uncalled (shutdown)

 private:
  std::atomic<std::shared_ptr<const JwksKeys>> keys_;
  std::mutex waiters_mutex_;
  std::vector<std::function<void()>> waiters_;
};

class JwksVerifier final : public TokenVerifier {
 public:
  explicit JwksVerifier(std::shared_ptr<JwksKeyStore> store) : store_(std::move(store)) {}
  boost::system::result<Identity, AuthError> verify(std::string_view token,
                                                    std::int64_t now_unix_seconds) const override;
  bool await_keys(std::string_view token, std::function<void()> ready) const override;

 private:
  std::shared_ptr<JwksKeyStore> store_;
};

class JwksFetcher : public std::enable_shared_from_this<JwksFetcher> {
 public:
  // Throws std::invalid_argument when the CA file cannot be read.
  JwksFetcher(boost::asio::io_context& io, JwksSettings settings, Metrics& metrics);
  ~JwksFetcher();
  std::shared_ptr<JwksKeyStore> store() const { return store_; }
  // The first fetch, posted to the loop (it runs once the loop's thread does).
  void start();

 private:
  void want_fetch();  // any thread
  void fetch();
  void on_fetched(boost::system::result<HttpReply, std::string> reply);
  void handle_reply(boost::system::result<HttpReply, std::string> reply);
  void failed(const std::string& why);
  void schedule(std::optional<std::chrono::seconds> max_age);
  std::string where() const;

  boost::asio::io_context& io_;
  JwksSettings settings_;
  Metrics& metrics_;
  std::shared_ptr<const HttpClientTls> tls_;
  std::shared_ptr<JwksKeyStore> store_;
  boost::asio::steady_timer timer_;
  core::JwksFetchState state_;              // the loop's thread only
  std::atomic<bool> fetch_wanted_{false};   // one post per burst of unknown kids
};

}  // namespace boundary::realtime::shell
