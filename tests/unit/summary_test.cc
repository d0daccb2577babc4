// The last minute a daemon publishes for kck status (listener/summary.h).
#include "listener/summary.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace kck {
namespace {

BatchStats Batch(size_t changes, size_t keys, size_t augmented) {
  BatchStats s;
  s.changes = changes;
  s.keys = keys;
  s.augmented = augmented;
  return s;
}

TEST(Summary, TheLastMinuteCountsWhatItHoldsAndForgetsWhatLeftIt) {
  Summary s;
  EXPECT_FALSE(s.changed());
  s.AddBatch(Batch(10, 4, 3), std::chrono::milliseconds(1));
  EXPECT_TRUE(s.changed());
  auto j = nlohmann::json::parse(s.Published());
  EXPECT_FALSE(s.changed());
  EXPECT_EQ(j["changes"], 10);
  EXPECT_EQ(j["products"], 4);
  EXPECT_EQ(j["augmented"], 3);
  EXPECT_EQ(j["window_s"], 1);
  s.Tick();
  s.AddBatch(Batch(5, 1, 0), std::chrono::milliseconds(1));
  j = nlohmann::json::parse(s.Published());
  EXPECT_EQ(j["changes"], 15);
  EXPECT_EQ(j["window_s"], 1);
  // While the minute holds work, every tick makes it out of date.
  for (int i = 0; i < 58; ++i) s.Tick();
  EXPECT_TRUE(s.changed());
  j = nlohmann::json::parse(s.Published());
  EXPECT_EQ(j["changes"], 15);
  EXPECT_EQ(j["window_s"], 59);
  s.Tick();  // the first second leaves the minute
  j = nlohmann::json::parse(s.Published());
  EXPECT_EQ(j["changes"], 5);
  EXPECT_EQ(j["window_s"], 60);
  s.Tick();  // and the second
  EXPECT_TRUE(s.changed());
  j = nlohmann::json::parse(s.Published());
  EXPECT_EQ(j["changes"], 0);
  // An idle minute is published once, then not again.
  s.Tick();
  EXPECT_FALSE(s.changed());
}

}  // namespace
}  // namespace kck
