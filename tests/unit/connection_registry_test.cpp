#include "boundary/realtime/connection_registry.hpp"

#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "boundary/realtime/testing/recording_connection.hpp"

namespace boundary::realtime {
namespace {

using testing::RecordingConnection;
using SubscribeResult = ConnectionRegistry::SubscribeResult;

Identity user(std::string id, std::vector<std::string> roles = {}) {
  Identity who;
  who.user_id = std::move(id);
  who.roles = std::move(roles);
  return who;
}

std::set<std::string> ids(const std::vector<Connection*>& connections) {
  std::set<std::string> out;
  for (auto* c : connections) out.emplace(c->id());
  return out;
}

const Message& any_message() {
  static const Message m = Message::from_json(R"({"type":"t"})");
  return m;
}

class ConnectionRegistryTest : public ::testing::Test {
 protected:
  std::shared_ptr<RecordingConnection> add(std::string id, Identity who) {
    auto c = std::make_shared<RecordingConnection>(std::move(id));
    EXPECT_TRUE(registry.register_connection(c, std::move(who)));
    return c;
  }

  ConnectionRegistry registry;
};

TEST_F(ConnectionRegistryTest, AConnectionWithoutAUserIsInNoUserIndexUntilNamed) {
  std::vector<std::pair<std::string, bool>> users_seen;
  registry.set_index_observer([&](ConnectionRegistry::IndexKind kind, std::string_view name, bool created) {
    if (kind == ConnectionRegistry::IndexKind::user) users_seen.emplace_back(std::string(name), created);
  });
  auto a = add("a", user(""));
  auto b = add("b", user(""));
  EXPECT_TRUE(registry.find_by_user("").empty());
  EXPECT_EQ(registry.send_to_user("", any_message()), 0u);
  EXPECT_TRUE(users_seen.empty());
  ASSERT_TRUE(registry.replace_identity("a", user("ann")));
  EXPECT_EQ(ids(registry.find_by_user("ann")), std::set<std::string>{"a"});
  EXPECT_EQ(registry.broadcast(any_message()), 2u);
  EXPECT_TRUE(registry.unregister_connection("b"));
  EXPECT_TRUE(registry.unregister_connection("a"));
  EXPECT_EQ(users_seen, (std::vector<std::pair<std::string, bool>>{{"ann", true}, {"ann", false}}));
}

TEST_F(ConnectionRegistryTest, RegisteredConnectionIsFoundByIdWithItsIdentity) {
  auto c = add("c1", user("42", {"admin"}));
  EXPECT_EQ(registry.find("c1"), c.get());
  ASSERT_NE(registry.identity_of("c1"), nullptr);
  EXPECT_EQ(registry.identity_of("c1")->user_id, "42");
  EXPECT_EQ(registry.find("nope"), nullptr);
  EXPECT_EQ(registry.identity_of("nope"), nullptr);
}

TEST_F(ConnectionRegistryTest, DuplicateIdIsRefusedAndOriginalKept) {
  auto first = add("c1", user("42"));
  auto second = std::make_shared<RecordingConnection>("c1");
  EXPECT_FALSE(registry.register_connection(second, user("7")));
  EXPECT_EQ(registry.count(), 1u);
  EXPECT_EQ(registry.find("c1"), first.get());
  EXPECT_EQ(registry.identity_of("c1")->user_id, "42");
  EXPECT_TRUE(registry.find_by_user("7").empty());
}

TEST_F(ConnectionRegistryTest, NullConnectionIsRefused) {
  EXPECT_FALSE(registry.register_connection(nullptr, user("42")));
  EXPECT_EQ(registry.count(), 0u);
}

TEST_F(ConnectionRegistryTest, FindByUserReturnsEveryConnectionOfThatUser) {
  add("a", user("42"));
  add("b", user("42"));
  add("c", user("7"));
  EXPECT_EQ(ids(registry.find_by_user("42")), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(registry.user_connection_count("42"), 2u);
  EXPECT_EQ(registry.user_connection_count("7"), 1u);
  EXPECT_EQ(registry.user_connection_count("8"), 0u);
  EXPECT_TRUE(registry.find_by_user("8").empty());
}

TEST_F(ConnectionRegistryTest, FindByRoleReturnsEveryHolder) {
  add("a", user("1", {"admin", "user"}));
  add("b", user("2", {"user"}));
  add("c", user("3"));
  EXPECT_EQ(ids(registry.find_by_role("admin")), (std::set<std::string>{"a"}));
  EXPECT_EQ(ids(registry.find_by_role("user")), (std::set<std::string>{"a", "b"}));
  EXPECT_TRUE(registry.find_by_role("guest").empty());
}

TEST_F(ConnectionRegistryTest, RoleListedTwiceCountsOnce) {
  auto c = add("a", user("1", {"admin", "admin", "user", "admin"}));
  EXPECT_EQ(registry.find_by_role("admin").size(), 1u);
  EXPECT_EQ(registry.send_to_role("admin", any_message()), 1u);
  EXPECT_EQ(c->sent_count(), 1u);
  ASSERT_TRUE(registry.unregister_connection("a"));
  EXPECT_TRUE(registry.find_by_role("admin").empty());
  EXPECT_TRUE(registry.find_by_role("user").empty());
}

TEST_F(ConnectionRegistryTest, AllAndCountFollowRegistrations) {
  add("a", user("1"));
  add("b", user("2"));
  EXPECT_EQ(registry.count(), 2u);
  EXPECT_EQ(ids(registry.all()), (std::set<std::string>{"a", "b"}));
  registry.unregister_connection("a");
  EXPECT_EQ(registry.count(), 1u);
  EXPECT_EQ(ids(registry.all()), (std::set<std::string>{"b"}));
}

TEST_F(ConnectionRegistryTest, UnregisterRemovesFromEveryIndex) {
  add("a", user("42", {"admin"}));
  add("b", user("42", {"admin"}));
  EXPECT_TRUE(registry.unregister_connection("a"));
  EXPECT_EQ(registry.find("a"), nullptr);
  EXPECT_EQ(ids(registry.find_by_user("42")), (std::set<std::string>{"b"}));
  EXPECT_EQ(ids(registry.find_by_role("admin")), (std::set<std::string>{"b"}));
  EXPECT_EQ(ids(registry.all()), (std::set<std::string>{"b"}));
  EXPECT_FALSE(registry.unregister_connection("a"));
}

TEST_F(ConnectionRegistryTest, UnregisterLeavesEveryTopic) {
  add("a", user("1"));
  add("b", user("2"));
  for (auto topic : {"t1", "t2", "t3"}) ASSERT_EQ(registry.subscribe("a", topic), SubscribeResult::subscribed);
  ASSERT_EQ(registry.subscribe("b", "t2"), SubscribeResult::subscribed);
  ASSERT_TRUE(registry.unregister_connection("a"));
  EXPECT_EQ(registry.subscriber_count("t1"), 0u);
  EXPECT_EQ(registry.subscriber_count("t2"), 1u);
  EXPECT_EQ(registry.topic_count(), 1u);
  EXPECT_TRUE(registry.topics_of("a").empty());
  EXPECT_EQ(registry.publish("t1", any_message()), 0u);
}

TEST_F(ConnectionRegistryTest, UnregisterThenRegisterSameIdStartsClean) {
  add("a", user("1", {"admin"}));
  registry.subscribe("a", "t");
  registry.unregister_connection("a");
  add("a", user("2"));
  EXPECT_TRUE(registry.topics_of("a").empty());
  EXPECT_TRUE(registry.find_by_role("admin").empty());
  EXPECT_EQ(registry.identity_of("a")->user_id, "2");
}

TEST_F(ConnectionRegistryTest, SubscribeIsIdempotent) {
  auto c = add("a", user("1"));
  EXPECT_EQ(registry.subscribe("a", "t"), SubscribeResult::subscribed);
  EXPECT_EQ(registry.subscribe("a", "t"), SubscribeResult::already_subscribed);
  EXPECT_EQ(registry.subscriber_count("t"), 1u);
  EXPECT_EQ(registry.topics_of("a"), (std::vector<std::string>{"t"}));
  EXPECT_EQ(registry.publish("t", any_message()), 1u);
  EXPECT_EQ(c->sent_count(), 1u);
}

TEST_F(ConnectionRegistryTest, SubscribeUnknownConnectionIsReported) {
  EXPECT_EQ(registry.subscribe("ghost", "t"), SubscribeResult::unknown_connection);
  EXPECT_EQ(registry.topic_count(), 0u);
}

TEST_F(ConnectionRegistryTest, SubscribeStopsAtTheLimit) {
  add("a", user("1"));
  EXPECT_EQ(registry.subscribe("a", "t1", 2), SubscribeResult::subscribed);
  EXPECT_EQ(registry.subscribe("a", "t2", 2), SubscribeResult::subscribed);
  EXPECT_EQ(registry.subscribe("a", "t3", 2), SubscribeResult::limit_reached);
  EXPECT_EQ(registry.subscriber_count("t3"), 0u);
  EXPECT_EQ(registry.topic_count(), 2u);
  // A repeat of a held topic is not a new subscription, even at the limit.
  EXPECT_EQ(registry.subscribe("a", "t1", 2), SubscribeResult::already_subscribed);
  ASSERT_TRUE(registry.unsubscribe("a", "t1"));
  EXPECT_EQ(registry.subscribe("a", "t3", 2), SubscribeResult::subscribed);
}

TEST_F(ConnectionRegistryTest, ZeroLimitMeansUnlimited) {
  add("a", user("1"));
  for (int i = 0; i < 50; ++i)
    ASSERT_EQ(registry.subscribe("a", "t" + std::to_string(i), 0), SubscribeResult::subscribed);
  EXPECT_EQ(registry.topics_of("a").size(), 50u);
}

TEST_F(ConnectionRegistryTest, LimitIsPerConnection) {
  add("a", user("1"));
  add("b", user("1"));
  EXPECT_EQ(registry.subscribe("a", "t1", 1), SubscribeResult::subscribed);
  EXPECT_EQ(registry.subscribe("b", "t2", 1), SubscribeResult::subscribed);
  EXPECT_EQ(registry.subscribe("a", "t2", 1), SubscribeResult::limit_reached);
}

TEST_F(ConnectionRegistryTest, UnsubscribeStopsDeliveries) {
  auto a = add("a", user("1"));
  auto b = add("b", user("2"));
  registry.subscribe("a", "t");
  registry.subscribe("b", "t");
  EXPECT_TRUE(registry.unsubscribe("a", "t"));
  EXPECT_EQ(registry.publish("t", any_message()), 1u);
  EXPECT_EQ(a->sent_count(), 0u);
  EXPECT_EQ(b->sent_count(), 1u);
  EXPECT_TRUE(registry.topics_of("a").empty());
}

TEST_F(ConnectionRegistryTest, UnsubscribeWithoutSubscriptionIsFalse) {
  add("a", user("1"));
  add("b", user("2"));
  registry.subscribe("b", "t");
  EXPECT_FALSE(registry.unsubscribe("a", "t"));      // topic exists, a not in it
  EXPECT_FALSE(registry.unsubscribe("a", "other"));  // topic does not exist
  EXPECT_FALSE(registry.unsubscribe("ghost", "t"));
  EXPECT_EQ(registry.subscriber_count("t"), 1u);
}

TEST_F(ConnectionRegistryTest, LastUnsubscribeErasesTopic) {
  add("a", user("1"));
  add("b", user("2"));
  registry.subscribe("a", "t");
  registry.subscribe("b", "t");
  registry.subscribe("a", "u");
  EXPECT_EQ(registry.topic_count(), 2u);
  registry.unsubscribe("a", "t");
  EXPECT_EQ(registry.topic_count(), 2u);
  registry.unsubscribe("b", "t");
  EXPECT_EQ(registry.topic_count(), 1u);
  registry.unsubscribe("a", "u");
  EXPECT_EQ(registry.topic_count(), 0u);
}

TEST_F(ConnectionRegistryTest, TopicNamesDoNotCollideWithUsersOrRoles) {
  auto c = add("a", user("42", {"admin"}));
  EXPECT_EQ(registry.publish("42", any_message()), 0u);
  EXPECT_EQ(registry.publish("admin", any_message()), 0u);
  registry.subscribe("a", "admin");
  EXPECT_EQ(registry.send_to_user("admin", any_message()), 0u);
  EXPECT_EQ(c->sent_count(), 0u);
}

TEST_F(ConnectionRegistryTest, DeliveriesCountOnlyOpenConnections) {
  auto open = add("a", user("42", {"admin"}));
  auto closed = add("b", user("42", {"admin"}));
  registry.subscribe("a", "t");
  registry.subscribe("b", "t");
  closed->close(CloseCode::normal, "");
  EXPECT_EQ(registry.send_to_user("42", any_message()), 1u);
  EXPECT_EQ(registry.send_to_role("admin", any_message()), 1u);
  EXPECT_EQ(registry.broadcast(any_message()), 1u);
  EXPECT_EQ(registry.publish("t", any_message()), 1u);
  EXPECT_TRUE(registry.send_to_connection("a", any_message()));
  EXPECT_FALSE(registry.send_to_connection("b", any_message()));
  EXPECT_EQ(open->sent_count(), 5u);
  EXPECT_EQ(closed->sent_count(), 0u);
  EXPECT_EQ(closed->dropped_count(), 0u);  // the registry did not even try
}

TEST_F(ConnectionRegistryTest, DeliveriesReachEachTargetOnceWithTheSharedBuffer) {
  auto a = add("a", user("1", {"r"}));
  auto b = add("b", user("2", {"r"}));
  const auto m = Message::from_json(R"({"type":"x"})");
  EXPECT_EQ(registry.send_to_role("r", m), 2u);
  ASSERT_EQ(a->sent_count(), 1u);
  ASSERT_EQ(b->sent_count(), 1u);
  EXPECT_EQ(a->messages()[0].frame().data(), m.frame().data());
  EXPECT_EQ(b->messages()[0].frame().data(), m.frame().data());
}

TEST_F(ConnectionRegistryTest, DeliveryToNobodyIsZero) {
  EXPECT_EQ(registry.send_to_user("42", any_message()), 0u);
  EXPECT_EQ(registry.send_to_role("admin", any_message()), 0u);
  EXPECT_EQ(registry.broadcast(any_message()), 0u);
  EXPECT_EQ(registry.publish("t", any_message()), 0u);
  EXPECT_FALSE(registry.send_to_connection("ghost", any_message()));
}

TEST_F(ConnectionRegistryTest, ForEachVisitsEveryConnectionWithItsIdentity) {
  add("a", user("1"));
  add("b", user("2"));
  std::map<std::string, std::string> seen;
  registry.for_each([&](Connection& c, const Identity& who) { seen[std::string(c.id())] = who.user_id; });
  EXPECT_EQ(seen, (std::map<std::string, std::string>{{"a", "1"}, {"b", "2"}}));
}

TEST_F(ConnectionRegistryTest, ForEachToleratesVisitorThatUnregistersItself) {
  for (int i = 0; i < 10; ++i) add("c" + std::to_string(i), user("u", {"r"}));
  int visits = 0;
  registry.for_each([&](Connection& c, const Identity&) {
    ++visits;
    std::string id(c.id());  // the view dies with the connection
    c.close(CloseCode::going_away, "");
    EXPECT_TRUE(registry.unregister_connection(id));
  });
  EXPECT_EQ(visits, 10);
  EXPECT_EQ(registry.count(), 0u);
  EXPECT_TRUE(registry.find_by_role("r").empty());
}

TEST_F(ConnectionRegistryTest, ForEachSkipsConnectionsUnregisteredByEarlierVisits) {
  for (int i = 0; i < 6; ++i) add("c" + std::to_string(i), user("u"));
  std::set<std::string> visited;
  registry.for_each([&](Connection& c, const Identity&) {
    visited.emplace(c.id());
    // Each visit removes every other connection: only the first one visited may be seen.
    for (auto* other : registry.all())
      if (other != &c) registry.unregister_connection(std::string(other->id()));
  });
  EXPECT_EQ(visited.size(), 1u);
  EXPECT_EQ(registry.count(), 1u);
}

TEST_F(ConnectionRegistryTest, ForEachDoesNotVisitAReplacementWithTheSameId) {
  add("a", user("1"));
  add("b", user("2"));
  std::vector<std::string> users;
  registry.for_each([&](Connection& c, const Identity& who) {
    users.push_back(who.user_id);
    if (users.size() > 1) return;
    const std::string other = c.id() == "a" ? "b" : "a";
    registry.unregister_connection(other);
    add(other, user("new"));
  });
  EXPECT_EQ(users.size(), 1u);
  EXPECT_NE(users[0], "new");
  EXPECT_EQ(registry.count(), 2u);
}

TEST_F(ConnectionRegistryTest, ReplaceIdentityMovesRoleMembershipsAndKeepsTopics) {
  auto c = add("c1", user("42", {"old", "both"}));
  auto other = add("c2", user("7", {"old"}));
  ASSERT_EQ(registry.subscribe("c1", "order:1"), SubscribeResult::subscribed);
  ASSERT_TRUE(registry.replace_identity("c1", user("42", {"both", "new"})));

  EXPECT_EQ(registry.identity_of("c1")->roles, (std::vector<std::string>{"both", "new"}));
  EXPECT_EQ(ids(registry.find_by_role("old")), (std::set<std::string>{"c2"}));
  EXPECT_EQ(ids(registry.find_by_role("both")), (std::set<std::string>{"c1"}));
  EXPECT_EQ(ids(registry.find_by_role("new")), (std::set<std::string>{"c1"}));
  EXPECT_EQ(registry.send_to_role("old", any_message()), 1u);
  EXPECT_EQ(c->sent_count(), 0u);
  EXPECT_EQ(registry.send_to_role("new", any_message()), 1u);
  EXPECT_EQ(c->sent_count(), 1u);
  EXPECT_EQ(registry.topics_of("c1"), (std::vector<std::string>{"order:1"}));
  EXPECT_EQ(registry.publish("order:1", any_message()), 1u);
  EXPECT_EQ(ids(registry.find_by_user("42")), (std::set<std::string>{"c1"}));
  EXPECT_EQ(registry.broadcast(any_message()), 2u);
}

TEST_F(ConnectionRegistryTest, ReplaceIdentityWithAnotherUserMovesTheUserIndex) {
  add("c1", user("42"));
  ASSERT_TRUE(registry.replace_identity("c1", user("43")));
  EXPECT_TRUE(registry.find_by_user("42").empty());
  EXPECT_EQ(ids(registry.find_by_user("43")), (std::set<std::string>{"c1"}));
  EXPECT_EQ(registry.user_connection_count("42"), 0u);
}

TEST_F(ConnectionRegistryTest, ReplaceIdentityOfUnknownConnectionIsFalse) {
  EXPECT_FALSE(registry.replace_identity("nope", user("1")));
  EXPECT_EQ(registry.count(), 0u);
}

TEST_F(ConnectionRegistryTest, ReplaceIdentityThenUnregisterLeavesEveryIndex) {
  add("c1", user("42", {"a"}));
  registry.subscribe("c1", "t");
  ASSERT_TRUE(registry.replace_identity("c1", user("42", {"b", "b", "c"})));
  EXPECT_EQ(registry.find_by_role("b").size(), 1u);  // a role listed twice is one membership
  ASSERT_TRUE(registry.unregister_connection("c1"));
  EXPECT_TRUE(registry.find_by_role("a").empty());
  EXPECT_TRUE(registry.find_by_role("b").empty());
  EXPECT_TRUE(registry.find_by_role("c").empty());
  EXPECT_TRUE(registry.find_by_user("42").empty());
  EXPECT_EQ(registry.topic_count(), 0u);
}

// ---------------------------------------------------------------------------------------------
// Randomized model test: the swap-remove indexes must agree with plain maps and sets after any
// sequence of operations.

struct Model {
  struct Conn {
    std::string user;
    std::set<std::string> roles;
    std::set<std::string> topics;
    std::shared_ptr<RecordingConnection> connection;
  };
  std::map<std::string, Conn> conns;

  std::set<std::string> by_user(const std::string& u) const {
    std::set<std::string> out;
    for (const auto& [id, c] : conns) if (c.user == u) out.insert(id);
    return out;
  }
  std::set<std::string> by_role(const std::string& r) const {
    std::set<std::string> out;
    for (const auto& [id, c] : conns) if (c.roles.count(r)) out.insert(id);
    return out;
  }
  std::set<std::string> by_topic(const std::string& t) const {
    std::set<std::string> out;
    for (const auto& [id, c] : conns) if (c.topics.count(t)) out.insert(id);
    return out;
  }
  std::size_t topic_count() const {
    std::set<std::string> all;
    for (const auto& [id, c] : conns) all.insert(c.topics.begin(), c.topics.end());
    return all.size();
  }
};

constexpr std::size_t model_limit = 4;

void check_against(const ConnectionRegistry& registry, const Model& model,
                   const std::vector<std::string>& users, const std::vector<std::string>& roles,
                   const std::vector<std::string>& topics) {
  ASSERT_EQ(registry.count(), model.conns.size());
  std::set<std::string> all_ids;
  for (const auto& [id, c] : model.conns) {
    all_ids.insert(id);
    ASSERT_EQ(registry.find(id), c.connection.get());
    auto held = registry.topics_of(id);
    ASSERT_EQ(std::set<std::string>(held.begin(), held.end()), c.topics) << id;
    ASSERT_EQ(held.size(), c.topics.size()) << id;  // no duplicates
  }
  ASSERT_EQ(ids(registry.all()), all_ids);
  for (const auto& u : users) {
    ASSERT_EQ(ids(registry.find_by_user(u)), model.by_user(u)) << u;
    ASSERT_EQ(registry.user_connection_count(u), model.by_user(u).size()) << u;
  }
  for (const auto& r : roles) ASSERT_EQ(ids(registry.find_by_role(r)), model.by_role(r)) << r;
  for (const auto& t : topics) ASSERT_EQ(registry.subscriber_count(t), model.by_topic(t).size()) << t;
  ASSERT_EQ(registry.topic_count(), model.topic_count());
}

// Publishes to `topic` and checks that exactly the open subscribers received one copy each.
void check_publish(const ConnectionRegistry& registry, const Model& model, const std::string& topic) {
  std::map<std::string, std::size_t> before;
  std::size_t expected = 0;
  for (const auto& [id, c] : model.conns) {
    before[id] = c.connection->sent_count();
    if (c.topics.count(topic) && c.connection->is_open()) ++expected;
  }
  ASSERT_EQ(registry.publish(topic, any_message()), expected) << topic;
  for (const auto& [id, c] : model.conns) {
    const bool target = c.topics.count(topic) && c.connection->is_open();
    ASSERT_EQ(c.connection->sent_count(), before[id] + (target ? 1 : 0)) << id << " " << topic;
  }
}

TEST(ConnectionRegistryModel, RandomOperationsAgreeWithReferenceModel) {
  std::mt19937 rng(20250101);
  auto pick = [&](const std::vector<std::string>& from) {
    return from[std::uniform_int_distribution<std::size_t>(0, from.size() - 1)(rng)];
  };
  const std::vector<std::string> conn_ids = {"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7",
                                             "c8", "c9", "c10", "c11", "c12", "c13", "c14", "c15"};
  const std::vector<std::string> users = {"u0", "u1", "u2", "u3", "u4"};
  const std::vector<std::string> roles = {"admin", "user", "ops", "guest"};
  const std::vector<std::string> topics = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};

  ConnectionRegistry registry;
  Model model;
  std::size_t limit_hits = 0, duplicate_refusals = 0;
  for (int step = 0; step < 6000; ++step) {
    const auto id = pick(conn_ids);
    auto it = model.conns.find(id);
    const bool known = it != model.conns.end();
    switch (std::uniform_int_distribution<int>(0, 9)(rng)) {
      case 0:
      case 1: {  // register (a known id must be refused)
        std::vector<std::string> held;
        const int n = std::uniform_int_distribution<int>(0, 3)(rng);
        for (int i = 0; i < n; ++i) held.push_back(pick(roles));  // duplicates on purpose
        auto c = std::make_shared<RecordingConnection>(id);
        const auto u = pick(users);
        const bool ok = registry.register_connection(c, user(u, held));
        ASSERT_EQ(ok, !known) << "step " << step;
        if (ok) model.conns[id] = {u, std::set<std::string>(held.begin(), held.end()), {}, c};
        else ++duplicate_refusals;
        break;
      }
      case 2:  // unregister
        ASSERT_EQ(registry.unregister_connection(id), known) << "step " << step;
        if (known) model.conns.erase(it);
        break;
      case 3:
      case 4:
      case 5: {  // subscribe
        const auto t = pick(topics);
        auto r = registry.subscribe(id, t, model_limit);
        SubscribeResult expected = SubscribeResult::unknown_connection;
        if (known) {
          auto& held = it->second.topics;
          expected = held.count(t)                  ? SubscribeResult::already_subscribed
                     : held.size() >= model_limit   ? SubscribeResult::limit_reached
                                                    : SubscribeResult::subscribed;
          if (expected == SubscribeResult::subscribed) held.insert(t);
          if (expected == SubscribeResult::limit_reached) ++limit_hits;
        }
        ASSERT_EQ(r, expected) << "step " << step;
        break;
      }
      case 6:
      case 7: {  // unsubscribe
        const auto t = pick(topics);
        const bool expected = known && it->second.topics.erase(t) == 1;
        ASSERT_EQ(registry.unsubscribe(id, t), expected) << "step " << step;
        break;
      }
      case 8:  // a connection closes itself without being unregistered yet
        if (known) it->second.connection->close(CloseCode::normal, "");
        break;
      case 9:
        check_publish(registry, model, pick(topics));
        break;
    }
    check_against(registry, model, users, roles, topics);
    if (HasFatalFailure()) FAIL() << "diverged at step " << step;
  }
  // The walk must actually have exercised the interesting branches.
  EXPECT_GT(limit_hits, 0u);
  EXPECT_GT(duplicate_refusals, 0u);
}

}  // namespace
}  // namespace boundary::realtime

namespace boundary::realtime {
namespace {

TEST(ConnectionRegistryIndexObserver, ReportsOnlyFirstJoinAndLastLeave) {
  ConnectionRegistry reg;
  std::vector<std::string> events;
  reg.set_index_observer([&](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
    const char* kind = k == ConnectionRegistry::IndexKind::user ? "u" : k == ConnectionRegistry::IndexKind::role ? "r" : "t";
    events.push_back(std::string(created ? "+" : "-") + kind + ":" + std::string(name));
  });
  auto a = std::make_shared<testing::RecordingConnection>("a");
  auto b = std::make_shared<testing::RecordingConnection>("b");
  Identity ia;
  ia.user_id = "42";
  ia.roles = {"admin"};
  Identity ib = ia;
  ASSERT_TRUE(reg.register_connection(a, ia));
  ASSERT_TRUE(reg.register_connection(b, ib));
  reg.subscribe("a", "t1");
  reg.subscribe("b", "t1");
  reg.unsubscribe("a", "t1");
  EXPECT_EQ(events, (std::vector<std::string>{"+u:42", "+r:admin", "+t:t1"}));
  reg.unregister_connection("a");
  EXPECT_EQ(events.size(), 3u);  // b still holds user 42, role admin and t1
  reg.unregister_connection("b");
  ASSERT_EQ(events.size(), 6u);
  std::set<std::string> gone(events.begin() + 3, events.end());
  EXPECT_EQ(gone, (std::set<std::string>{"-u:42", "-r:admin", "-t:t1"}));
}

TEST(ConnectionRegistryIndexObserver, ReplaceIdentityReportsOnlyRolesThatChanged) {
  ConnectionRegistry reg;
  std::vector<std::string> events;
  reg.set_index_observer([&](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
    const char* kind = k == ConnectionRegistry::IndexKind::user ? "u" : k == ConnectionRegistry::IndexKind::role ? "r" : "t";
    events.push_back(std::string(created ? "+" : "-") + kind + ":" + std::string(name));
  });
  auto a = std::make_shared<testing::RecordingConnection>("a");
  ASSERT_TRUE(reg.register_connection(a, user("42", {"kept", "gone"})));
  events.clear();
  ASSERT_TRUE(reg.replace_identity("a", user("42", {"kept", "added"})));
  EXPECT_EQ(events, (std::vector<std::string>{"+r:added", "-r:gone"}));
}

// A user's index is keyed by a view of one of its connections' user_id: it must survive that
// connection leaving or changing user while others of the same user stay.
TEST(ConnectionRegistryIndexObserver, UserIndexOutlivesTheConnectionItWasKeyedBy) {
  ConnectionRegistry reg;
  std::vector<std::string> events;
  reg.set_index_observer([&](ConnectionRegistry::IndexKind k, std::string_view name, bool created) {
    if (k == ConnectionRegistry::IndexKind::user) events.push_back(std::string(created ? "+" : "-") + std::string(name));
  });
  std::vector<std::shared_ptr<testing::RecordingConnection>> held;
  for (const char* id : {"a", "b", "c", "d"}) {
    held.push_back(std::make_shared<testing::RecordingConnection>(id));
    ASSERT_TRUE(reg.register_connection(held.back(), user("42")));
  }
  EXPECT_EQ(events, (std::vector<std::string>{"+42"}));
  ASSERT_TRUE(reg.unregister_connection("a"));  // the first one
  EXPECT_EQ(ids(reg.find_by_user("42")), (std::set<std::string>{"b", "c", "d"}));
  ASSERT_TRUE(reg.replace_identity("b", user("43")));
  ASSERT_TRUE(reg.replace_identity("d", user("42", {"r"})));  // same user: nothing changes
  EXPECT_EQ(ids(reg.find_by_user("42")), (std::set<std::string>{"c", "d"}));
  EXPECT_EQ(ids(reg.find_by_user("43")), (std::set<std::string>{"b"}));
  EXPECT_EQ(reg.user_connection_count("42"), 2u);
  EXPECT_EQ(reg.send_to_user(std::string("4") + "2", any_message()), 2u);
  ASSERT_TRUE(reg.replace_identity("c", user("43")));
  ASSERT_TRUE(reg.replace_identity("d", user("43")));  // the last of 42: erased after 43 is joined
  EXPECT_EQ(events, (std::vector<std::string>{"+42", "+43", "-42"}));
  EXPECT_TRUE(reg.find_by_user("42").empty());
  EXPECT_EQ(reg.user_connection_count("43"), 3u);
  for (const char* id : {"c", "b", "d"}) ASSERT_TRUE(reg.unregister_connection(id));
  EXPECT_EQ(events, (std::vector<std::string>{"+42", "+43", "-42", "-43"}));
  EXPECT_EQ(reg.count(), 0u);
}

}  // namespace
}  // namespace boundary::realtime

namespace boundary::realtime {
namespace {

// Streams: a connection that joined at a history snapshot skips deliveries up to its offset
// (they are still on their way to its loop and it got them, or chose not to, from the snapshot).
TEST(ConnectionRegistryStream, SubscriberSkipsOffsetsUpToItsSnapshot) {
  ConnectionRegistry registry;
  auto early = std::make_shared<testing::RecordingConnection>("early");
  auto late = std::make_shared<testing::RecordingConnection>("late");
  registry.register_connection(early, user("1"));
  registry.register_connection(late, user("2"));
  registry.subscribe("early", "t");
  registry.subscribe("late", "t", 0, 5);
  const auto m = Message::from_json(R"({"type":"t"})");
  EXPECT_EQ(registry.publish("t", m, 4), 1u);
  EXPECT_EQ(registry.publish("t", m, 5), 1u);
  EXPECT_EQ(registry.publish("t", m, 6), 2u);
  EXPECT_EQ(registry.publish("t", m, 7), 2u);
  EXPECT_EQ(early->sent_count(), 4u);
  EXPECT_EQ(late->sent_count(), 2u);
}

TEST(ConnectionRegistryStream, ResubscribeMovesTheFloorAndLeavingForgetsIt) {
  ConnectionRegistry registry;
  auto c = std::make_shared<testing::RecordingConnection>("c");
  registry.register_connection(c, user("1"));
  registry.subscribe("c", "t", 0, 2);
  EXPECT_EQ(registry.subscribe("c", "t", 0, 9), ConnectionRegistry::SubscribeResult::already_subscribed);
  const auto m = Message::from_json(R"({"type":"t"})");
  EXPECT_EQ(registry.publish("t", m, 9), 0u);
  registry.unsubscribe("c", "t");
  registry.subscribe("c", "t");  // no snapshot: nothing skipped
  EXPECT_EQ(registry.publish("t", m, 3), 1u);
}

// Cluster mode: a stream delivery that skips offsets means the ones between never reached this
// node. Members that were subscribed for them are closed (1012) to reconnect and recover; a member
// that joined at a snapshot past the gap has them and stays.
TEST(ConnectionRegistryStream, AGapClosesTheMembersThatMissedIt) {
  ConnectionRegistry registry;
  auto old_member = std::make_shared<testing::RecordingConnection>("old");
  auto joined = std::make_shared<testing::RecordingConnection>("joined");
  auto other = std::make_shared<testing::RecordingConnection>("other");
  registry.register_connection(old_member, user("1"));
  registry.register_connection(joined, user("2"));
  registry.register_connection(other, user("3"));
  registry.subscribe("old", "t");
  registry.subscribe("other", "u");
  const auto m = Message::from_json(R"({"type":"t"})");
  EXPECT_EQ(registry.publish("t", m, 1), 1u);
  EXPECT_EQ(registry.publish("t", m, 2), 1u);
  registry.subscribe("joined", "t", 0, 4);  // its snapshot holds 3 and 4
  EXPECT_EQ(registry.publish("t", m, 5), 1u);  // 3 and 4 never came: a gap
  EXPECT_EQ(old_member->close_code(), CloseCode::service_restart);
  EXPECT_EQ(old_member->sent_count(), 2u);
  EXPECT_FALSE(joined->close_code());
  EXPECT_EQ(joined->sent_count(), 1u);
  EXPECT_EQ(registry.publish("u", m, 7), 1u);  // each topic counts for itself
  EXPECT_EQ(registry.publish("u", m, 8), 1u);
  EXPECT_FALSE(other->close_code());
}

TEST(ConnectionRegistryStream, OffsetsGoingBackAreANewEpochNotAGap) {
  ConnectionRegistry registry;
  auto c = std::make_shared<testing::RecordingConnection>("c");
  registry.register_connection(c, user("1"));
  registry.subscribe("c", "t");
  const auto m = Message::from_json(R"({"type":"t"})");
  EXPECT_EQ(registry.publish("t", m, 8), 1u);  // the first offset a group sees is no gap
  EXPECT_EQ(registry.publish("t", m, 9), 1u);
  EXPECT_EQ(registry.publish("t", m, 1), 1u);  // the stream restarted
  EXPECT_EQ(registry.publish("t", m, 2), 1u);
  EXPECT_EQ(registry.publish("t", m), 1u);     // without an offset (no history at that moment)
  EXPECT_EQ(registry.publish("t", m, 3), 1u);
  EXPECT_FALSE(c->close_code());
  EXPECT_EQ(c->sent_count(), 6u);
}

TEST(ConnectionRegistryStream, OffsetZeroIsNeverSkipped) {
  ConnectionRegistry registry;
  auto c = std::make_shared<testing::RecordingConnection>("c");
  registry.register_connection(c, user("1"));
  registry.subscribe("c", "t", 0, 5);
  EXPECT_EQ(registry.publish("t", Message::from_json(R"({"type":"t"})")), 1u);
}

}  // namespace
}  // namespace boundary::realtime

namespace boundary::realtime {
namespace {

TEST(ConnectionRegistrySubscriptionObserver, ReportsEachSubscriptionChangeOnceWithTheIdentity) {
  ConnectionRegistry reg;
  std::vector<std::string> events;
  reg.set_subscription_observer([&](std::string_view id, const Identity& who, std::string_view topic, bool on) {
    events.push_back(std::string(on ? "+" : "-") + std::string(id) + "/" + who.user_id + "@" + std::string(topic));
  });
  auto a = std::make_shared<testing::RecordingConnection>("a");
  auto b = std::make_shared<testing::RecordingConnection>("b");
  Identity ia;
  ia.user_id = "42";
  Identity ib;
  ib.user_id = "7";
  ASSERT_TRUE(reg.register_connection(a, ia));
  ASSERT_TRUE(reg.register_connection(b, ib));
  EXPECT_TRUE(events.empty());  // registering is no subscription
  reg.subscribe("a", "t1");
  reg.subscribe("a", "t1");  // already subscribed: nothing
  reg.subscribe("b", "t1");
  reg.subscribe("a", "t2");
  EXPECT_EQ(reg.subscribe("a", "t3", 2), SubscribeResult::limit_reached);  // refused: nothing
  EXPECT_FALSE(reg.unsubscribe("b", "t2"));  // not subscribed: nothing
  EXPECT_TRUE(reg.unsubscribe("b", "t1"));
  EXPECT_EQ(events, (std::vector<std::string>{"+a/42@t1", "+b/7@t1", "+a/42@t2", "-b/7@t1"}));
  events.clear();
  reg.unregister_connection("a");  // every topic it was in, once
  EXPECT_EQ(std::set<std::string>(events.begin(), events.end()), (std::set<std::string>{"-a/42@t1", "-a/42@t2"}));
  EXPECT_EQ(events.size(), 2u);
  EXPECT_EQ(reg.topic_count(), 0u);
}

}  // namespace
}  // namespace boundary::realtime
