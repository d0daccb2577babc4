// Planning a warm-up (primers/warm.h).
#include "primers/warm.h"

#include <gtest/gtest.h>

namespace kck {
namespace {

std::shared_ptr<const Registry> Chain() {
  auto config = ParseConfig(R"json({"primers": [
    {"name": "base", "parameters": [{"name": "a", "type": "int"}], "compute": "SELECT 1"},
    {"name": "mid", "parameters": [{"name": "a", "type": "int"}, {"name": "s", "type": "str"}], "compute": "SELECT 1",
     "depends_on": [{"primer": "base", "params": {"a": "a"}}]},
    {"name": "top", "parameters": [{"name": "x", "type": "int"}], "compute": "SELECT 1",
     "depends_on": [{"primer": "base", "params": {"x": "a"}}, {"primer": "mid", "params": {"x": "a"}}]}
  ]})json", "test");
  EXPECT_TRUE(config.ok()) << config.status().message();
  auto reg = Registry::Build(config->primers);
  EXPECT_TRUE(reg.ok()) << reg.status().message();
  return *reg;
}

TEST(Warm, DependenciesComeALevelEarlierAndEachKeyOnce) {
  auto reg = Chain();
  auto levels = PlanWarm(*reg, {{"top", {"top/1", "top/2", "top/1"}}, {"mid", {"mid/1/a%2Fb"}}});
  // top's rule on mid leaves mid's "s" open: no key of mid is implied by it.
  ASSERT_EQ(levels.size(), 3u);
  EXPECT_EQ(levels[0], (std::vector<std::string>{"base/1", "base/2"}));
  EXPECT_EQ(levels[1], (std::vector<std::string>{"mid/1/a%2Fb"}));
  EXPECT_EQ(levels[2], (std::vector<std::string>{"top/1", "top/2"}));
}

TEST(Warm, TheStatementCastsEachParameterColumn) {
  auto reg = Chain();
  EXPECT_EQ(WarmStatement(reg->Find("mid")->spec).sql,
            "SELECT DISTINCT (kck_w.\"a\")::bigint::text, (kck_w.\"s\")::text::text FROM (\n) AS kck_w");
}

}  // namespace
}  // namespace kck
