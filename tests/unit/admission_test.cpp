#include "core/admission.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

namespace boundary::realtime::core {
namespace {

std::string error_of(const AdmissionRefusal& r) {
  return std::string(boost::json::parse(r.http.body).as_object().at("error").as_string());
}

TEST(DecideAdmission, UnlimitedByDefaultAdmitsAnyCount) {
  EXPECT_EQ(decide_admission({1000000, 1000000}, {}), std::nullopt);
}

TEST(DecideAdmission, BelowBothLimitsAdmits) {
  EXPECT_EQ(decide_admission({9, 2}, {10, 3}), std::nullopt);
}

TEST(DecideAdmission, NodeFullIs503TooManyConnections) {
  auto r = decide_admission({10, 0}, {10, 0});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, RefusalReason::max_connections);
  EXPECT_EQ(r->http.status, 503u);
  EXPECT_EQ(error_of(*r), "too many connections");
}

TEST(DecideAdmission, UserAtLimitIs429) {
  auto r = decide_admission({5, 3}, {0, 3});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->reason, RefusalReason::max_connections_per_user);
  EXPECT_EQ(r->http.status, 429u);
  EXPECT_EQ(error_of(*r), "too many connections for this user");
}

TEST(DecideAdmission, NodeLimitWinsWhenBothAreReached) {
  auto r = decide_admission({4, 4}, {4, 4});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->http.status, 503u);
}

TEST(DecideAdmission, ALimitOfOneAdmitsExactlyOne) {
  EXPECT_EQ(decide_admission({0, 0}, {1, 1}), std::nullopt);
  EXPECT_TRUE(decide_admission({1, 0}, {1, 0}));
  EXPECT_TRUE(decide_admission({0, 1}, {0, 1}));
}

TEST(RefusalReason, NamesAreTheMetricLabels) {
  EXPECT_EQ(to_string(RefusalReason::max_connections), "max-connections");
  EXPECT_EQ(to_string(RefusalReason::max_connections_per_user), "max-connections-per-user");
  EXPECT_EQ(to_string(RefusalReason::unauthorized), "unauthorized");
  EXPECT_EQ(to_string(RefusalReason::origin), "origin");
  EXPECT_EQ(to_string(RefusalReason::shutting_down), "shutting-down");
  EXPECT_EQ(to_string(RefusalReason::application), "application");
  EXPECT_EQ(to_string(RefusalReason::bad_request), "bad-request");
  EXPECT_EQ(static_cast<std::size_t>(RefusalReason::bad_request) + 1, refusal_reason_count);
}

}  // namespace
}  // namespace boundary::realtime::core
