#include "core/topic.hpp"

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {

Identity user(std::string id, std::vector<std::string> roles = {}) {
  Identity who;
  who.user_id = std::move(id);
  who.roles = std::move(roles);
  return who;
}

// ---------------------------------------------------------------------------------------------
// is_valid_topic

TEST(TopicName, LengthLimitIs256Bytes) {
  EXPECT_TRUE(is_valid_topic("a"));
  EXPECT_TRUE(is_valid_topic(std::string(256, 'a')));
  EXPECT_FALSE(is_valid_topic(std::string(257, 'a')));
  EXPECT_FALSE(is_valid_topic(""));
}

TEST(TopicName, LimitCountsBytesNotCharacters) {
  std::string e_acute;
  for (int i = 0; i < 128; ++i) e_acute += "\xC3\xA9";  // 128 characters, 256 bytes
  EXPECT_TRUE(is_valid_topic(e_acute));
  EXPECT_FALSE(is_valid_topic(e_acute + "\xC3\xA9"));   // 129 characters, 258 bytes
}

TEST(TopicName, AsciiWhitespaceIsRefused) {
  for (const char* t : {"a b", " a", "a ", "a\tb", "a\nb", "a\rb", "a\vb", "a\fb"})
    EXPECT_FALSE(is_valid_topic(t)) << t;
}

TEST(TopicName, ControlCharactersAreRefused) {
  EXPECT_FALSE(is_valid_topic(std::string("a\0b", 3)));
  EXPECT_FALSE(is_valid_topic("a\x01" "b"));
  EXPECT_FALSE(is_valid_topic("a\x1F" "b"));
  EXPECT_FALSE(is_valid_topic("a\x7F" "b"));
  EXPECT_FALSE(is_valid_topic("a\xC2\x85" "b"));  // U+0085 NEL, a C1 control
  EXPECT_FALSE(is_valid_topic("a\xC2\x9F" "b"));  // U+009F, a C1 control
}

TEST(TopicName, UnicodeWhitespaceIsRefused) {
  EXPECT_FALSE(is_valid_topic("a\xC2\xA0" "b"));      // U+00A0 no-break space
  EXPECT_FALSE(is_valid_topic("a\xE2\x80\x83" "b"));  // U+2003 em space
  EXPECT_FALSE(is_valid_topic("a\xE2\x80\xA8" "b"));  // U+2028 line separator
  EXPECT_FALSE(is_valid_topic("a\xE3\x80\x80" "b"));  // U+3000 ideographic space
}

TEST(TopicName, InvalidUtf8IsRefused) {
  EXPECT_FALSE(is_valid_topic("a\xFF"));            // never valid in UTF-8
  EXPECT_FALSE(is_valid_topic("a\xC3"));            // truncated sequence
  EXPECT_FALSE(is_valid_topic("\xC0\xAF"));         // overlong '/'
  EXPECT_FALSE(is_valid_topic("\xED\xA0\x80"));     // UTF-16 surrogate
  EXPECT_FALSE(is_valid_topic("\xF4\x90\x80\x80")); // above U+10FFFF
  EXPECT_FALSE(is_valid_topic("\x80"));             // lone continuation byte
}

TEST(TopicName, PrintableUnicodeIsAccepted) {
  EXPECT_TRUE(is_valid_topic("chat:caf\xC3\xA9"));
  EXPECT_TRUE(is_valid_topic("\xE2\x98\x95:\xF0\x9F\x98\x80"));  // U+2615, U+1F600
  EXPECT_TRUE(is_valid_topic("order:123"));
  EXPECT_TRUE(is_valid_topic("a:b:c-d_e.f/g~"));
}

// ---------------------------------------------------------------------------------------------
// check_subscribe

TEST(SubscribePolicy, OrdinaryTopicsAreOpenToEveryone) {
  EXPECT_EQ(check_subscribe(user("42"), "order:123"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("42"), "chat:general"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("42"), "users:7"), std::nullopt);   // not the user: prefix
  EXPECT_EQ(check_subscribe(user("42"), "roles:ops"), std::nullopt); // not the role: prefix
}

TEST(SubscribePolicy, UserTopicIsOnlyForThatUser) {
  EXPECT_EQ(check_subscribe(user("42"), "user:42"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("42"), "user:42:inbox"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("42"), "user:42:inbox:unread"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("7"), "user:42"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("7"), "user:42:inbox"), CommandErrorCode::forbidden);
}

TEST(SubscribePolicy, UserIdMustMatchWholeSegment) {
  EXPECT_EQ(check_subscribe(user("42"), "user:420"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("42"), "user:4"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("420"), "user:42"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("42"), "user:"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("42"), "user::inbox"), CommandErrorCode::forbidden);
}

TEST(SubscribePolicy, IdsWithColonsOwnTheirWholeIdTopics) {
  EXPECT_EQ(check_subscribe(user("a:b"), "user:a:b"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("a:b"), "user:a:b:inbox"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("a:b"), "user:a:bc"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("a:b"), "user:a"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("a:b"), "user:a:c"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("1", {"ops:eu"}), "role:ops:eu"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("1", {"ops:eu"}), "role:ops:us"), CommandErrorCode::forbidden);
  // The contract's `user:<id>:...` still gives `user:a:b` to `a` too: the documented limit.
  EXPECT_EQ(check_subscribe(user("a"), "user:a:b"), std::nullopt);
}

TEST(SubscribePolicy, LookAlikeIdsOwnNothingOfEachOther) {
  EXPECT_EQ(check_subscribe(user("alice"), "user:Alice"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("e\xCC\x81"), "user:\xC3\xA9"), CommandErrorCode::forbidden);  // NFD vs NFC
  EXPECT_EQ(check_subscribe(user("\xC3\xA9"), "user:e\xCC\x81"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("alice"), "user:alice\xE2\x80\x8B"), CommandErrorCode::forbidden);  // ZWSP
  EXPECT_EQ(check_subscribe(user("1", {"admin"}), "role:Admin"), CommandErrorCode::forbidden);
}

TEST(SubscribePolicy, RoleTopicIsOnlyForHoldersOfThatRole) {
  EXPECT_EQ(check_subscribe(user("1", {"user", "admin"}), "role:admin"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("1", {"admin"}), "role:admin:alerts"), std::nullopt);
  EXPECT_EQ(check_subscribe(user("1", {"user"}), "role:admin"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("1"), "role:admin:alerts"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("1", {"admin"}), "role:admins"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("1", {"admin"}), "role:adm"), CommandErrorCode::forbidden);
  EXPECT_EQ(check_subscribe(user("1", {"admin"}), "role:"), CommandErrorCode::forbidden);
}

TEST(SubscribePolicy, InvalidTopicIsReportedBeforePolicy) {
  EXPECT_EQ(check_subscribe(user("42"), "user:7 x"), CommandErrorCode::invalid_topic);
  EXPECT_EQ(check_subscribe(user("42"), ""), CommandErrorCode::invalid_topic);
  EXPECT_EQ(check_subscribe(user("42"), std::string(257, 'a')), CommandErrorCode::invalid_topic);
}

// ---------------------------------------------------------------------------------------------
// TopicPatterns

TEST(TopicPatterns, NoPatternsAllowNothing) {
  TopicPatterns none;
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.allows("chat:general"));
  EXPECT_FALSE(TopicPatterns(std::vector<std::string>{}).allows("a"));
}

TEST(TopicPatterns, ExactPatternMatchesOnlyItself) {
  TopicPatterns p({"chat:general"});
  EXPECT_FALSE(p.empty());
  EXPECT_TRUE(p.allows("chat:general"));
  EXPECT_FALSE(p.allows("chat:general:x"));
  EXPECT_FALSE(p.allows("chat"));
  EXPECT_FALSE(p.allows("chat:generalx"));
  EXPECT_FALSE(p.allows("Chat:general"));
}

TEST(TopicPatterns, StarMatchesExactlyOneSegment) {
  TopicPatterns p({"chat:*"});
  EXPECT_TRUE(p.allows("chat:general"));
  EXPECT_TRUE(p.allows("chat:x"));
  EXPECT_FALSE(p.allows("chat"));
  EXPECT_FALSE(p.allows("chat:a:b"));
  EXPECT_FALSE(p.allows("news:general"));
}

TEST(TopicPatterns, StarInTheMiddle) {
  TopicPatterns p({"game:*:moves"});
  EXPECT_TRUE(p.allows("game:17:moves"));
  EXPECT_FALSE(p.allows("game:17:chat"));
  EXPECT_FALSE(p.allows("game:17:18:moves"));
}

TEST(TopicPatterns, DoubleStarMatchesTheRest) {
  TopicPatterns p({"chat:**"});
  EXPECT_TRUE(p.allows("chat:a"));
  EXPECT_TRUE(p.allows("chat:a:b:c"));
  EXPECT_FALSE(p.allows("chat"));
  EXPECT_FALSE(p.allows("news:a"));
  EXPECT_TRUE(TopicPatterns({"**"}).allows("anything:at:all"));
}

TEST(TopicPatterns, WildcardsNeverMatchEmptySegments) {
  EXPECT_FALSE(TopicPatterns({"chat:*"}).allows("chat:"));
  EXPECT_FALSE(TopicPatterns({"*:x"}).allows(":x"));
  EXPECT_FALSE(TopicPatterns({"chat:**"}).allows("chat:"));
  EXPECT_FALSE(TopicPatterns({"chat:**"}).allows("chat::x"));
  EXPECT_FALSE(TopicPatterns({"chat:**"}).allows("chat:x:"));
}

TEST(TopicPatterns, LiteralEmptySegmentMatchesLiterally) {
  TopicPatterns p({"a::b"});
  EXPECT_TRUE(p.allows("a::b"));
  EXPECT_FALSE(p.allows("a:x:b"));
}

TEST(TopicPatterns, AnyOfSeveralPatternsAllows) {
  TopicPatterns p({"chat:*", "game:**"});
  EXPECT_TRUE(p.allows("chat:x"));
  EXPECT_TRUE(p.allows("game:1:2"));
  EXPECT_FALSE(p.allows("news:x"));
}

TEST(TopicPatterns, DoubleStarNotLastIsRefused) {
  EXPECT_THROW(TopicPatterns({"a:**:b"}), std::invalid_argument);
  EXPECT_THROW(TopicPatterns({"**:b"}), std::invalid_argument);
  EXPECT_THROW(TopicPatterns({"ok:*", "**:x"}), std::invalid_argument);
}

TEST(TopicPatterns, EmptyPatternIsRefused) {
  EXPECT_THROW(TopicPatterns({""}), std::invalid_argument);
}

TEST(SplitList, TrimsSpacesAndDropsEmptyItems) {
  EXPECT_EQ(split_list(" chat:*, game:** ,,news "), (std::vector<std::string>{"chat:*", "game:**", "news"}));
  EXPECT_TRUE(split_list("").empty());
  EXPECT_TRUE(split_list(" , ").empty());
}

}  // namespace
}  // namespace boundary::realtime::core
