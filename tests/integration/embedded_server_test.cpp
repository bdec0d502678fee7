// The server embedded in-process through its public C++ API, against Beast WebSocket clients
// on real loopback sockets: the application hooks, Server as a RealtimeService, and two
// servers (two hubs) joined by an in-memory loopback broker, which exercises the hub's
// dispatch, the join of local and remote counts, remote delivery and interest tracking
// without Redis.

#include <atomic>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

#include "boundary/realtime/hooks.hpp"
#include "boundary/realtime/in_memory_realtime_service.hpp"
#include "boundary/realtime/jwt_verifier.hpp"
#include "boundary/realtime/server.hpp"
#include "boundary/realtime/testing/fixed_claims_verifier.hpp"
#include "boundary/realtime/testing/manual_clock.hpp"
#include "boundary/realtime/testing/recording_connection.hpp"
#include "server_process.hpp"
#include "ws_client.hpp"

namespace boundary::realtime::itest {
namespace {

namespace asio = boost::asio;
namespace json = boost::json;
namespace http = boost::beast::http;

const std::string secret(32, 's');
const std::string api_key = "embedded-test-api-key-0123456789";

std::string token_for(const std::string& user, const std::vector<std::string>& roles = {}) {
  json::array r;
  for (const auto& role : roles) r.emplace_back(role);
  return sign_hs256(secret, json::serialize(json::object{{"sub", user}, {"roles", std::move(r)}}));
}

Config config_for_test(unsigned threads = 2) {
  Config c;
  c.port = 0;
  c.threads = threads;
  c.api_key = api_key;
  c.max_subscriptions = 3;
  return c;
}

// Waits for an asynchronous answer given to `call`'s handler (any thread), with a deadline.
template <class T, class Call>
T await(Call call) {
  auto promise = std::make_shared<std::promise<T>>();
  auto answered = std::make_shared<std::atomic<bool>>(false);
  call([promise, answered](T value) {
    if (!answered->exchange(true)) promise->set_value(std::move(value));
  });
  auto future = promise->get_future();
  if (future.wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw std::runtime_error("no answer within 5 s");
  return future.get();
}

// A running server and clients connected to it.
struct Running {
  explicit Running(Hooks hooks = {}, std::unique_ptr<Broker> broker = nullptr, unsigned threads = 2)
      : server(config_for_test(threads), make_hmac_verifier(secret), std::move(hooks),
               std::move(broker)) {}
  ~Running() { server.shutdown(std::chrono::milliseconds(500)); }

  void start() { port = server.start(); }

  // Connects and reads the connected frame.
  std::unique_ptr<WsClient> connect(const std::string& user, const std::vector<std::string>& roles = {}) {
    auto c = std::make_unique<WsClient>(ioc, user);
    if (auto ec = c->handshake(port, "/ws?token=" + token_for(user, roles)))
      throw std::runtime_error("upgrade refused: " + ec.message());
    auto hello = c->next();
    if (!hello) throw std::runtime_error("no connected frame");
    c->hello = parse_object(*hello);
    c->id = str(c->hello, "connection-id");
    return c;
  }

  static json::object reply(WsClient& c) {
    auto text = c.next();
    if (!text) throw std::runtime_error(c.name + ": nothing received");
    return parse_object(*text);
  }

  asio::io_context ioc;
  Server server;
  std::uint16_t port = 0;
};

TEST(EmbeddedPresence, ApplicationListsAndCountsWhatBeastClientsSee) {
  Config c = config_for_test();
  c.presence = {"room:*"};
  Server server(c, make_hmac_verifier(secret));
  const auto port = server.start();
  asio::io_context ioc;
  auto connect = [&](const std::string& user) {
    auto client = std::make_unique<WsClient>(ioc, user);
    if (auto ec = client->handshake(port, "/ws?token=" + token_for(user))) throw std::runtime_error(ec.message());
    EXPECT_EQ(str(parse_object(*client->next()), "type"), "connected");
    client->send(json::object{{"action", "subscribe"}, {"topic", "room:1"}});
    EXPECT_EQ(str(parse_object(*client->next()), "type"), "subscribed");
    return client;
  };
  auto alice = connect("alice");
  EXPECT_EQ(str(parse_object(*alice->next()), "user-id"), "alice");  // her own join
  auto bob = connect("bob");
  auto bob2 = connect("bob");  // a second tab: no new join
  const auto join = parse_object(*alice->next());
  EXPECT_EQ(str(join, "type"), "presence-join");
  EXPECT_EQ(str(join, "user-id"), "bob");

  auto listing = await<PresenceListing>([&](auto done) { server.presence("room:1", done); });
  EXPECT_TRUE(listing.available);
  EXPECT_FALSE(listing.truncated);
  std::map<std::string, std::size_t> users;
  for (const auto& u : listing.users) users[u.user_id] = u.connections;
  EXPECT_EQ(users, (std::map<std::string, std::size_t>{{"alice", 1}, {"bob", 2}}));
  auto stats = await<PresenceStats>([&](auto done) { server.presence_stats("room:1", done); });
  EXPECT_EQ(stats.users, 2u);
  EXPECT_EQ(stats.connections, 3u);
  EXPECT_FALSE(await<PresenceListing>([&](auto done) { server.presence("lobby", done); }).available);
  EXPECT_FALSE(await<PresenceStats>([&](auto done) { server.presence_stats("lobby", done); }).available);

  bob.reset();  // both of bob's connections go: one leave
  bob2.reset();
  const auto leave = parse_object(*alice->next());
  EXPECT_EQ(str(leave, "type"), "presence-leave");
  EXPECT_EQ(str(leave, "user-id"), "bob");
  server.shutdown(std::chrono::milliseconds(500));
}

// ---------------------------------------------------------------------------------------------
// Hooks

TEST(EmbeddedHooks, ConnectRefusalAnswers403WithTheApplicationsReason) {
  Hooks hooks;
  hooks.on_connect = [](const ConnectionInfo& info) {
    return info.identity.user_id == "banned" ? ConnectDecision::refuse("banned user") : ConnectDecision::allow();
  };
  Running r(std::move(hooks));
  r.start();
  WsClient refused(r.ioc, "banned");
  const auto ec = refused.handshake(r.port, "/ws?token=" + token_for("banned"));
  ASSERT_EQ(ec, boost::beast::websocket::error::upgrade_declined);
  EXPECT_EQ(refused.response().result_int(), 403u);
  EXPECT_EQ(parse_object(refused.response().body()).at("error"), json::value("banned user"));
  EXPECT_EQ(r.server.connection_count(), 0u);
  auto ok = r.connect("alice");  // everyone else gets in
  EXPECT_EQ(str(ok->hello, "type"), "connected");
}

struct Profile {
  std::string display_name;
};

TEST(EmbeddedHooks, DataAttachedOnConnectReachesLaterHooks) {
  Hooks hooks;
  hooks.on_connect = [](const ConnectionInfo& info) {
    return ConnectDecision::allow(std::make_shared<const Profile>(Profile{"Ms " + info.identity.user_id}));
  };
  hooks.on_action = [](const ConnectionInfo& info, const json::object& command, Hooks::Reply reply) {
    auto profile = std::static_pointer_cast<const Profile>(info.identity.app_data());
    reply({{"type", "whoami"}, {"name", profile ? profile->display_name : "?"}, {"asked", command.at("action")}});
  };
  Running r(std::move(hooks));
  r.start();
  auto alice = r.connect("alice");
  alice->send({{"action", "whoami"}, {"ref", 7}});
  const auto answer = Running::reply(*alice);
  EXPECT_EQ(str(answer, "type"), "whoami");
  EXPECT_EQ(str(answer, "name"), "Ms alice");
  EXPECT_EQ(str(answer, "asked"), "whoami");
  EXPECT_EQ(answer.at("ref"), json::value(7)) << "the command's ref is copied into the reply";
}

TEST(EmbeddedHooks, CustomActionWithoutAHandlerIsBadRequest) {
  Running r;
  r.start();
  auto alice = r.connect("alice");
  alice->send({{"action", "whoami"}, {"ref", "x"}});
  const auto answer = Running::reply(*alice);
  EXPECT_EQ(str(answer, "type"), "error");
  EXPECT_EQ(str(answer, "code"), "bad-request");
  EXPECT_EQ(str(answer, "ref"), "x");
}

TEST(EmbeddedHooks, ActionRepliesOnlyOnceAndMayComeFromAnotherThread) {
  std::vector<std::thread> workers;
  std::mutex workers_mutex;
  Hooks hooks;
  hooks.on_action = [&](const ConnectionInfo&, const json::object& command, Hooks::Reply reply) {
    std::lock_guard lock(workers_mutex);
    workers.emplace_back([reply, n = command.at("n")] {
      reply({{"type", "done"}, {"n", n}});
      reply({{"type", "done-again"}});  // ignored
    });
  };
  Running r(std::move(hooks));
  r.start();
  auto alice = r.connect("alice");
  alice->send({{"action", "work"}, {"n", 1}});
  alice->send({{"action", "ping"}, {"ref", "after"}});
  std::multiset<std::string> seen;
  for (int i = 0; i < 2; ++i) seen.insert(str(Running::reply(*alice), "type"));
  EXPECT_EQ(seen, (std::multiset<std::string>{"done", "pong"}));
  EXPECT_FALSE(alice->next(std::chrono::milliseconds(300)).has_value()) << "a second reply must be dropped";
  for (auto& t : workers) t.join();
}

TEST(EmbeddedHooks, SubscribeHookAuthorizesTopicsAndMayDecideLater) {
  std::vector<std::thread> deciders;
  std::mutex mutex;
  std::vector<std::string> asked;
  Hooks hooks;
  hooks.on_subscribe = [&](const ConnectionInfo& info, std::string_view topic, Hooks::Decide decide) {
    std::lock_guard lock(mutex);
    asked.emplace_back(topic);
    const bool allowed = topic.starts_with("room:") && info.identity.user_id == "alice";
    deciders.emplace_back([decide, allowed] { decide(allowed); });  // answered from another thread
  };
  Running r(std::move(hooks));
  r.start();
  auto alice = r.connect("alice");
  alice->send({{"action", "subscribe"}, {"topic", "secret:1"}, {"ref", 1}});
  auto refused = Running::reply(*alice);
  EXPECT_EQ(str(refused, "type"), "error");
  EXPECT_EQ(str(refused, "code"), "forbidden");
  alice->send({{"action", "subscribe"}, {"topic", "room:lobby"}, {"ref", 2}});
  EXPECT_EQ(str(Running::reply(*alice), "type"), "subscribed");
  // Already subscribed: the application is not asked again.
  alice->send({{"action", "subscribe"}, {"topic", "room:lobby"}, {"ref", 3}});
  EXPECT_EQ(str(Running::reply(*alice), "type"), "subscribed");
  // The built-in rule comes first: another user's topic never reaches the hook.
  alice->send({{"action", "subscribe"}, {"topic", "user:bob"}, {"ref", 4}});
  EXPECT_EQ(str(Running::reply(*alice), "code"), "forbidden");
  EXPECT_EQ(await<std::size_t>([&](auto done) { r.server.publish("room:lobby", {{"type", "hi"}}, done); }), 1u);
  EXPECT_EQ(str(Running::reply(*alice), "type"), "hi");
  // Backends are trusted: an API subscription is not put to the hook.
  EXPECT_EQ(await<RealtimeService::SubscribeResult>(
                [&](auto done) { r.server.subscribe(alice->id, "secret:2", done); }),
            RealtimeService::SubscribeResult::subscribed);
  for (auto& t : deciders) t.join();
  EXPECT_EQ(asked, (std::vector<std::string>{"secret:1", "room:lobby"}));
}

TEST(EmbeddedHooks, DisconnectHookRunsOnceAfterTheConnectionLeftEveryIndex) {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::string>> gone;  // (connection id, user id)
  Server* server = nullptr;
  std::vector<std::size_t> count_seen;
  Hooks hooks;
  hooks.on_disconnect = [&](const ConnectionInfo& info) {
    std::lock_guard lock(mutex);
    gone.emplace_back(info.connection_id, info.identity.user_id);
    count_seen.push_back(server->connection_count());
  };
  Running r(std::move(hooks));
  server = &r.server;
  r.start();
  auto alice = r.connect("alice");
  auto bob = r.connect("bob");
  alice.reset();  // the client goes away (TCP close)
  EXPECT_EQ(await<std::size_t>([&](auto done) { r.server.disconnect_user("bob", done); }), 1u);
  ASSERT_TRUE(bob->wait_closed(std::chrono::seconds(5)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    {
      std::lock_guard lock(mutex);
      if (gone.size() >= 2 || std::chrono::steady_clock::now() > deadline) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard lock(mutex);
  ASSERT_EQ(gone.size(), 2u);
  std::set<std::string> users{gone[0].second, gone[1].second};
  EXPECT_EQ(users, (std::set<std::string>{"alice", "bob"}));
  EXPECT_EQ(count_seen.back(), 0u) << "the hook runs after the connection was unregistered";
}

// ---------------------------------------------------------------------------------------------
// Server as a RealtimeService, with the limits of the in-memory service

// Application code written against the port only.
void notify_order(RealtimeService& service, const std::string& connection_id, std::vector<std::string>& log) {
  service.subscribe(connection_id, "order:1", [&log](RealtimeService::SubscribeResult r) {
    log.push_back(r == RealtimeService::SubscribeResult::subscribed ? "subscribed" : "refused");
  });
}

TEST(EmbeddedService, ApiSubscribeHonoursMaxSubscriptionsLikeTheInMemoryService) {
  Running r;
  r.start();
  auto alice = r.connect("alice");
  using R = RealtimeService::SubscribeResult;
  for (auto topic : {"a", "b", "c"})
    EXPECT_EQ(await<R>([&](auto done) { r.server.subscribe(alice->id, topic, done); }), R::subscribed);
  EXPECT_EQ(await<R>([&](auto done) { r.server.subscribe(alice->id, "d", done); }), R::limit_reached);
  EXPECT_EQ(await<R>([&](auto done) { r.server.subscribe(alice->id, "a", done); }), R::subscribed)
      << "a topic it already has is no new subscription";
  EXPECT_EQ(await<R>([&](auto done) { r.server.subscribe("no-such-connection", "a", done); }), R::unknown_connection);

  // The HTTP API tells the backend which refusal it was.
  HttpConnection http_api(r.ioc, r.port);
  const auto over = http_api.request(http::verb::post, "/api/subscribe",
                                     json::serialize(json::object{{"connection-id", alice->id}, {"topic", "e"}}), api_key);
  EXPECT_EQ(over.status, 409u);
  EXPECT_EQ(parse_object(over.body).at("subscribed"), json::value(false));

  // The in-memory service gives the same answer for the same sequence.
  testing::FixedClaimsVerifier verifier;
  verifier.accept("alice", Identity{.user_id = "alice", .roles = {}, .exp = {}, .iat = {}, .profile = {}});
  testing::ManualClock clock;
  InMemoryRealtimeService memory(verifier, clock, 3);
  auto conn = std::make_shared<testing::RecordingConnection>("c-1");
  ASSERT_TRUE(memory.connect(conn, "alice").has_value());
  for (auto topic : {"a", "b", "c"}) memory.subscribe("c-1", topic);
  std::vector<std::string> memory_log, server_log;
  notify_order(memory, "c-1", memory_log);
  std::promise<void> answered;
  r.server.subscribe(alice->id, "order:1", [&](RealtimeService::SubscribeResult res) {
    server_log.push_back(res == R::subscribed ? "subscribed" : "refused");
    answered.set_value();
  });
  ASSERT_EQ(answered.get_future().wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(memory_log, (std::vector<std::string>{"refused"}));
  EXPECT_EQ(server_log, memory_log);
}

// ---------------------------------------------------------------------------------------------
// Two hubs joined by an in-memory loopback broker

// A Broker adapter joining two servers in one process. Each side runs its callbacks on a thread
// of its own (the port's contract); fan-outs reach the peer in the order they were made, and
// user / role / topic fan-outs only when the peer declared interest in the name.
class LoopbackBroker final : public Broker {
 public:
  LoopbackBroker() : work_(asio::make_work_guard(io_)) {}
  ~LoopbackBroker() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  static void join(LoopbackBroker& a, LoopbackBroker& b) {
    a.peer_ = &b;
    b.peer_ = &a;
  }

  void set_handler(Handler handler) override { handler_ = std::move(handler); }
  void start() override {
    thread_ = std::thread([this] { io_.run(); });
  }
  bool distributed() const noexcept override { return true; }
  bool connected() const noexcept override { return reachable_.load(); }
  void set_reachable(bool up) { reachable_ = up; }

  void publish(Fanout f, bool wait, Done done) override {
    if (!reachable_.load()) {
      asio::post(io_, [done] { if (done) done(FanoutResult{false, 0, false}); });
      return;
    }
    ++published_;
    asio::post(io_, [this, f = std::move(f), wait, done = std::move(done)] {
      peer_->deliver(f, [this, wait, done](std::size_t n) {
        if (wait && done) asio::post(io_, [done, n] { done(FanoutResult{true, n, true}); });
      });
      if (!wait && done) done(FanoutResult{true, 0, true});
    });
  }

  void set_interest(Route route, std::string_view name, bool interested) override {
    std::lock_guard lock(mutex_);
    const std::string key = std::string(1, static_cast<char>(route)) + std::string(name);
    if (interested) interests_.insert(key);
    else interests_.erase(key);
    interest_log_.push_back((interested ? "+" : "-") + key);
  }

  void when_ready(std::function<void()> ready) override { asio::post(io_, std::move(ready)); }

  std::vector<std::string> interest_log() const {
    std::lock_guard lock(mutex_);
    return interest_log_;
  }
  std::size_t published() const { return published_.load(); }

 private:
  bool interested(const Fanout& f) const {
    if (f.route != Route::user && f.route != Route::role && f.route != Route::topic) return true;
    std::lock_guard lock(mutex_);
    return interests_.contains(std::string(1, static_cast<char>(f.route)) + f.target);
  }

  // On the publisher's thread: hand over to this side's thread, in order.
  void deliver(const Fanout& f, Answer answer) {
    asio::post(io_, [this, f, answer = std::move(answer)] {
      if (!interested(f) || !handler_) return answer(0);
      handler_(f, answer);
    });
  }

  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
  LoopbackBroker* peer_ = nullptr;
  Handler handler_;
  std::atomic<bool> reachable_{true};
  std::atomic<std::size_t> published_{0};
  mutable std::mutex mutex_;
  std::set<std::string> interests_;
  std::vector<std::string> interest_log_;
};

struct TwoNodes : ::testing::Test {
  void SetUp() override {
    auto a = std::make_unique<LoopbackBroker>();
    auto b = std::make_unique<LoopbackBroker>();
    LoopbackBroker::join(*a, *b);
    broker_a = a.get();
    broker_b = b.get();
    node_a = std::make_unique<Running>(Hooks{}, std::move(a));
    node_b = std::make_unique<Running>(Hooks{}, std::move(b));
    node_a->start();
    node_b->start();
  }

  void TearDown() override {
    // No fan-out may be in flight towards a broker that is going away.
    broker_a->set_reachable(false);
    broker_b->set_reachable(false);
  }

  LoopbackBroker* broker_a = nullptr;
  LoopbackBroker* broker_b = nullptr;
  std::unique_ptr<Running> node_a, node_b;
};

TEST_F(TwoNodes, SendsReachConnectionsOnBothNodesAndCountBoth) {
  auto on_a = node_a->connect("alice");
  auto on_b = node_b->connect("alice");
  for (auto* c : {on_a.get(), on_b.get()}) {
    c->send({{"action", "subscribe"}, {"topic", "order:7"}});
    ASSERT_EQ(str(Running::reply(*c), "type"), "subscribed");
  }
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_a->server.publish("order:7", {{"type", "t"}}, d); }), 2u);
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_b->server.send_to_user("alice", {{"type", "u"}}, d); }), 2u);
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_a->server.broadcast({{"type", "b"}}, d); }), 2u);
  for (auto* c : {on_a.get(), on_b.get()}) {
    EXPECT_EQ(str(Running::reply(*c), "type"), "t") << c->name;
    EXPECT_EQ(str(Running::reply(*c), "type"), "u") << c->name;
    EXPECT_EQ(str(Running::reply(*c), "type"), "b") << c->name;
  }
  // A name nobody on the other node has is not delivered there.
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_a->server.send_to_user("nobody", {{"type", "x"}}, d); }), 0u);
}

TEST_F(TwoNodes, ConnectionOperationsReachTheNodeHoldingTheConnection) {
  auto on_b = node_b->connect("bob");
  using R = RealtimeService::SubscribeResult;
  EXPECT_EQ(await<R>([&](auto d) { node_a->server.subscribe(on_b->id, "room:1", d); }), R::subscribed);
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_a->server.publish("room:1", {{"type", "m"}}, d); }), 1u);
  EXPECT_EQ(str(Running::reply(*on_b), "type"), "m");
  EXPECT_TRUE(await<bool>([&](auto d) { node_a->server.send_to_connection(on_b->id, {{"type", "direct"}}, d); }));
  EXPECT_EQ(str(Running::reply(*on_b), "type"), "direct");
  EXPECT_EQ(await<std::size_t>([&](auto d) { node_a->server.disconnect_connection(on_b->id, d); }), 1u);
  EXPECT_TRUE(on_b->wait_closed(std::chrono::seconds(5)));
}

TEST_F(TwoNodes, InterestFollowsTheFirstAndLastLocalConnection) {
  auto first = node_b->connect("carol");
  auto second = node_b->connect("carol");  // threads=2: likely on the other loop; counted per node
  for (auto* c : {first.get(), second.get()}) {
    c->send({{"action", "subscribe"}, {"topic", "room:9"}});
    ASSERT_EQ(str(Running::reply(*c), "type"), "subscribed");
  }
  first->send({{"action", "unsubscribe"}, {"topic", "room:9"}});
  ASSERT_EQ(str(Running::reply(*first), "type"), "unsubscribed");
  auto log = broker_b->interest_log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "+troom:9"), 1) << "one interest for the node, not per connection";
  EXPECT_EQ(std::count(log.begin(), log.end(), "-troom:9"), 0) << "a connection is still subscribed";
  second->send({{"action", "unsubscribe"}, {"topic", "room:9"}});
  ASSERT_EQ(str(Running::reply(*second), "type"), "unsubscribed");
  log = broker_b->interest_log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "-troom:9"), 1);
  EXPECT_EQ(std::count(log.begin(), log.end(), "+ucarol"), 1);
}

TEST_F(TwoNodes, UnreachableClusterDeliversLocallyAndSaysSo) {
  auto on_a = node_a->connect("dave");
  auto on_b = node_b->connect("dave");
  broker_a->set_reachable(false);
  HttpConnection api(node_a->ioc, node_a->port);
  const auto reply = api.request(http::verb::post, "/api/send-to-user",
                                 json::serialize(json::object{{"user-id", "dave"}, {"message", {{"type", "x"}}}}), api_key);
  EXPECT_EQ(reply.status, 503u);
  EXPECT_EQ(parse_object(reply.body).at("delivered"), json::value(1)) << "this node's connection still got it";
  EXPECT_EQ(str(Running::reply(*on_a), "type"), "x");
  EXPECT_FALSE(on_b->next(std::chrono::milliseconds(300)).has_value());
}

TEST_F(TwoNodes, FireAndForgetAnswersBeforeCounting) {
  auto on_b = node_b->connect("erin");
  HttpConnection api(node_a->ioc, node_a->port);
  const auto reply = api.request(http::verb::post, "/api/send-to-user",
                                 json::serialize(json::object{{"user-id", "erin"}, {"message", {{"type", "ff"}}}, {"wait", false}}),
                                 api_key);
  EXPECT_EQ(reply.status, 200u);
  EXPECT_EQ(parse_object(reply.body).at("queued"), json::value(true));
  EXPECT_EQ(str(Running::reply(*on_b), "type"), "ff") << "queued, and still delivered";
}

}  // namespace
}  // namespace boundary::realtime::itest
