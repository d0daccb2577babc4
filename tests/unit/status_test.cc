#include "common/status.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

TEST(Status, CarriesKindAndContext) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::Invalid("bad key").WithContext("primer \"x\"");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.kind(), Status::Kind::kInvalid);
  EXPECT_EQ(s.message(), "primer \"x\": bad key");
}

TEST(StatusOr, HoldsValueOrError) {
  StatusOr<int> v = 3;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 3);
  StatusOr<int> e = Status::Runtime("boom");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.status().message(), "boom");
}

}  // namespace
}  // namespace kck
