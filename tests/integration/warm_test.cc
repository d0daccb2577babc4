// Preparing products ahead: a primer's warm SQL (primers/warm.h), computed
// by `kck warm` (cli/warm.cc) and by the daemon (listener/warmer.h).
#include <csignal>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// summary/<author> reads title_list/<author> from kck.cache: warming
// summaries must store their title lists first. slow/<author> takes 20 ms.
const char* kWarmConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "summary", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('titles', jsonb_array_length(value)) FROM kck.cache WHERE key = 'title_list/' || :author_id",
   "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}],
   "warm": "SELECT id AS author_id FROM store_author WHERE id <= 20", "warm_every": "1s"},
  {"name": "slow", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT to_jsonb(:author_id) FROM pg_sleep(0.02)",
   "depends_on": [{"table": "store_author", "params": {"author_id": "id"}}],
   "warm": "SELECT id AS author_id FROM store_author"}
]})json";

class WarmTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(1, 130) i");
    InstallConfig(conn_, kWarmConfig);
  }
  std::string Count(const std::string& where) {
    return Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE " + where);
  }
};

TEST_F(WarmTest, TheDaemonWarmsDependenciesFirstAndEachProductOnce) {
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20"; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)));
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  // Computed after its title list was stored: never recomputed by the cascade.
  EXPECT_EQ(Count("primer = 'summary' AND version = 1"), "20");
  EXPECT_EQ(Count("primer = 'title_list'"), "20");  // only those the summaries need
  EXPECT_EQ(Stored(conn_, "summary/1"), R"({"titles": 10})");
}

TEST_F(WarmTest, AChangeDuringAWarmUpIsAppliedBeforeTheWarmUpEnds) {
  Prime(conn_, {"title_list/21"});
  DaemonProcess daemon(conninfo_);
  // slow's 150 products take 3 s to compute; the change does not wait for them.
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") != "0"; }, std::chrono::seconds(10)));
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (21, 'during the warm-up')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/21").find("during") != std::string::npos; }));
  EXPECT_LT(std::stoi(Count("primer = 'slow'")), 150);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'slow'") == "150"; }, std::chrono::seconds(30)));
}

TEST_F(WarmTest, WarmEveryBringsBackWhatWasRemoved) {
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Count("primer = 'summary'") == "20"; }, std::chrono::seconds(30)));
  MustExec(conn_, "DELETE FROM kck.cache WHERE key IN ('summary/3', 'title_list/3')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "summary/3") == R"({"titles": 10})"; }, std::chrono::seconds(10)));
  EXPECT_EQ(Count("key = 'title_list/3'"), "1");
}

TEST_F(WarmTest, KckWarmComputesWhatIsMissingAndResumesAfterCtrlC) {
  // 150 slow products at one at a time take 3 s: interrupted after 1 s.
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' warm slow --jobs 1 & sleep 1; kill -INT $!; wait $!; echo rc=$?",
                               "2>&1");
  EXPECT_NE(out.find("rc=130"), std::string::npos) << out;
  EXPECT_NE(out.find("interrupted: run kck warm again"), std::string::npos) << out;
  const int first = std::stoi(Count("primer = 'slow'"));
  EXPECT_GT(first, 0);
  EXPECT_LT(first, 150);
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm --jobs 4", "2>&1");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("warm: " + std::to_string(150 - first + 40) + " products to compute"), std::string::npos) << out;
  EXPECT_EQ(Count("primer = 'slow'"), "150");
  EXPECT_EQ(Count("primer = 'summary' AND version = 1"), "20");
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm", "2>&1");
  EXPECT_NE(out.find("warm: 0 products to compute"), std::string::npos) << out;
  ExpectCacheMatchesRecompute(conn_);
  std::tie(rc, out) = RunKckShell("--db '" + conninfo_ + "' warm title_list", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_NE(out.find("kck: primer \"title_list\" has no warm SQL"), std::string::npos) << out;
}

TEST_F(BookstoreTest, InstallRejectsWarmSqlWithoutAColumnPerParameter) {
  auto config = ParseConfig(R"json({"primers": [{"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT 1", "warm": "SELECT id FROM store_author"}]})json", "primers.json");
  ASSERT_TRUE(config.ok());
  auto report = Install(conn_, *config, false);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("primer \"title_list\": warm: SQL does not prepare: column kck_w.author_id does not exist"),
            std::string::npos) << report.status().message();
  EXPECT_NE(report.status().message().find("(warm returns one column per parameter, named as it)"), std::string::npos);
}

}  // namespace
}  // namespace kck::testing
