#include "primers/config.h"

#include <gtest/gtest.h>

#include "primers/registry.h"
#include "primers/sql_params.h"

namespace kck {
namespace {

std::string One(const std::string& primer_fields) {
  return R"({"primers": [{"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}], )" +
         primer_fields + "}]}";
}

void ExpectError(const std::string& json, const std::string& fragment) {
  auto c = ParseConfig(json, "primers.json");
  ASSERT_FALSE(c.ok()) << json;
  EXPECT_EQ(c.status().kind(), Status::Kind::kInvalid);
  EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status().message();
  EXPECT_EQ(c.status().message().find('\n'), std::string::npos) << "errors are one line";
}

TEST(Config, ParsesTheDesignExample) {
  auto c = ParseConfig(One(R"("compute": "SELECT 1 WHERE :author_id > 0",
    "depends_on": [{"table": "books", "params": {"author_id": "author_id"}}],
    "augment": {"books": {"insert": "SELECT :value"}}, "augment_max_changes": 20, "warm": "SELECT 1 AS author_id", "warm_every": "1h", "refresh_every": "10m", "soft_expire": "1m", "hard_expire": "1h")"),
                       "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  ASSERT_EQ(c->primers.size(), 1u);
  const PrimerSpec& p = c->primers[0];
  EXPECT_EQ(p.refresh_every->count(), 600);
  EXPECT_EQ(p.augment.at("books").insert_sql, "SELECT :value");
  EXPECT_EQ(p.augment_max_changes, 20u);
  EXPECT_EQ(p.warm, "SELECT 1 AS author_id");
  EXPECT_EQ(p.warm_every->count(), 3600);
  // Round trip through the registry form.
  auto back = ParsePrimer(PrimerToJson(p));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(PrimerToJson(*back), PrimerToJson(p));
}

TEST(Config, CaptureIsAutoCOrPlpgsql) {
  auto c = ParseConfig(R"({"capture": "c", "capture_library": "/opt/kck/kck_capture.so", "primers": []})", "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->capture, "c");
  EXPECT_EQ(c->capture_library, "/opt/kck/kck_capture.so");
  c = ParseConfig(R"({"primers": []})", "primers.json");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->capture, "");  // kck install takes $KCK_CAPTURE, else "auto"
  ExpectError(R"({"capture": "fast", "primers": []})",
              "primers.json: capture: expected \"auto\", \"c\" or \"plpgsql\", got \"fast\"");
  ExpectError(R"({"capture": true, "primers": []})", "primers.json: field \"capture\" must be a string");
}

TEST(Config, APythonPrimersWarmIsAFlag) {
  auto c = ParseConfig(One(R"("engine": "python", "warm": true, "warm_every": "1h")"), "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_TRUE(c->primers[0].python_warm);
  EXPECT_TRUE(c->primers[0].Warms());
  auto back = ParsePrimer(PrimerToJson(c->primers[0]));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->python_warm);
  EXPECT_EQ(back->warm_every->count(), 3600);
}

TEST(Config, RejectsWithTheNameOfThePrimerAndField) {
  ExpectError("{", "primers.json: not valid JSON");
  ExpectError(R"({"primer": []})", "unknown field \"primer\"");
  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"table": "b", "params": {"writer": "author_id"}}])"),
              "primer \"title_list\": depends_on[0]: params: unknown parameter \"writer\"");
  ExpectError(One(R"("compute": "SELECT 1", "refresh_every": "10 minutes")"), "refresh_every: period \"10 minutes\"");
  ExpectError(One(R"("compute": "SELECT 1", "soft_expire": "1h", "hard_expire": "1m")"), "soft_expire is longer");
  ExpectError(One(R"("compute": 5)"), "field \"compute\" must be a string");
  ExpectError(One(R"("compute": "SELECT 1", "augment_max_changes": 0)"),
              "primer \"title_list\": field \"augment_max_changes\" must be an integer from 1 to 1000000");
  ExpectError(One(R"("compute": "SELECT 1", "augment_max_changes": "5")"), "augment_max_changes");
  ExpectError(One(R"("compute": "SELECT 1", "warm_every": "1h")"), "primer \"title_list\": warm_every needs \"warm\"");
  ExpectError(One(R"("compute": "SELECT 1", "warm": 5)"), "field \"warm\" must be a string");
  ExpectError(One(R"("engine": "python", "warm": "SELECT 1 AS author_id")"), "warm: a python primer says true or false");
  ExpectError(One(R"("compute": "SELECT 1", "colour": "red")"), "unknown field \"colour\"");
  ExpectError(R"({"primers": [{"name": "Bad-Name", "compute": "SELECT 1"}]})", "Bad-Name");
  ExpectError(R"({"primers": [{"name": "a", "parameters": [{"name": "x", "type": "float"}], "compute": "SELECT 1"}]})",
              "parameter \"x\"");
  ExpectError(R"({"primers": [{"name": "a", "compute": "SELECT 1"}, {"name": "a", "compute": "SELECT 2"}]})",
              "duplicate primer name \"a\"");
  ExpectError(One(R"("compute": "SELECT 1", "augment": {"books": {"insert": "SELECT :value"}})"),
              "augment: table \"books\" is not in depends_on");
  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"primer": "nope", "params": {}}])"),
              "unknown primer \"nope\"");
  ExpectError(R"({"primers": [
      {"name": "a", "compute": "SELECT 1", "depends_on": [{"primer": "b"}]},
      {"name": "b", "compute": "SELECT 1", "depends_on": [{"primer": "a"}]}]})",
              "cycle");
}

TEST(Config, UpdateOfIsAListOfColumnsOfATableRule) {
  auto c = ParseConfig(One(R"("compute": "SELECT 1", "depends_on": [
      {"table": "b", "params": {"author_id": "author_id"}, "update_of": ["pages", "author_id"]},
      {"table": "r", "keys": "SELECT 'title_list/1'", "columns": ["book_id"], "update_of": ["rating"]}])"),
                       "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  const auto& rules = c->primers[0].depends_on;
  EXPECT_EQ(rules[0].update_of, (std::vector<std::string>{"pages", "author_id"}));
  EXPECT_EQ(rules[1].update_of, (std::vector<std::string>{"rating"}));
  auto back = ParsePrimer(PrimerToJson(c->primers[0]));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->depends_on[0].update_of, rules[0].update_of);

  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"table": "b", "params": {}, "update_of": []}])"),
              "primer \"title_list\": depends_on[0]: field \"update_of\" must name at least one column");
  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"table": "b", "params": {}, "update_of": "pages"}])"),
              "field \"update_of\" must be an array of column names");
  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"table": "b", "params": {}, "update_of": [""]}])"),
              "field \"update_of\" must be an array of column names");
  ExpectError(R"({"primers": [{"name": "a", "compute": "SELECT 1"},
      {"name": "b", "compute": "SELECT 1", "depends_on": [{"primer": "a", "params": {}, "update_of": ["x"]}]}]})",
              "\"update_of\" is for table rules");
  ExpectError(One(R"("compute": "SELECT 1", "depends_on": [{"table": "r", "keys": "SELECT 'x'", "update_of": ["x"]}])"),
              "primer \"title_list\": depends_on[0]: \"update_of\" on a keys rule needs \"columns\"");
}

// Found by tests/fuzz/config_fuzz (corpus/config/regress_number_overflow):
// nlohmann::json throws out_of_range, not parse_error, on such numbers.
TEST(Config, NumbersOutOfRangeAreInvalidNotThrown) {
  ExpectError("2e308", "primers.json: not valid JSON: ");
  ExpectError(One(R"("compute": "SELECT 1", "refresh_every": -1e999)"), "number overflow");
}

// Found by tests/fuzz/config_fuzz (corpus/config/regress_params_rule_columns):
// the registry form dropped the columns of a table rule with params.
TEST(Config, ParamsRuleColumnsSurviveTheRegistryForm) {
  auto c = ParseConfig(One(R"("compute": "SELECT 1",
    "depends_on": [{"table": "books", "params": {"author_id": "author_id"}, "columns": ["title", "genre"]}])"),
                       "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto back = ParsePrimer(PrimerToJson(c->primers[0]));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->depends_on.size(), 1u);
  EXPECT_EQ(back->depends_on[0].kind, DependsRule::Kind::kTableParams);
  EXPECT_EQ(back->depends_on[0].columns, (std::vector<std::string>{"title", "genre"}));
}

TEST(Config, PlaceholdersMustBeDeclared) {
  auto c = ParseConfig(One(R"("compute": "SELECT :writer")"), "primers.json");
  ASSERT_TRUE(c.ok());
  auto reg = Registry::Build(c->primers);
  ASSERT_FALSE(reg.ok());
  EXPECT_NE(reg.status().message().find("primer \"title_list\": compute: unknown parameter :writer"),
            std::string::npos)
      << reg.status().message();
}

TEST(SqlParams, BindsNamesAndSkipsLiteralsCastsAndComments) {
  auto b = BindNamedParams(
      "SELECT ':author_id', \":author_id\", x::text, $$ :author_id $$, E'\\' :author_id' -- :author_id\n"
      "/* :author_id */ FROM t WHERE a = :author_id AND b = :name AND c = :author_id",
      {{"author_id", "bigint"}, {"name", "text"}});
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(b->order, (std::vector<std::string>{"author_id", "name"}));
  EXPECT_NE(b->sql.find("a = ($1::bigint) AND b = ($2::text) AND c = ($1::bigint)"), std::string::npos) << b->sql;
  EXPECT_NE(b->sql.find("':author_id'"), std::string::npos);
  EXPECT_NE(b->sql.find("x::text"), std::string::npos);
  EXPECT_NE(b->sql.find("/* :author_id */"), std::string::npos);
}

TEST(Registry, ClientComputeIsPyformatWithTheDaemonsPlaceholders) {
  auto c = ParseConfig(One(R"("compute": "SELECT count(*) FROM t WHERE a = :author_id AND b LIKE 'x%' AND c = ':author_id' AND d = 7 % 2 AND e::text = :author_id::text;")"),
                       "primers.json");
  ASSERT_TRUE(c.ok()) << c.status().message();
  auto sql = ClientComputeStatement(c->primers[0]);
  ASSERT_TRUE(sql.ok()) << sql.status().message();
  EXPECT_EQ(*sql,
            "SELECT to_jsonb(kck_r.kck_value)::text AS value FROM (SELECT count(*) FROM t WHERE a = "
            "(%(author_id)s::bigint) AND b LIKE 'x%%' AND c = ':author_id' AND d = 7 %% 2 AND e::text = "
            "(%(author_id)s::bigint)::text\n) AS kck_r (kck_value)");
}

TEST(Registry, ClientComputeNamesAnUndeclaredPlaceholder) {
  auto c = ParseConfig(One(R"("compute": "SELECT :writer")"), "primers.json");
  ASSERT_TRUE(c.ok());
  auto sql = ClientComputeStatement(c->primers[0]);
  ASSERT_FALSE(sql.ok());
  EXPECT_EQ(sql.status().message(), "primer \"title_list\": compute: unknown parameter :writer");
}

// The character (counted from 1, as PostgreSQL counts) at which `needle`
// first stands in `text`.
int CharacterOf(std::string_view text, std::string_view needle) {
  int n = 0;
  for (size_t i = 0; i <= text.find(needle); ++i) n += (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
  return n;
}

// PostgreSQL places an error by a character of the statement kck sent,
// which wraps the compute and replaces its :names; the error tells it in
// the compute as written ('é' is one character of two bytes).
TEST(SqlParams, ErrorPositionsAreToldInTheSqlAsWritten) {
  const std::string written = "SELECT 'é', :author_id + nosuch FROM t WHERE a = :author_id;";
  auto bound = BindNamedParams(written, {{"author_id", "bigint"}});
  ASSERT_TRUE(bound.ok()) << bound.status().message();
  const BoundSql statement = ComputeStatement(*bound);
  const auto error_at = [&](std::string_view needle) {
    return Status::Runtime("column \"nosuch\" does not exist").AtPosition(CharacterOf(statement.sql, needle));
  };
  EXPECT_EQ(InUserSql(error_at("nosuch"), statement).message(), "column \"nosuch\" does not exist at character 26");
  EXPECT_EQ(InUserSql(error_at("nosuch"), statement).position(), 26);
  // In a placeholder's replacement: the placeholder.
  EXPECT_EQ(InUserSql(error_at("::bigint) +"), statement).position(), 13);
  // In kck's wrapping, the trailing ';' stripped: no position.
  for (const char* wrapper : {"kck_r", "pg_current_snapshot", "\n) AS"}) {
    Status s = InUserSql(error_at(wrapper), statement);
    EXPECT_EQ(s.message(), "column \"nosuch\" does not exist") << wrapper;
    EXPECT_EQ(s.position(), 0) << wrapper;
  }
  EXPECT_EQ(InUserSql(Status::Runtime("no position"), statement).message(), "no position");
}

TEST(SqlParams, UnknownNameIsAnError) {
  auto b = BindNamedParams("SELECT :nope", {{"author_id", "bigint"}});
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find(":nope"), std::string::npos);
}

}  // namespace
}  // namespace kck

namespace kck {
namespace {

TEST(Registry, ComputeManyBindsEveryKeyFromArrays) {
  auto c = ParseConfig(R"json({"primers": [{"name": "shelf", "parameters": [{"name": "author_id", "type": "int"},
    {"name": "genre", "type": "str"}], "compute": "SELECT count(*) FROM b WHERE a = :author_id AND g = :genre;"}]})json",
                       "t");
  ASSERT_TRUE(c.ok());
  auto reg = Registry::Build(c->primers);
  ASSERT_TRUE(reg.ok());
  const std::string& sql = (*reg)->Find("shelf")->compute_many;
  EXPECT_NE(sql.find("a = kck_k.\"author_id\" AND g = kck_k.\"genre\""), std::string::npos) << sql;
  EXPECT_NE(sql.find("unnest($1::text[], $2::bigint[], $3::text[]) AS kck_k (kck_key, \"author_id\", \"genre\")"),
            std::string::npos)
      << sql;
  EXPECT_EQ(sql.find(";"), std::string::npos);
}

}  // namespace
}  // namespace kck
