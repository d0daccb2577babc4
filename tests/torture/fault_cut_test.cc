// A connection cut at each step of a batch, through the daemon's test-only
// hook: KCK_FAULT_CUT=<step>[:<n>] shuts down the socket of the connection
// that step uses the n-th time the daemon reaches it, logging a warning
// with the word KCK_FAULT_CUT; the daemon reconnects and retries. After the
// drain nothing may be lost or applied twice.
#include <string>
#include <tuple>

#include "tests/torture/torture_helpers.h"

namespace kck::torture {
namespace {

constexpr int kAuthors = 105;  // > 100 products in one bulk batch

using CutPoint = std::tuple<std::string, int>;  // step, n

class FaultCutTest : public ::testing::TestWithParam<CutPoint> {
 protected:
  void SetUp() override {
    conninfo_ = kck::testing::FreshDatabase();
    conn_ = kck::testing::Connect(TestConnInfo(conninfo_));
    MustExec(conn_, TortureSchema(kAuthors));
    kck::testing::InstallConfig(conn_, kTortureConfig);
    std::vector<std::string> keys = TortureKeys(kAuthors);
    std::erase_if(keys, [](const std::string& key) { return key.rfind("stars/", 0) == 0 && key.size() > 7; });
    PrimeKeys(conn_, keys);  // stars only for authors 1..9: enough to see them
  }
  std::string CutSpec() const { return std::get<0>(GetParam()) + ":" + std::to_string(std::get<1>(GetParam())); }

  // Runs `sql`, then waits for the daemon to apply it (and any cascade).
  void ApplyRound(const std::string& what, const std::string& sql) {
    MustExec(conn_, sql);
    ASSERT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), 60s))
        << "KCK_FAULT_CUT=" << CutSpec() << ", " << what << ": not drained: " << OutboxReport(conn_) << "\n"
        << Tail(daemon_->log(), 20);
  }

  std::string conninfo_;
  pg::Connection conn_;
  std::unique_ptr<Daemon> daemon_;
};

TEST_P(FaultCutTest, NothingLostNorAppliedTwice) {
  daemon_ = std::make_unique<Daemon>(conninfo_, LogDir() + "/fault_cut_" + std::get<0>(GetParam()) + "_" +
                                                    std::to_string(std::get<1>(GetParam())) + ".log",
                                     std::vector<std::string>{}, std::vector<std::string>{"KCK_FAULT_CUT=" + CutSpec()});
  const std::string singles =
      "INSERT INTO store_book (author_id, title) VALUES (1, 'one'), (2, 'two');"
      "INSERT INTO store_book (author_id, title) VALUES (3, 'three');"
      "DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = 4);"
      "UPDATE store_book SET author_id = 2 WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 1);"
      "INSERT INTO store_review (author_id, stars) VALUES (5, 4);"
      "DELETE FROM store_review WHERE id = (SELECT min(id) FROM store_review WHERE author_id = 6)";
  ApplyRound("single-row changes", singles);
  ApplyRound("bulk changes over every author",
             "UPDATE store_book SET price = price + 1;"
             "UPDATE store_book SET author_id = 1 + author_id % " + std::to_string(kAuthors) + " WHERE id % 2 = 0");
  ApplyRound("mixed changes",
             singles + "; INSERT INTO store_book (author_id, title) SELECT 1 + i % " + std::to_string(kAuthors) +
                 ", 'bulk' FROM generate_series(1, 150) i;"
                 "BEGIN; INSERT INTO store_book (author_id, title) VALUES (7, 'ghost'); ROLLBACK");
  std::string log = daemon_->log();
  EXPECT_NE(log.find("KCK_FAULT_CUT"), std::string::npos)
      << "KCK_FAULT_CUT=" << CutSpec() << ": the daemon never logged the cut (hook missing from this build, or step "
      << "not reached " << std::get<1>(GetParam()) << " times); log tail:\n" << Tail(log, 10);
  EXPECT_TRUE(daemon_->running()) << "the daemon exited after the cut:\n" << Tail(log, 20);
  ExpectConsistent(conn_, "KCK_FAULT_CUT=" + CutSpec());
}

INSTANTIATE_TEST_SUITE_P(Steps, FaultCutTest,
                         ::testing::Combine(::testing::Values("claim", "plan", "lock", "compute", "write", "commit"),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::to_string(std::get<1>(info.param));
                         });

}  // namespace
}  // namespace kck::torture
