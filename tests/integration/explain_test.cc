// kck explain KEY (cli/explain.cc): the rules, the stored row, the pending
// changes that will touch the product and the products computed from it.
#include <nlohmann/json.hpp>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// author_line depends on title_list's product of the same author; shelf
// (no parameters) on every title_list.
constexpr const char* kConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "author_line", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT to_jsonb(count(*)) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]},
  {"name": "shelf", "parameters": [], "compute": "SELECT to_jsonb(count(*)) FROM store_book",
   "depends_on": [{"primer": "title_list", "params": {}}]}
]})json";

class ExplainTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kConfig);
    Prime(conn_, {"title_list/1"});
  }
  nlohmann::json Explain(const std::string& key) {
    auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' explain --json '" + key + "'", "2>/dev/null");
    EXPECT_EQ(rc, 0) << out;
    auto j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j;
  }
};

TEST_F(ExplainTest, ShowsTheStoredRowThePendingChangesAndTheDependents) {
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'pending')");
  const std::string id = [&] {
    auto r = conn_.Exec("SELECT max(id)::text FROM kck.changes");
    return std::string(r->get(0, 0));
  }();
  auto j = Explain("title_list/1");
  EXPECT_EQ(j["primer"], "title_list");
  EXPECT_EQ(j["product"]["stored"], true);
  EXPECT_EQ(j["product"]["version"], 1);
  EXPECT_TRUE(j["product"]["error"].is_null());
  EXPECT_EQ(j["rules"].size(), 1u);
  EXPECT_EQ(j["rules"][0]["table"], "public.store_book");
  EXPECT_EQ(j["pending"]["changes"], 1) << j.dump();
  EXPECT_EQ(j["pending"]["ids"][0], std::stoll(id));
  EXPECT_EQ(j["pending"]["claimed"], 0);
  EXPECT_EQ(j["dependents"]["keys"], nlohmann::json::array({"author_line/1", "shelf"})) << j.dump();
  // Another author's product: stored or not, nothing pending touches it.
  auto other = Explain("title_list/2");
  EXPECT_EQ(other["product"]["stored"], false);
  EXPECT_EQ(other["pending"]["changes"], 0);
  // The text form says the same in lines.
  auto [rc, text] = RunKckShell("--db '" + conninfo_ + "' explain title_list/1", "2>&1");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(text.find("pending:    1 change(s) in the outbox touch it (0 claimed by daemons): ids [" + id + "]"),
            std::string::npos) << text;
  EXPECT_NE(text.find("dependents: [\"author_line/1\",\"shelf\"]"), std::string::npos) << text;
}

TEST_F(ExplainTest, ABadKeyIsOneLineThatNamesIt) {
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' explain 'title_list/x'", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(out, "kck: key \"title_list/x\": primer \"title_list\": parameter \"author_id\" expects int, got \"x\"\n");
  auto [rc2, out2] = RunKckShell("--db '" + conninfo_ + "' explain 'nope/1'", "2>&1");
  EXPECT_EQ(rc2, 2);
  EXPECT_EQ(out2, "kck: key \"nope/1\": no primer \"nope\" is registered\n");
  // A huge key with a newline in it stays one bounded line.
  auto [rc3, out3] = RunKckShell("--db '" + conninfo_ + "' explain \"nope/$(printf 'a\\nb%.0s' $(seq 1 2000))\"", "2>&1");
  EXPECT_EQ(rc3, 2);
  EXPECT_EQ(out3.find('\n'), out3.size() - 1) << out3;
  EXPECT_LT(out3.size(), 300u) << out3;
}

}  // namespace
}  // namespace kck::testing
