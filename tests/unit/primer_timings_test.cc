#include "listener/primer_timings.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

// A chain's time from two timed lengths: linear when each change costs the
// same, flat when the chain costs once (a large value rewritten once per
// chain), unknown until two lengths were timed.
TEST(PrimerTimings, AChainsTimeIsToldFromTwoTimedLengths) {
  EXPECT_DOUBLE_EQ(EstimatedChainMs(1, 0.1, 2, 0.2, 30), 3.0);
  EXPECT_DOUBLE_EQ(EstimatedChainMs(3, 0.3, 12, 1.2, 30), 3.0);
  EXPECT_DOUBLE_EQ(EstimatedChainMs(1, 35, 5, 36, 5), 36);
  EXPECT_DOUBLE_EQ(EstimatedChainMs(1, 35, 5, 30, 20), 35);  // a faster long chain adds nothing per change
  EXPECT_DOUBLE_EQ(EstimatedChainMs(4, 0.4, 8, 0.8, 2), 0.2);
  EXPECT_LT(EstimatedChainMs(0, 0, 0, 0, 30), 0);
  EXPECT_LT(EstimatedChainMs(3, 0.3, 3, 0.3, 30), 0);
}

TEST(PrimerTimings, ChainsAreEstimatedOnceTwoLengthsAreTimed) {
  PrimerTimings t;
  EXPECT_FALSE(t.ChainMs("p", 5));
  t.Augmented("p", 20, 1);
  EXPECT_FALSE(t.ChainMs("p", 5));
  t.Augmented("p", 40, 2);
  EXPECT_DOUBLE_EQ(*t.ChainMs("p", 5), 100);
  EXPECT_DOUBLE_EQ(*t.augment_ms("p"), 40);
  EXPECT_FALSE(t.compute_ms("p"));
  EXPECT_FALSE(t.ChainMs("other", 5));
}

TEST(PrimerTimings, WhatWasPublishedIsRestoredAsItWasTimed) {
  PrimerTimings a;
  a.Augmented("p", 20, 1);
  a.Augmented("p", 40, 2);
  a.Computed("p", 3);
  a.Computed("q", 7);
  auto published = a.TakeChanged();
  ASSERT_TRUE(published);
  EXPECT_EQ(published->size(), 2u);
  EXPECT_FALSE(a.TakeChanged());  // nothing timed since
  PrimerTimings b;
  ASSERT_TRUE(b.Restore("p", (*published)["p"]));
  ASSERT_TRUE(b.Restore("q", (*published)["q"]));
  EXPECT_DOUBLE_EQ(*b.ChainMs("p", 5), 100);
  EXPECT_DOUBLE_EQ(*b.compute_ms("p"), 3);
  EXPECT_DOUBLE_EQ(*b.augment_ms("p"), 40);
  EXPECT_DOUBLE_EQ(*b.compute_ms("q"), 7);
  EXPECT_FALSE(b.augment_ms("q"));
  EXPECT_FALSE(b.TakeChanged());  // restored, not timed
}

TEST(PrimerTimings, StoredComputeTimesFillOnlyWhatIsNotKnown) {
  PrimerTimings t;
  ASSERT_TRUE(t.Restore("p", nlohmann::json::parse(R"({"compute_ms": 280})")));
  t.SeedFromStored("p", 1.5, true);  // a stored compute_ms that was an augment's
  EXPECT_DOUBLE_EQ(*t.compute_ms("p"), 280);
  EXPECT_DOUBLE_EQ(*t.augment_ms("p"), 1.5);
  t.SeedFromStored("q", 2, false);
  EXPECT_DOUBLE_EQ(*t.compute_ms("q"), 2);
  EXPECT_FALSE(t.augment_ms("q"));
}

TEST(PrimerTimings, PublishedTimingsOfAnotherFormAreNotTaken) {
  for (const char* text : {R"("fast")", "[1, 2]", "{}", R"({"compute_ms": "3"})", R"({"compute_ms": -1})",
                           R"({"short_n": 1, "short_ms": 2, "long_n": 0, "long_ms": 4})",
                           R"({"short_n": 3, "short_ms": 2, "long_n": 2, "long_ms": 4})",
                           R"({"short_n": 1.5, "short_ms": 2, "long_n": 2, "long_ms": 4})",
                           R"({"compute_ms": 3, "short_n": 1})"}) {
    PrimerTimings t;
    t.Computed("p", 9);
    EXPECT_FALSE(t.Restore("p", nlohmann::json::parse(text))) << text;
    EXPECT_DOUBLE_EQ(*t.compute_ms("p"), 9) << text;
    EXPECT_FALSE(t.ChainMs("p", 5)) << text;
  }
}

// A daemon whose primers load again (after a lost connection) keeps what it
// timed over what another daemon published.
TEST(PrimerTimings, WhatThisDaemonTimedIsKeptOverWhatWasPublished) {
  PrimerTimings t;
  t.Computed("p", 9);
  EXPECT_TRUE(t.Restore("p", nlohmann::json::parse(R"({"compute_ms": 280})")));
  EXPECT_TRUE(t.Restore("q", nlohmann::json::parse(R"({"compute_ms": 280})")));
  EXPECT_DOUBLE_EQ(*t.compute_ms("p"), 9);
  EXPECT_DOUBLE_EQ(*t.compute_ms("q"), 280);
}

// A publish that failed (a lost connection) goes again with the next one,
// with the primers' times as they are then.
TEST(PrimerTimings, WhatFailedToPublishIsInTheNextPublish) {
  PrimerTimings t;
  t.Computed("p", 3);
  t.Augmented("q", 20, 1);
  auto taken = t.TakeChanged();
  ASSERT_TRUE(taken);
  t.Computed("p", 4);
  t.PublishFailed(*taken);
  auto again = t.TakeChanged();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->size(), 2u);
  EXPECT_DOUBLE_EQ((*again)["p"]["compute_ms"].get<double>(), 4);
  EXPECT_DOUBLE_EQ((*again)["q"]["augment_ms"].get<double>(), 20);
  EXPECT_FALSE(t.TakeChanged());
  t.Clear();  // the primers changed meanwhile: nothing of theirs is published
  t.PublishFailed(*again);
  EXPECT_FALSE(t.TakeChanged());
}

}  // namespace
}  // namespace kck
