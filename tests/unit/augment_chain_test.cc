// One statement for several augments of one key (primers/augment_chain.h).
#include "primers/augment_chain.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

std::shared_ptr<const Registry> Shelf() {
  auto config = ParseConfig(R"json({"primers": [
    {"name": "shelf", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT 1", "depends_on": [{"table": "public.books", "params": {"author_id": "author_id"}}],
     "augment": {"public.books": {"insert": "SELECT :value || to_jsonb(:new->>'t') || to_jsonb(:author_id) -- :value",
                                  "delete": "SELECT :value - (:old->>'t') || ':value'"}}}]})json", "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  auto reg = Registry::Build(config->primers);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  return *reg;
}

// An insert of "a", a delete of "b" and an insert of "c" into public.books.
std::vector<ChangeImage> ThreeChanges() {
  return {{"public.books", 'I', std::nullopt, R"({"t": "a"})"},
          {"public.books", 'D', R"({"t": "b"})", std::nullopt},
          {"public.books", 'I', std::nullopt, R"({"t": "c"})"}};
}

TEST(AugmentChain, EachStepReadsThePreviousValueAndBindsItsOwnRows) {
  auto reg = Shelf();
  const Primer& p = *reg->Find("shelf");
  auto s = ChainAugments(p, p.KeyValues({"7"}), ThreeChanges(), "[]");
  ASSERT_TRUE(s.ok()) << s.status().message();
  EXPECT_EQ(s->sql,
            "WITH kck_s0 AS MATERIALIZED (SELECT $1::jsonb AS v), "
            "kck_s1 AS MATERIALIZED (SELECT to_jsonb((SELECT (SELECT v FROM kck_s0) || to_jsonb($2::jsonb->>'t') || "
            "to_jsonb($3::bigint) -- :value\n)) AS v), "
            "kck_s2 AS MATERIALIZED (SELECT to_jsonb((SELECT (SELECT v FROM kck_s1) - ($4::jsonb->>'t') || ':value'\n)) AS v), "
            "kck_s3 AS MATERIALIZED (SELECT to_jsonb((SELECT (SELECT v FROM kck_s2) || to_jsonb($5::jsonb->>'t') || "
            "to_jsonb($3::bigint) -- :value\n)) AS v)\n"
            "SELECT (SELECT v FROM kck_s3)::text");
  ASSERT_EQ(s->params.size(), 5u);  // the value, each change's row, the key's parameter once
  EXPECT_EQ(s->params[0], "[]");
  EXPECT_EQ(s->params[1], R"({"t": "a"})");
  EXPECT_EQ(s->params[2], "7");
  EXPECT_EQ(s->params[3], R"({"t": "b"})");
  EXPECT_EQ(s->params[4], R"({"t": "c"})");
}

// The character (counted from 1) at which `needle` first stands in `text`.
int CharacterOf(std::string_view text, std::string_view needle) { return static_cast<int>(text.find(needle)) + 1; }

// An error in one step of the chain is placed in that step's augment SQL
// as written.
TEST(AugmentChain, ErrorPositionsAreToldInTheAugmentSqlOfTheirStep) {
  auto reg = Shelf();
  const Primer& p = *reg->Find("shelf");
  auto s = ChainAugments(p, p.KeyValues({"7"}), ThreeChanges(), "[]");
  ASSERT_TRUE(s.ok()) << s.status().message();
  const auto placed = [&](std::string_view needle) {
    Status error = Status::Runtime("failed").AtPosition(CharacterOf(s->sql, needle));
    return InUserSql(error, s->sql, s->origins).position();
  };
  EXPECT_EQ(placed("$5::jsonb->>'t'"), 27);  // :new of the third step's insert SQL
  EXPECT_EQ(placed("->>'t') || ':value'"), 22);  // the delete SQL, after its :old
  EXPECT_EQ(placed("kck_s3 AS"), 0);            // kck's wrapping
}

TEST(AugmentChain, AChangeWithoutAugmentIsAnError) {
  auto reg = Shelf();
  const Primer& p = *reg->Find("shelf");
  auto s = ChainAugments(p, p.KeyValues({"7"}), {{"public.books", 'U', "{}", "{}"}}, "[]");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("primer \"shelf\" has no augment for public.books"), std::string::npos);
}

}  // namespace
}  // namespace kck
