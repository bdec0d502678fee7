// The strict JSON reader every outside JSON text goes through (parse_util.hpp).

#include "core/parse_util.hpp"

#include <string>

#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {

JsonProblem problem_of(std::string_view text) { return parse_strict_json(text).problem; }

TEST(ParseStrictJson, AcceptsObjectsArraysAndScalarsWithDistinctKeys) {
  EXPECT_EQ(problem_of(R"({"a":1,"b":{"a":2,"b":[{"a":3},{"a":4}]}})"), JsonProblem::none);
  EXPECT_EQ(problem_of(R"([{"a":1},{"a":1},[],{}])"), JsonProblem::none);
  EXPECT_EQ(problem_of("42"), JsonProblem::none);
  EXPECT_EQ(problem_of(R"("{\"a\":1,\"a\":2}")"), JsonProblem::none);  // a string, not an object
  auto parsed = parse_strict_json(R"({"x":{"y":[1,{"z":true}]}})");
  ASSERT_TRUE(parsed.value.is_object());
  EXPECT_TRUE(parsed.value.at("x").at("y").at(1).at("z").as_bool());
}

TEST(ParseStrictJson, RefusesAKeyTwiceAtAnyDepth) {
  for (const char* text : {R"({"a":1,"a":2})", R"({"a":1,"b":2,"a":1})", R"({"o":{"k":1,"k":{"x":1}}})",
                           R"([1,[{"k":[],"k":[]}]])", R"({"a":{"b":1},"a":{"c":1}})",
                           R"({"topic":"a","topic":"user:other"})"}) {
    auto parsed = parse_strict_json(text);
    EXPECT_EQ(parsed.problem, JsonProblem::duplicate_key) << text;
    EXPECT_TRUE(parsed.value.is_null()) << text;
  }
}

TEST(ParseStrictJson, KeysThatDifferOnlyInEscapingAreTheSameKey) {
  EXPECT_EQ(problem_of(R"({"alg":"HS256","\u0061lg":"none"})"), JsonProblem::duplicate_key);
  // Different code points stay different keys (no Unicode normalization).
  EXPECT_EQ(problem_of("{\"\xC3\xA9\":1,\"e\xCC\x81\":2}"), JsonProblem::none);
}

TEST(ParseStrictJson, InvalidJsonIsInvalid) {
  for (const char* text : {"", "{", R"({"a":1,})", "[1,]", "nul", "{\"a\":\"\xC0\xAF\"}", R"({"a":"\ud800"})"})
    EXPECT_EQ(problem_of(text), JsonProblem::invalid) << text;
}

TEST(ParseStrictJson, DeepNestingIsRefusedWithoutExhaustingTheStack) {
  EXPECT_EQ(problem_of(std::string(100'000, '[')), JsonProblem::invalid);
  EXPECT_EQ(problem_of(std::string(100'000, '[') + std::string(100'000, ']')), JsonProblem::invalid);
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += "{\"a\":";
  EXPECT_EQ(problem_of(objects), JsonProblem::invalid);
  EXPECT_EQ(problem_of(std::string(32, '[') + std::string(32, ']')), JsonProblem::none);
}

}  // namespace
}  // namespace boundary::realtime::core
