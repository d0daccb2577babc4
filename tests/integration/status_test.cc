// kck status (cli/status.cc): the daemons' last minute, and --watch.
#include <nlohmann/json.hpp>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

class StatusTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kBookstoreConfig);
    Prime(conn_, {"title_list/1", "book_count/1", "book_count/2"});
  }
  nlohmann::json Status() {
    auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' status --json", "2>/dev/null");
    EXPECT_EQ(rc, 0) << out;
    return nlohmann::json::parse(out, nullptr, false);
  }
};

TEST_F(StatusTest, ShowsWhatTheDaemonsDidInTheLastMinute) {
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Status()["daemons"]["connected"] == 1; }));
  // Three changes reach three stored products; how many writes that takes
  // depends on how the daemon batches them (at least one per product).
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'a')");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'b')");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 2, 'bulk' FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn_));
  nlohmann::json minute;
  ASSERT_TRUE(WaitFor([&] {
    minute = Status()["daemons"]["last_minute"];
    return minute["changes"] == 3 && minute["products"].get<long long>() >= 3;
  })) << minute.dump();
  EXPECT_EQ(minute["recomputed"].get<long long>() + minute["augmented"].get<long long>(), minute["products"]);
  EXPECT_GT(minute["changes_per_s"].get<double>(), 0.0);
  EXPECT_GT(minute["window_s"].get<double>(), 0.0);
  EXPECT_LE(minute["window_s"].get<double>(), 60.0);
  auto [rc, text] = RunKckShell("--db '" + conninfo_ + "' status", "2>&1");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(text.find(" changes/s, "), std::string::npos) << text;
}

// The wake-up flag's line: busy or waiting only with a daemon to be so.
TEST_F(StatusTest, TheWakeUpLineSaysBusyOrWaitingOnlyWithADaemon) {
  // Not a structured binding: clang 14's lambdas cannot capture one.
  auto first = RunKckShell("--db '" + conninfo_ + "' status", "2>&1");
  EXPECT_EQ(first.first, 0);
  std::string text = first.second;
  EXPECT_NE(text.find("daemons: 0 connected, none to wake (writers do not notify)\n"), std::string::npos) << text;
  DaemonProcess daemon(conninfo_);  // idle once it has drained the outbox
  EXPECT_TRUE(WaitFor([&] {
    text = RunKckShell("--db '" + conninfo_ + "' status", "2>&1").second;
    return text.find("daemons: 1 connected, one may be waiting (writers notify)\n") != std::string::npos;
  })) << text;
}

// --interval belongs to --watch: alone it was accepted and ignored.
TEST_F(StatusTest, IntervalWithoutWatchIsAUsageError) {
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' status --interval 5", "2>&1");
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(out, "kck: --interval requires --watch\n");
}

// Waits for the third report (up to 15 s: a sanitizer build beside other
// suites starts slowly) rather than a fixed time, then interrupts it.
TEST_F(StatusTest, WatchRepeatsTheReportUntilInterrupted) {
  const std::string file = ::testing::TempDir() + "kck_status_watch_" + std::to_string(getpid()) + ".out";
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' status --watch --interval 0.3 > '" + file +
                                   "' & pid=$!; for i in $(seq 150); do [ \"$(grep -c 'outbox: ' '" + file +
                                   "')\" -ge 3 ] && break; sleep 0.1; done; kill $pid; wait $pid; cat '" +
                                   file + "'",
                               "2>/dev/null");
  std::remove(file.c_str());
  size_t reports = 0;
  for (size_t at = out.find("outbox: "); at != std::string::npos; at = out.find("outbox: ", at + 1)) ++reports;
  EXPECT_GE(reports, 3u) << out;
}

}  // namespace
}  // namespace kck::testing
