#include "listener/planner.h"

#include <gtest/gtest.h>

#include "listener/executor.h"

namespace kck {
namespace {

std::shared_ptr<const Registry> Bookstore() {
  auto config = ParseConfig(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}}],
     "augment": {"public.store_book": {"insert": "SELECT :value"}}},
    {"name": "shelf", "parameters": [{"name": "author_id", "type": "int"}, {"name": "genre", "type": "str"}],
     "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}}]},
    {"name": "stats", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT 1", "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]},
    {"name": "by_title", "parameters": [{"name": "title", "type": "str"}],
     "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"title": "title"}}]}
  ]})json", "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  auto reg = Registry::Build(config->primers);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  return *reg;
}

Change Row(long long id, char op, std::string old_json, std::string new_json) {
  return Change{id, "public.store_book", op, std::move(old_json), std::move(new_json), "100"};
}

TEST(Planner, InsertMapsToTheKeyOfTheNewRow) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'I', "", R"({"id": 7, "author_id": 5, "title": "a/b%"})")}, *reg);
  ASSERT_TRUE(plan.problems.empty());
  ASSERT_TRUE(plan.keys.count("title_list/5"));
  EXPECT_TRUE(plan.keys["title_list/5"].augmentable);
  EXPECT_TRUE(plan.keys.count("by_title/a%2Fb%25"));  // str values are escaped
  ASSERT_EQ(plan.partial.size(), 1u);                 // shelf: genre not mapped
  EXPECT_EQ(plan.partial[0].fixed[0], std::optional<std::string>("5"));
  EXPECT_FALSE(plan.partial[0].fixed[1].has_value());
}

TEST(Planner, UpdateMovingARowRefreshesBothKeysWithoutAugment) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'U', R"({"id": 7, "author_id": 1})", R"({"id": 7, "author_id": 2})")}, *reg);
  ASSERT_TRUE(plan.keys.count("title_list/1"));
  ASSERT_TRUE(plan.keys.count("title_list/2"));
  EXPECT_FALSE(plan.keys["title_list/1"].augmentable);
  EXPECT_FALSE(plan.keys["title_list/2"].augmentable);
}

TEST(Planner, CoalescesOneUnitOfWorkPerKey) {
  auto reg = Bookstore();
  std::vector<Change> changes;
  for (int i = 0; i < 100; ++i) changes.push_back(Row(i + 1, 'I', "", R"({"id": 1, "author_id": 3, "title": "t"})"));
  Plan plan = PlanChanges(changes, *reg);
  ASSERT_TRUE(plan.keys.count("title_list/3"));
  EXPECT_EQ(plan.keys.size(), 2u);  // title_list/3 and by_title/t
  EXPECT_EQ(plan.keys["title_list/3"].changes.size(), 100u);
  EXPECT_TRUE(plan.keys["title_list/3"].augmentable);
  // One change more: a single recompute is cheaper than 101 augments.
  changes.push_back(Row(101, 'I', "", R"({"id": 1, "author_id": 3, "title": "t"})"));
  plan = PlanChanges(changes, *reg);
  EXPECT_FALSE(plan.keys["title_list/3"].augmentable);
}

TEST(Planner, AugmentMaxChangesIsThePrimers) {
  auto config = ParseConfig(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}], "augment_max_changes": 2,
     "compute": "SELECT 1", "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}}],
     "augment": {"public.store_book": {"insert": "SELECT :value"}}}]})json", "test");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto reg = Registry::Build(config->primers);
  ASSERT_TRUE(reg.ok());
  std::vector<Change> changes;
  for (int i = 0; i < 2; ++i) changes.push_back(Row(i + 1, 'I', "", R"({"id": 1, "author_id": 3})"));
  EXPECT_TRUE(PlanChanges(changes, **reg).keys["title_list/3"].augmentable);
  changes.push_back(Row(3, 'I', "", R"({"id": 1, "author_id": 3})"));
  EXPECT_FALSE(PlanChanges(changes, **reg).keys["title_list/3"].augmentable);
}

// A keys rule resolves after the batch's other rules: the change it adds
// must still take its place in commit order, or augments apply out of order.
TEST(Planner, KeyChangesStayInBatchOrderWhateverOrderTheyArriveIn) {
  auto reg = Bookstore();
  Plan plan;
  const Primer* title_list = reg->Find("title_list");
  plan.AddKey("title_list/5", title_list, 7, true);
  plan.AddKey("title_list/5", title_list, 3, true);
  plan.AddKey("title_list/5", title_list, 7, true);
  plan.AddKey("title_list/5", title_list, 5, true);
  EXPECT_EQ(plan.keys["title_list/5"].changes, (std::vector<size_t>{3, 5, 7}));
}

TEST(Planner, BulkChangesAreNotAugmentable) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'I', "", R"([{"author_id": 1, "title": "x"}, {"author_id": 2, "title": "y"}])")}, *reg);
  ASSERT_TRUE(plan.keys.count("title_list/1"));
  ASSERT_TRUE(plan.keys.count("title_list/2"));
  EXPECT_FALSE(plan.keys["title_list/1"].augmentable);
}

// stats/A reads only store_book.pages (and which books A has); by_book/B
// reads the rating of a review through a keys rule that reads book_id.
std::shared_ptr<const Registry> UpdateOfConfig() {
  auto config = ParseConfig(R"json({"primers": [
    {"name": "stats", "parameters": [{"name": "author_id", "type": "int"}], "compute": "SELECT 1",
     "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}, "update_of": ["pages"]}]},
    {"name": "by_book", "parameters": [{"name": "book_id", "type": "int"}], "compute": "SELECT 1",
     "depends_on": [{"table": "public.store_book", "keys": "SELECT 'by_book/' || (:new->>'id')",
                     "columns": ["id"], "update_of": ["meta", "id"]}]},
    {"name": "count", "parameters": [{"name": "author_id", "type": "int"}], "compute": "SELECT 1",
     "depends_on": [{"table": "public.store_book", "params": {"author_id": "author_id"}, "update_of": ["author_id"]}]}
  ]})json", "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  auto reg = Registry::Build(config->primers);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  return *reg;
}

TEST(Planner, AnUpdateReachesAnUpdateOfRuleOnlyWhenItChangesOneOfItsColumns) {
  auto reg = UpdateOfConfig();
  auto plan = [&](std::string old_json, std::string new_json) {
    return PlanChanges({Row(1, 'U', std::move(old_json), std::move(new_json))}, *reg);
  };
  // The title changed: neither rule's columns did.
  Plan p = plan(R"({"id": 7, "author_id": 1, "pages": 10, "meta": {"a": [1, 2]}, "title": "x"})",
                R"({"id": 7, "author_id": 1, "pages": 10, "meta": {"a": [1, 2]}, "title": "y"})");
  EXPECT_TRUE(p.keys.empty());  // count's update_of names the column it maps: listed twice, compared once
  EXPECT_TRUE(p.keys_queries.empty());
  EXPECT_TRUE(p.problems.empty());
  // pages changed: stats; meta changed, deep inside: by_book's keys query.
  p = plan(R"({"id": 7, "author_id": 1, "pages": 10, "meta": {"a": [1, 2]}})",
           R"({"id": 7, "author_id": 1, "pages": 11, "meta": {"a": [1, 3]}})");
  EXPECT_TRUE(p.keys.count("stats/1"));
  EXPECT_EQ(p.keys_queries.size(), 1u);
  // The row moved to another author: both products, though pages did not change.
  p = plan(R"({"id": 7, "author_id": 1, "pages": 10, "meta": null})",
           R"({"id": 7, "author_id": 2, "pages": 10, "meta": null})");
  EXPECT_TRUE(p.keys.count("stats/1"));
  EXPECT_TRUE(p.keys.count("stats/2"));
  EXPECT_TRUE(p.keys.count("count/1"));
  EXPECT_TRUE(p.keys.count("count/2"));
  EXPECT_TRUE(p.keys_queries.empty());
  // A column the keys rule reads changed: its keys may differ.
  p = plan(R"({"id": 7, "author_id": 1, "pages": 10, "meta": null})",
           R"({"id": 8, "author_id": 1, "pages": 10, "meta": null})");
  EXPECT_EQ(p.keys_queries.size(), 1u);
  // Equal as numbers, not as jsonb prints them: a product may show the scale.
  p = plan(R"({"id": 7, "author_id": 1, "pages": 1.10, "meta": 0.12345678901234567891})",
           R"({"id": 7, "author_id": 1, "pages": 1.1, "meta": 0.12345678901234567892})");
  EXPECT_TRUE(p.keys.count("stats/1"));
  EXPECT_EQ(p.keys_queries.size(), 1u);
  // An image without the column (captured before update_of was added) reaches the rule.
  p = plan(R"({"id": 7, "author_id": 1})", R"({"id": 7, "author_id": 1})");
  EXPECT_TRUE(p.keys.count("stats/1"));
  EXPECT_EQ(p.keys_queries.size(), 1u);
}

TEST(Planner, UpdateOfLeavesInsertsDeletesAndBulkImagesAlone) {
  auto reg = UpdateOfConfig();
  const std::string row = R"({"id": 7, "author_id": 1, "pages": 10, "meta": null})";
  EXPECT_TRUE(PlanChanges({Row(1, 'I', "", row)}, *reg).keys.count("stats/1"));
  EXPECT_TRUE(PlanChanges({Row(1, 'D', row, "")}, *reg).keys.count("stats/1"));
  // Bulk images are not paired row by row: an UPDATE's two sides always reach the rule.
  Plan p = PlanChanges({Row(1, 'U', "[" + row + "]", "[" + row + "]")}, *reg);
  EXPECT_TRUE(p.keys.count("stats/1"));
  EXPECT_EQ(p.keys_queries.size(), 2u);
}

TEST(Planner, NullParameterNamesNoProduct) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'I', "", R"({"id": 1, "author_id": null, "title": null})")}, *reg);
  EXPECT_TRUE(plan.keys.empty());
  EXPECT_TRUE(plan.problems.empty());
}

TEST(Planner, MalformedPayloadsAreReportedNotFatal) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'I', "", "{not json"), Row(2, 'I', "", R"({"id": 1, "author_id": "five"})"),
                           Row(3, 'I', "", R"({"id": 1, "author_id": 4, "title": "ok"})")},
                          *reg);
  EXPECT_GE(plan.problems.size(), 2u);
  EXPECT_NE(plan.problems[0].find("change 1"), std::string::npos);
  EXPECT_TRUE(plan.keys.count("title_list/4"));
}

// jsonb writes numerics simdjson cannot hold (found by the planner fuzzer):
// the change still reaches every product of the table, never dropped.
TEST(Planner, ImageWithANumberBeyondSixtyFourBitsRecomputesTheTable) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'U', R"({"id": 1, "author_id": 4, "price": 100000000000000000000})",
                               R"({"id": 1, "author_id": 4, "price": 1e400})")},
                          *reg);
  ASSERT_EQ(plan.problems.size(), 1u);
  EXPECT_EQ(plan.partial.size(), 3u);
  for (const auto& m : plan.partial) {
    for (const auto& f : m.fixed) EXPECT_FALSE(f.has_value());
  }
}

TEST(Planner, TruncateTouchesEveryStoredProductOfThePrimer) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Change{1, "public.store_book", 'T', "", "", "1"}}, *reg);
  EXPECT_TRUE(plan.keys.empty());
  EXPECT_EQ(plan.partial.size(), 3u);
  for (const auto& m : plan.partial) {
    for (const auto& f : m.fixed) EXPECT_FALSE(f.has_value());
  }
}

// A capture that could not read its columns records a TRUNCATE-like change
// with the SQL error: every stored product of the table, and a warning.
TEST(Planner, DegradedCaptureRecomputesEveryProductOfTheTable) {
  auto reg = Bookstore();
  Plan plan = PlanChanges(
      {Change{1, "public.store_book", 'T', "", R"({"error": "column kck_n.author_id does not exist"})", "1"}}, *reg);
  EXPECT_TRUE(plan.problems.empty());
  EXPECT_EQ(plan.partial.size(), 3u);
  ASSERT_EQ(plan.degraded.size(), 1u);
  EXPECT_EQ(plan.degraded[0].table, "public.store_book");
  EXPECT_EQ(plan.degraded[0].error, "column kck_n.author_id does not exist");
  // TRUNCATE of kck.cache: every product of primers that depend on products.
  Plan cache = PlanChanges({Change{2, "kck.cache", 'T', "", "", "1"}}, *reg);
  ASSERT_EQ(cache.partial.size(), 1u);
  EXPECT_EQ(cache.partial[0].primer->spec.name, "stats");
  EXPECT_TRUE(cache.problems.empty());
}

// The outbox has no check on op (sql/017): an op no capture writes is read
// as a TRUNCATE of its table, and reported.
TEST(Planner, AnUnknownOpRecomputesEveryProductOfTheTableAndIsReported) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(7, 'X', "", R"({"id": 7, "author_id": 5})")}, *reg);
  EXPECT_TRUE(plan.keys.empty());
  EXPECT_EQ(plan.partial.size(), 3u);
  ASSERT_EQ(plan.problems.size(), 1u);
  EXPECT_EQ(plan.problems[0],
            "change 7 (public.store_book): unknown op 'X'; recomputing every stored product that depends on the table");
  Plan cache = PlanChanges({Change{2, "kck.cache", 'x', "", "", "1"}}, *reg);
  ASSERT_EQ(cache.partial.size(), 1u);
  EXPECT_EQ(cache.partial[0].primer->spec.name, "stats");
}

// A row image without a column a rule maps (captured before the rule
// changed, say) cannot name its products: all of them are recomputed.
TEST(Planner, ImageWithoutAMappedColumnRecomputesThePrimer) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Row(1, 'U', "", R"([{"title": "a"}, {"title": "b"}])")}, *reg);
  EXPECT_TRUE(plan.keys.count("by_title/a"));
  EXPECT_TRUE(plan.keys.count("by_title/b"));
  ASSERT_EQ(plan.partial.size(), 2u);  // title_list and shelf, once each
  for (const auto& m : plan.partial) EXPECT_FALSE(m.fixed[0].has_value());
  ASSERT_EQ(plan.degraded.size(), 2u);
  EXPECT_NE(plan.degraded[0].error.find("no column \"author_id\""), std::string::npos);
}

TEST(WarningLimiter, OnePerSubjectPerPeriod) {
  WarningLimiter limiter(std::chrono::minutes(1));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(limiter.Allow("a", t0));
  EXPECT_FALSE(limiter.Allow("a", t0 + std::chrono::seconds(59)));
  EXPECT_TRUE(limiter.Allow("b", t0 + std::chrono::seconds(1)));
  EXPECT_TRUE(limiter.Allow("a", t0 + std::chrono::seconds(61)));
}

TEST(Planner, ProductChangesCascadeToDependentPrimers) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Change{1, "kck.cache", 'U', R"({"key": "title_list/9", "primer": "title_list"})",
                                  R"({"key": "title_list/9", "primer": "title_list"})", "1"}},
                          *reg);
  EXPECT_TRUE(plan.keys.count("stats/9"));
}

TEST(Planner, RefreshRequestsForceAKeyAndRejectBadOnes) {
  auto reg = Bookstore();
  Plan plan = PlanChanges({Change{1, "kck.refresh", 'U', "", R"({"key": "title_list/3"})", "1"},
                           Change{2, "kck.refresh", 'U', "", R"({"key": "title_list/03"})", "1"},
                           Change{3, "kck.refresh", 'U', "", R"({"key": "nope/1"})", "1"}},
                          *reg);
  ASSERT_TRUE(plan.keys.count("title_list/3"));
  EXPECT_TRUE(plan.keys["title_list/3"].force);
  EXPECT_EQ(plan.keys.size(), 1u);
  EXPECT_EQ(plan.problems.size(), 2u);
}

TEST(Planner, PartialMatchAgreesOnFixedParameters) {
  PartialMatch m{nullptr, {std::string("5"), std::nullopt}, 0};
  EXPECT_TRUE(Plan::Matches(m, {"5", "poetry"}));
  EXPECT_FALSE(Plan::Matches(m, {"6", "poetry"}));
  EXPECT_FALSE(Plan::Matches(m, {"5"}));
}

TEST(Snapshot, VisibilityFollowsPgVisibleInSnapshot) {
  EXPECT_TRUE(VisibleInSnapshot("100:105:102,103", 99));
  EXPECT_TRUE(VisibleInSnapshot("100:105:102,103", 101));
  EXPECT_FALSE(VisibleInSnapshot("100:105:102,103", 102));
  EXPECT_FALSE(VisibleInSnapshot("100:105:102,103", 103));
  EXPECT_TRUE(VisibleInSnapshot("100:105:102,103", 104));
  EXPECT_FALSE(VisibleInSnapshot("100:105:102,103", 105));
  EXPECT_FALSE(VisibleInSnapshot("100:100:", 100));
  EXPECT_TRUE(VisibleInSnapshot("100:100:", 99));
}

}  // namespace
}  // namespace kck
