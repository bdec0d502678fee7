#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "boundary/realtime/identity.hpp"

using boundary::realtime::Identity;
using boundary::realtime::Roles;

TEST(Roles, EqualListsShareOneInternedCopyThatGoesWithTheLast) {
  const auto before = Roles::interned_count();
  {
    Roles a{"admin", "user"};
    Roles b(std::vector<std::string>{"admin", "user"});
    Roles c{"user", "admin"};  // order is kept: another list
    EXPECT_EQ(a, b);
    EXPECT_EQ(&a[0], &b[0]);
    EXPECT_FALSE(a == c);
    EXPECT_EQ(Roles::interned_count(), before + 2);
    EXPECT_EQ(a, (std::vector<std::string>{"admin", "user"}));
    EXPECT_EQ(a.size(), 2u);
    Roles d = a;
    Roles e = std::move(b);
    EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
    d = c;
    EXPECT_EQ(d, c);
  }
  EXPECT_EQ(Roles::interned_count(), before);
}

TEST(Roles, EmptyListsInternNothing) {
  const auto before = Roles::interned_count();
  Roles none;
  Roles from_empty(std::vector<std::string>{});
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(none, from_empty);
  EXPECT_EQ(none.begin(), none.end());
  EXPECT_EQ(Roles::interned_count(), before);
}

TEST(Roles, RolesThatDifferOnlyInHowTheyJoinStayApart) {
  Roles a{"ab", "c"};
  Roles b{"a", "bc"};
  Roles c{std::string("a\0b", 3)};
  Roles d{"a", "b"};
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(c == d);
  EXPECT_EQ(c[0].size(), 3u);
}

TEST(Roles, CopiedAndDroppedOnManyThreads) {
  const auto before = Roles::interned_count();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < 20000; ++i) {
        Roles r{"shared", std::to_string(i % 3)};
        Roles copy = r;
        Identity who{.user_id = "u", .roles = copy, .exp = {}, .iat = {}, .profile = {}};
        EXPECT_TRUE(who.has_role("shared"));
        EXPECT_EQ(who.roles[1], std::to_string(i % 3)) << t;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(Roles::interned_count(), before);
}
