// Routing: ConnectionRegistry lookups and deliveries on one loop's registry of 10,000
// connections. Items are deliveries (Connection::send calls), so the per-item time is the
// per-recipient cost; churn counts one subscribe + unsubscribe pair per item.
//
// Population (built once per connection kind):
//   10,000 connections, UUID-shaped ids; users of 3 devices each (connection i -> user i/3);
//   every connection has role "user", every 10th also "support" (1,000 members);
//   every connection is subscribed to "news:global" (10,000) and "room:<i % 100>" (100 each),
//   every 10th (i % 10 == 1) to "news:sports" (1,000).

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <benchmark/benchmark.h>

#include "boundary/realtime/connection_registry.hpp"
#include "boundary/realtime/message.hpp"
#include "boundary/realtime/ports/connection.hpp"

namespace boundary::realtime {
namespace {

constexpr int population_size = 10'000;
constexpr std::size_t max_subscriptions = 1000;  // Config::max_subscriptions, as the server passes it

// send() only counts: the registry's own cost (lookup, member walk, is_open + send virtual calls).
class CountingConnection final : public Connection {
 public:
  explicit CountingConnection(std::string id) : id_(std::move(id)) {}
  std::string_view id() const noexcept override { return id_; }
  bool is_open() const noexcept override { return true; }
  void send(const Message&) override { ++sent_; }
  void close(CloseCode, std::string_view) override {}

 private:
  std::string id_;
  std::uint64_t sent_ = 0;
};

// send() keeps a reference as WsSession::enqueue does (one shared_ptr increment per recipient,
// the decrement when the queue is released), in a queue whose storage is reused; the server's
// own queue bookkeeping (limits, flush scheduling, the write) is not modelled.
class QueueingConnection final : public Connection {
 public:
  explicit QueueingConnection(std::string id) : id_(std::move(id)) { queue_.reserve(queue_capacity); }
  std::string_view id() const noexcept override { return id_; }
  bool is_open() const noexcept override { return true; }
  void send(const Message& message) override {
    queue_.push_back(message);
    if (queue_.size() == queue_capacity) queue_.clear();  // "written": references released
  }
  void close(CloseCode, std::string_view) override {}

 private:
  static constexpr std::size_t queue_capacity = 4;
  std::string id_;
  std::vector<Message> queue_;
};

std::string connection_id(int i) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-7c1e-4a3b-9d2f-%012x", static_cast<unsigned>(i * 2654435761u),
                static_cast<unsigned>(i));
  return buf;
}

std::string user_id(int i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "user-%05d", i / 3);
  return buf;
}

template <class Conn>
struct Population {
  ConnectionRegistry registry;
  std::vector<std::string> ids;
  std::vector<std::string> full_users;  // users with exactly 3 connections
  Message message = Message::from_json(
      R"({"type":"order-updated","order-id":"ord-18342","status":"shipped","carrier":"UPS","eta":"2026-12-01","items":3,)"
      R"("timestamp":"2026-11-27T10:00:00.000Z","topic":"news:global"})");

  Population() {
    for (int i = 0; i < population_size; ++i) {
      ids.push_back(connection_id(i));
      Identity who;
      who.user_id = user_id(i);
      if (i % 10 == 0) who.roles = {"user", "support"};
      else who.roles = {"user"};
      if (i % 3 == 2) full_users.push_back(who.user_id);
      auto c = std::make_shared<Conn>(ids.back());
      if (!registry.register_connection(std::move(c), std::move(who))) throw std::logic_error("duplicate id");
      registry.subscribe(ids.back(), "news:global");
      registry.subscribe(ids.back(), "room:" + std::to_string(i % 100));
      if (i % 10 == 1) registry.subscribe(ids.back(), "news:sports");
    }
  }
};

template <class Conn>
Population<Conn>& population() {
  static Population<Conn> p;
  return p;
}

// One delivery to the group that `deliver(population, k)` picks; `expected` recipients each.
template <class Conn, class Deliver>
void run_delivery(benchmark::State& state, std::size_t expected, Deliver deliver) {
  auto& p = population<Conn>();
  std::size_t k = 0;
  std::int64_t delivered = 0;
  for (auto _ : state) {
    const std::size_t n = deliver(p, k++);
    benchmark::DoNotOptimize(n);
    delivered += static_cast<std::int64_t>(n);
  }
  if (delivered != static_cast<std::int64_t>(expected) * state.iterations())
    state.SkipWithError("unexpected recipient count");
  state.SetItemsProcessed(delivered);
  state.counters["recipients"] = static_cast<double>(expected);
}

template <class Conn>
void BM_PublishTopic10k(benchmark::State& state) {
  run_delivery<Conn>(state, population_size,
                     [](auto& p, std::size_t) { return p.registry.publish("news:global", p.message); });
}
BENCHMARK_TEMPLATE(BM_PublishTopic10k, CountingConnection);
BENCHMARK_TEMPLATE(BM_PublishTopic10k, QueueingConnection);

template <class Conn>
void BM_Broadcast10k(benchmark::State& state) {
  run_delivery<Conn>(state, population_size, [](auto& p, std::size_t) { return p.registry.broadcast(p.message); });
}
BENCHMARK_TEMPLATE(BM_Broadcast10k, CountingConnection);

template <class Conn>
void BM_SendToRole1k(benchmark::State& state) {
  run_delivery<Conn>(state, 1000, [](auto& p, std::size_t) { return p.registry.send_to_role("support", p.message); });
}
BENCHMARK_TEMPLATE(BM_SendToRole1k, CountingConnection);
BENCHMARK_TEMPLATE(BM_SendToRole1k, QueueingConnection);

// A different user each time (3,333 of them), as API sends to users arrive.
template <class Conn>
void BM_SendToUser3Devices(benchmark::State& state) {
  run_delivery<Conn>(state, 3, [](auto& p, std::size_t k) {
    return p.registry.send_to_user(p.full_users[k % p.full_users.size()], p.message);
  });
}
BENCHMARK_TEMPLATE(BM_SendToUser3Devices, CountingConnection);
BENCHMARK_TEMPLATE(BM_SendToUser3Devices, QueueingConnection);

template <class Conn>
void BM_SendToConnection(benchmark::State& state) {
  run_delivery<Conn>(state, 1, [](auto& p, std::size_t k) {
    return static_cast<std::size_t>(p.registry.send_to_connection(p.ids[k % p.ids.size()], p.message));
  });
}
BENCHMARK_TEMPLATE(BM_SendToConnection, CountingConnection);

// Every publish is posted to every loop; a loop where nobody subscribed only pays the lookup.
// Items are lookups here.
void BM_PublishTopicWithoutSubscribers(benchmark::State& state) {
  auto& p = population<CountingConnection>();
  for (auto _ : state) {
    const std::size_t n = p.registry.publish("order:18342", p.message);
    benchmark::DoNotOptimize(n);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PublishTopicWithoutSubscribers);

// subscribe + unsubscribe of connections (i % 10 == 2, not members) on "news:sports", which
// has 1,000 subscribers: a membership appended and swap-removed, no index created.
void BM_SubscribeChurnExistingTopic(benchmark::State& state) {
  auto& p = population<CountingConnection>();
  std::vector<std::string_view> movers;
  for (int i = 2; i < population_size; i += 10) movers.push_back(p.ids[static_cast<std::size_t>(i)]);
  std::size_t k = 0;
  for (auto _ : state) {
    const auto id = movers[k++ % movers.size()];
    const auto r = p.registry.subscribe(id, "news:sports", max_subscriptions);
    const bool left = p.registry.unsubscribe(id, "news:sports");
    if (r != ConnectionRegistry::SubscribeResult::subscribed || !left) {
      state.SkipWithError("churn did not subscribe/unsubscribe");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SubscribeChurnExistingTopic);

// subscribe + unsubscribe on a topic nobody else is in ("order:<n>"): the topic index is
// created (one allocation, the name copied) and erased each time.
void BM_SubscribeChurnNewTopic(benchmark::State& state) {
  auto& p = population<CountingConnection>();
  std::vector<std::string> topics;
  for (int i = 0; i < 1024; ++i) topics.push_back("order:" + std::to_string(100000 + i));
  std::size_t k = 0;
  for (auto _ : state) {
    const auto& id = p.ids[k % p.ids.size()];
    const auto& topic = topics[k % topics.size()];
    ++k;
    const auto r = p.registry.subscribe(id, topic, max_subscriptions);
    const bool left = p.registry.unsubscribe(id, topic);
    if (r != ConnectionRegistry::SubscribeResult::subscribed || !left) {
      state.SkipWithError("churn did not subscribe/unsubscribe");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SubscribeChurnNewTopic);

}  // namespace
}  // namespace boundary::realtime
