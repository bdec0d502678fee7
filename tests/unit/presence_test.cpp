#include "core/presence.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <gtest/gtest.h>

#include "shell/adapters/presence_memory.hpp"

namespace boundary::realtime::core {
namespace {
namespace json = boost::json;

std::shared_ptr<const std::string> info(std::string text) { return std::make_shared<const std::string>(std::move(text)); }

std::set<std::string> users_of(const PresenceListing& l) {
  std::set<std::string> out;
  for (const auto& u : l.users) out.insert(u.user_id);
  return out;
}

TEST(PresenceTable, FirstConnectionJoinsAndLastOneLeaves) {
  PresenceTable t;
  EXPECT_EQ(t.join("room", "alice", info(R"({"n":1})")), PresenceChange::joined);
  EXPECT_EQ(t.join("room", "alice", nullptr), PresenceChange::none);
  EXPECT_EQ(t.join("room", "bob", nullptr), PresenceChange::joined);
  EXPECT_EQ(t.stats("room").users, 2u);
  EXPECT_EQ(t.stats("room").connections, 3u);
  EXPECT_EQ(t.leave("room", "alice"), PresenceChange::none);
  EXPECT_EQ(t.leave("room", "alice"), PresenceChange::left);
  EXPECT_EQ(t.leave("room", "alice"), PresenceChange::none);  // no matching join
  EXPECT_EQ(t.stats("room").users, 1u);
  EXPECT_EQ(t.leave("room", "bob"), PresenceChange::left);
  EXPECT_EQ(t.topic_count(), 0u);  // empty topics are erased
  EXPECT_EQ(t.entry_count(), 0u);
}

TEST(PresenceTable, TopicsAreSeparate) {
  PresenceTable t;
  EXPECT_EQ(t.join("a", "u", nullptr), PresenceChange::joined);
  EXPECT_EQ(t.join("b", "u", nullptr), PresenceChange::joined);
  EXPECT_EQ(t.entry_count(), 2u);
  EXPECT_EQ(t.leave("a", "u"), PresenceChange::left);
  EXPECT_EQ(t.stats("b").users, 1u);
  EXPECT_EQ(t.leave("nowhere", "u"), PresenceChange::none);
}

TEST(PresenceTable, ListingKeepsTheFirstConnectionsInfoAndCountsConnections) {
  PresenceTable t;
  t.join("room", "alice", info(R"({"name":"Alice"})"));
  t.join("room", "alice", info(R"({"name":"Other"})"));
  t.join("room", "bob", nullptr);
  auto l = t.list("room", 10);
  EXPECT_FALSE(l.truncated);
  ASSERT_EQ(l.users.size(), 2u);
  for (const auto& u : l.users) {
    if (u.user_id == "alice") {
      EXPECT_EQ(u.connections, 2u);
      ASSERT_TRUE(u.info);
      EXPECT_EQ(*u.info, R"({"name":"Alice"})");
    } else {
      EXPECT_EQ(u.connections, 1u);
      EXPECT_FALSE(u.info);
    }
  }
  EXPECT_TRUE(t.list("empty", 10).users.empty());
}

TEST(PresenceTable, ListingIsCappedAndSaysTruncated) {
  PresenceTable t;
  for (int i = 0; i < 50; ++i) t.join("room", "u" + std::to_string(i), nullptr);
  auto l = t.list("room", 20);
  EXPECT_EQ(l.users.size(), 20u);
  EXPECT_TRUE(l.truncated);
  EXPECT_EQ(users_of(l).size(), 20u);
  auto all = t.list("room", 50);
  EXPECT_EQ(all.users.size(), 50u);
  EXPECT_FALSE(all.truncated);
}

TEST(PresenceInfoClaim, ObjectOfAtMostOneKibibyte) {
  auto claims = [](std::string_view text) { return json::parse(text).as_object(); };
  std::optional<std::string> out;
  EXPECT_TRUE(read_info_claim(claims(R"({"sub":"1"})"), out));
  EXPECT_FALSE(out);
  EXPECT_TRUE(read_info_claim(claims(R"({"info":{"name":"A","tags":[1,2]}})"), out));
  ASSERT_TRUE(out);
  EXPECT_EQ(*out, R"({"name":"A","tags":[1,2]})");
  for (auto bad : {R"({"info":"x"})", R"({"info":[1]})", R"({"info":null})", R"({"info":3})"}) {
    std::optional<std::string> o;
    EXPECT_FALSE(read_info_claim(claims(bad), o)) << bad;
  }
  const std::string fits = R"({"b":")" + std::string(max_info_bytes - 8, 'x') + "\"}";
  ASSERT_EQ(fits.size(), max_info_bytes);
  std::optional<std::string> o;
  EXPECT_TRUE(read_info_claim(claims(R"({"info":)" + fits + "}"), o));
  const std::string over = R"({"b":")" + std::string(max_info_bytes - 7, 'x') + "\"}";
  EXPECT_FALSE(read_info_claim(claims(R"({"info":)" + over + "}"), o));
}

TEST(PresenceMessages, EventsAndReplies) {
  auto join = json::serialize(presence_event({PresenceEvent::Kind::join, "room", "alice", info(R"({"n":1})")}));
  EXPECT_EQ(json::parse(join), json::parse(R"({"type":"presence-join","topic":"room","user-id":"alice","info":{"n":1}})"));
  auto bare = json::serialize(presence_event({PresenceEvent::Kind::join, "room", "bob", nullptr}));
  EXPECT_EQ(json::parse(bare).at("info"), json::object());
  auto leave = json::serialize(presence_event({PresenceEvent::Kind::leave, "room", "alice", info("{}")}));
  EXPECT_EQ(json::parse(leave), json::parse(R"({"type":"presence-leave","topic":"room","user-id":"alice"})"));

  PresenceListing l;
  l.users.push_back({"alice", 2, info(R"({"n":1})")});
  l.truncated = true;
  EXPECT_EQ(json::parse(reply_presence("room", l, "r1")),
            json::parse(R"({"type":"presence","topic":"room","users":[{"user-id":"alice","connections":2,"info":{"n":1}}],"truncated":true,"ref":"r1"})"));
  EXPECT_EQ(json::parse(presence_stats_body({3, 5})), json::parse(R"({"users":3,"connections":5})"));
}

TEST(PresenceMemory, AnnouncesUserLevelChangesInOrderFromManyThreads) {
  shell::PresenceMemory store({"room:*"});
  EXPECT_TRUE(store.tracks("room:1"));
  EXPECT_FALSE(store.tracks("lobby"));
  std::vector<std::string> events;  // appended under the store's mutex
  store.set_announce([&](const std::vector<PresenceEvent>& batch) {
    EXPECT_EQ(batch.size(), 1u);  // no coalescing without a schedule
    for (const auto& e : batch) events.push_back((e.kind == PresenceEvent::Kind::join ? "+" : "-") + e.user_id);
  });
  // Four threads, each joining and leaving the same 100 users twice over.
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int round = 0; round < 2; ++round)
        for (int u = 0; u < 100; ++u) {
          store.joined("room:1", "u" + std::to_string(u), nullptr);
          store.left("room:1", "u" + std::to_string(u));
        }
    });
  for (auto& t : threads) t.join();
  // Per user, events alternate join, leave, starting with a join and ending with a leave.
  std::map<std::string, std::string> last;
  for (const auto& e : events) {
    const auto user = e.substr(1);
    auto& prev = last[user];
    EXPECT_NE(prev.empty() ? '-' : prev[0], e[0]) << e;
    prev = e;
  }
  for (const auto& [user, e] : last) EXPECT_EQ(e[0], '-') << user;
  EXPECT_EQ(last.size(), 100u);
  EXPECT_EQ(store.usage().users, 0u);
  EXPECT_EQ(store.usage().topics, 0u);
  PresenceStats stats;
  store.stats("room:1", [&](PresenceStats s) { stats = s; });
  EXPECT_EQ(stats.users, 0u);
}

// A schedule the test runs by hand: the windows' ends.
struct ManualSchedule {
  std::vector<std::function<void()>> due;
  shell::PresenceMemory::Schedule get() {
    return [this](std::chrono::milliseconds d, std::function<void()> work) {
      EXPECT_EQ(d, std::chrono::milliseconds(50));
      due.push_back(std::move(work));
    };
  }
  void run() {
    auto now = std::move(due);
    due.clear();
    for (auto& w : now) w();
  }
};

struct Batches {
  std::vector<std::vector<std::string>> got;
  PresenceStore::Announce get() {
    return [this](const std::vector<PresenceEvent>& batch) {
      std::vector<std::string> b;
      for (const auto& e : batch) b.push_back((e.kind == PresenceEvent::Kind::join ? "+" : "-") + e.topic + "/" + e.user_id);
      got.push_back(std::move(b));
    };
  }
};

TEST(PresenceMemoryCoalescing, FirstChangeAtOnceThenTheWindowsChangesTogether) {
  ManualSchedule clock;
  Batches out;
  shell::PresenceMemory store({"**"}, std::chrono::milliseconds(50), clock.get());
  store.set_announce(out.get());
  store.joined("t", "a", nullptr);
  EXPECT_EQ(out.got, (std::vector<std::vector<std::string>>{{"+t/a"}}));  // at once
  ASSERT_EQ(clock.due.size(), 1u);
  store.joined("t", "b", nullptr);
  store.joined("t", "c", nullptr);
  store.joined("u", "a", nullptr);  // another topic: its own window, at once
  EXPECT_EQ(out.got.size(), 2u);
  EXPECT_EQ(out.got[1], (std::vector<std::string>{"+u/a"}));
  clock.run();  // both windows end; t had changes, u none
  ASSERT_EQ(out.got.size(), 3u);
  EXPECT_EQ(out.got[2], (std::vector<std::string>{"+t/b", "+t/c"}));
  ASSERT_EQ(clock.due.size(), 1u);  // t keeps coalescing for another interval
  clock.run();                      // quiet: the window closes
  EXPECT_TRUE(clock.due.empty());
  store.left("t", "b");  // at once again
  EXPECT_EQ(out.got.back(), (std::vector<std::string>{"-t/b"}));
}

TEST(PresenceMemoryCoalescing, JoinAndLeaveInsideTheWindowCancelOut) {
  ManualSchedule clock;
  Batches out;
  shell::PresenceMemory store({"**"}, std::chrono::milliseconds(50), clock.get());
  store.set_announce(out.get());
  store.joined("t", "a", nullptr);  // announced, window opens
  store.joined("t", "tab", nullptr);
  store.left("t", "tab");   // a tab opened and closed: nothing
  store.left("t", "a");
  store.joined("t", "a", nullptr);  // a reload: nothing
  store.joined("t", "b", nullptr);
  clock.run();
  EXPECT_EQ(out.got, (std::vector<std::vector<std::string>>{{"+t/a"}, {"+t/b"}}));
  PresenceStats s;
  store.stats("t", [&](PresenceStats x) { s = x; });
  EXPECT_EQ(s.users, 2u);
}

TEST(PresenceMemoryCoalescing, ListAnnouncesWhatIsPendingFirst) {
  ManualSchedule clock;
  Batches out;
  shell::PresenceMemory store({"**"}, std::chrono::milliseconds(50), clock.get());
  store.set_announce(out.get());
  store.joined("t", "a", nullptr);
  store.joined("t", "b", nullptr);  // pending
  std::size_t announced_before_answer = 0;
  std::size_t listed = 0;
  store.list("t", 10, [&](PresenceListing l) {
    announced_before_answer = out.got.size();
    listed = l.users.size();
  });
  EXPECT_EQ(announced_before_answer, 2u);  // b's join went out before the listing that has b
  EXPECT_EQ(listed, 2u);
  clock.run();
  EXPECT_EQ(out.got.size(), 2u);  // nothing left to announce
}

TEST(PresenceMemoryCoalescing, ARejoinWithOtherInfoIsNotCancelled) {
  ManualSchedule clock;
  Batches out;
  shell::PresenceMemory store({"**"}, std::chrono::milliseconds(50), clock.get());
  store.set_announce(out.get());
  auto old_info = std::make_shared<const std::string>(R"({"name":"A"})");
  auto same_text = std::make_shared<const std::string>(R"({"name":"A"})");
  auto new_info = std::make_shared<const std::string>(R"({"name":"B"})");
  store.joined("t", "a", old_info);  // announced, window opens
  store.left("t", "a");
  store.joined("t", "a", same_text);  // the same info (another copy): cancels
  store.left("t", "a");
  store.joined("t", "a", new_info);   // other info: the leave and the join both go out
  clock.run();
  ASSERT_EQ(out.got.size(), 2u);
  EXPECT_EQ(out.got[1], (std::vector<std::string>{"-t/a", "+t/a"}));
  PresenceListing l;
  store.list("t", 10, [&](PresenceListing x) { l = std::move(x); });
  ASSERT_EQ(l.users.size(), 1u);
  EXPECT_EQ(*l.users[0].info, R"({"name":"B"})");
}

TEST(PresenceTable, LeaveHandsBackTheInfoTheUserHad) {
  PresenceTable t;
  auto info = std::make_shared<const std::string>(R"({"n":1})");
  t.join("x", "u", info);
  t.join("x", "u", nullptr);
  std::shared_ptr<const std::string> got;
  EXPECT_EQ(t.leave("x", "u", &got), PresenceChange::none);
  EXPECT_EQ(got, nullptr);
  EXPECT_EQ(t.leave("x", "u", &got), PresenceChange::left);
  EXPECT_EQ(got, info);
}

TEST(PresenceMemoryCoalescing, ABatchIsAnnouncedOnceItReachesTheByteBound) {
  ManualSchedule clock;
  Batches out;
  shell::PresenceMemory store({"**"}, std::chrono::milliseconds(50), clock.get(), 1000);
  store.set_announce(out.get());
  auto info = std::make_shared<const std::string>(std::string(300, 'x'));
  store.joined("t", "first", nullptr);  // at once; the window opens
  for (int i = 0; i < 5; ++i) store.joined("t", "u" + std::to_string(i), info);
  // About 430 bytes an event: the third one pending reaches 1,000 and goes out with the two
  // before it; the other two wait for the window's end.
  ASSERT_EQ(out.got.size(), 2u);
  EXPECT_EQ(out.got[1], (std::vector<std::string>{"+t/u0", "+t/u1", "+t/u2"}));
  clock.run();
  ASSERT_EQ(out.got.size(), 3u);
  EXPECT_EQ(out.got[2], (std::vector<std::string>{"+t/u3", "+t/u4"}));
}

TEST(PresenceReply, StaysWithinItsByteBound) {
  PresenceListing l;
  for (int i = 0; i < 100; ++i)
    l.users.push_back(PresenceUser{"user-" + std::to_string(i), 1, std::make_shared<const std::string>(R"({"n":"abcdefghij"})")});
  const auto all = reply_presence("room:1", l, nullptr);
  EXPECT_FALSE(json::parse(all).at("truncated").as_bool());
  EXPECT_EQ(json::parse(all).at("users").as_array().size(), 100u);
  for (std::size_t bound : {std::size_t{200}, std::size_t{1000}, all.size() - 1}) {
    const auto capped = reply_presence("room:1", l, 7, bound);
    EXPECT_LE(capped.size(), bound);
    const auto v = json::parse(capped);
    EXPECT_TRUE(v.at("truncated").as_bool());
    EXPECT_LT(v.at("users").as_array().size(), 100u);
    EXPECT_EQ(v.at("ref").as_int64(), 7);
  }
  EXPECT_EQ(reply_presence("room:1", l, nullptr, all.size()), all);  // exactly fits: unchanged
  EXPECT_TRUE(json::parse(reply_presence("room:1", l, nullptr, all.size() - 1)).at("truncated").as_bool());
}

}  // namespace
}  // namespace boundary::realtime::core
