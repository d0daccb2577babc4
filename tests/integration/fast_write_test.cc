// A batch of a few cheap recomputes computed inside its write transaction
// (listener/fast_write.cc): what it writes is what the normal path would,
// and whatever the normal path records instead of writing (a product gone,
// a failing or slow compute) rolls it back to the normal path.
#include <thread>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// "books" counts an author's books; it has no row (the product does not
// exist) for an author without books, divides by zero for one with exactly
// 3, and sleeps 0.2 s while ctl.slow is set. "doubled" is a product of
// "books".
const char* kConfig = R"json({"primers": [
  {"name": "books", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) + 0 * (1 / (count(*) - 3)) + (SELECT count(*) FROM ctl, pg_sleep(CASE WHEN slow THEN 0.2 ELSE 0 END)) - 1 FROM store_book WHERE author_id = :author_id HAVING count(*) > 0",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "doubled", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT (value::int) * 2 FROM kck.cache WHERE key = 'books/' || :author_id",
   "depends_on": [{"primer": "books", "params": {"author_id": "author_id"}}]}]})json";

// kConfig without "doubled": a change makes one batch, not one more for the
// cascade.
std::string BooksOnly() {
  std::string config = kConfig;
  return config.substr(0, config.find(",\n  {\"name\": \"doubled\"")) + "]}";
}

std::string Books(int n) { return std::to_string(n); }

// "counted" counts an author's books and is augmented on insert and delete.
const char* kAugmentConfig = R"json({"primers": [
  {"name": "counted", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)",
                              "delete": "SELECT to_jsonb((:value)::int - 1)"}}}]})json";

class FastWriteTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, "CREATE TABLE ctl (slow boolean NOT NULL); INSERT INTO ctl VALUES (false)");
    InstallConfig(conn_, kConfig);
    Prime(conn_, {"books/1", "books/2", "books/3", "doubled/1"});
    log_ = LogPath(::testing::UnitTest::GetInstance()->current_test_info()->name());
    // Computes are cheap here, but a loaded test machine may time them over
    // kFastBudgetMs.
    ScopedEnv env({{"KCK_FAULT_CHEAP_COMPUTES", "1"}});
    daemon_ = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, log_, "debug");
    // A first change to a stored product: the daemon starts with the
    // primers' compute times as the stored products show them.
    AddBooks(2, 1);
  }
  void AddBooks(int author, int n) {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT " + std::to_string(author) +
                        ", 'new' FROM generate_series(1, " + std::to_string(n) + ")");
    ASSERT_TRUE(WaitDrained(conn_));
  }
  std::string Version(const std::string& key) {
    return Scalar(conn_, "SELECT version FROM kck.cache WHERE key = $1", {key});
  }
  size_t FastBatches() { return Occurrences(FileText(log_), "computed in the write transaction"); }
  // The log line of the daemon's first batch ("" before it).
  static std::string FirstBatch(const std::string& log) {
    const size_t at = log.find("batch: ");
    return at == std::string::npos ? "" : log.substr(at, log.find('\n', at) - at);
  }
  // Runs `writes` while the claim waits (kck.claim_batch's advisory lock is
  // held), so that the daemon's next batch claims all of them at once.
  void InOneBatch(const std::vector<std::string>& writes) {
    pg::Connection holder = Connect(conninfo_);
    MustExec(holder, "BEGIN; SELECT pg_advisory_xact_lock(7037805, 0)");
    for (const auto& w : writes) MustExec(conn_, w);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the daemon, woken, waits for the lock
    MustExec(holder, "COMMIT");
    ASSERT_TRUE(WaitDrained(conn_));
  }
  // Under `config`, whose product `key` counts author 1's books (10 to
  // start with), for each step of a fast write: a daemon whose second batch
  // (a fast write, as is its first) loses its connection at that step; the
  // batch is retried and the product counts each book once.
  void CutEachStepOfAFastWrite(const std::string& config, const std::string& key) {
    daemon_.reset();
    InstallConfig(conn_, config);
    Prime(conn_, {key});
    int books = 10;
    for (const std::string step : {"compute", "lock", "write", "commit"}) {
      daemon_.reset();
      ScopedEnv env({{"KCK_FAULT_CHEAP_COMPUTES", "1"}, {"KCK_FAULT_CUT", step + ":2"}});
      const std::string log = LogPath(std::string("fast_cut_") + step);
      daemon_ = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, log, "debug");
      AddBooks(1, 1);
      AddBooks(1, 1);
      books += 2;
      ASSERT_TRUE(WaitFor([&] { return Stored(conn_, key) == Books(books); })) << step << "\n" << FileText(log);
      EXPECT_NE(FileText(log).find("KCK_FAULT_CUT: cutting the connection at step " + step), std::string::npos)
          << FileText(log);
      EXPECT_NE(FileText(log).find("computing and writing in one transaction: connection lost"), std::string::npos)
          << FileText(log);
      EXPECT_EQ(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = $1", {key}), "<null>") << step;
      EXPECT_TRUE(daemon_->running()) << step;
    }
    ExpectCacheMatchesRecompute(conn_);
  }
  std::string log_;
  std::unique_ptr<DaemonProcess> daemon_;
};

// A stored product's one change is augmented inside the write transaction
// too, and a change the product's last compute already saw is not applied
// again there.
TEST_F(FastWriteTest, AnAugmentOfOneChangeIsAppliedAndWrittenInOneTransaction) {
  daemon_.reset();
  InstallConfig(conn_, kAugmentConfig);
  Prime(conn_, {"counted/1", "counted/2"});
  ScopedEnv env({{"KCK_FAULT_CHEAP_COMPUTES", "1"}});
  daemon_ = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, log_, "debug");
  // 10 -> 11: augmented in the write transaction from the first batch on (the
  // daemon starts with the product's stored compute time).
  AddBooks(1, 1);
  ASSERT_TRUE(WaitFor([&] { return FastBatches() == 1; })) << FileText(log_);
  EXPECT_NE(FirstBatch(FileText(log_)).find("(1 augmented)"), std::string::npos) << FileText(log_);
  const size_t fast = FastBatches();
  const std::string version = Version("counted/1");
  AddBooks(1, 1);
  EXPECT_EQ(Stored(conn_, "counted/1"), "12");
  EXPECT_EQ(Version("counted/1"), std::to_string(std::stoi(version) + 1));
  ASSERT_TRUE(WaitFor([&] { return FastBatches() == fast + 1; })) << FileText(log_);
  EXPECT_NE(FileText(log_).find("batch: 1 changes, 1 products written (1 augmented), 0 unchanged, 0 already fresh, "
                                "0 errors in"),
            std::string::npos)
      << FileText(log_);
  MustExec(conn_, "DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = 1)");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "counted/1"), "11");
  EXPECT_TRUE(WaitFor([&] { return FastBatches() == fast + 2; })) << FileText(log_);

  // A refresh computes counted/2 after the INSERT committed and before the
  // daemon claims it: its snapshot shows the INSERT, which must not count twice.
  pg::Connection holder = Connect(conninfo_);
  MustExec(holder, "BEGIN; SELECT pg_advisory_xact_lock(7037805, 0)");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'seen')");
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' refresh counted/2", "2>&1");
  ASSERT_EQ(rc, 0) << out;
  EXPECT_EQ(Stored(conn_, "counted/2"), "12");  // 11 (one added by SetUp) and this one
  MustExec(holder, "COMMIT");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "counted/2"), "12");
  EXPECT_TRUE(WaitFor([&] { return FastBatches() == fast + 3; })) << FileText(log_);
  EXPECT_NE(FileText(log_).find("batch: 1 changes, 0 products written (0 augmented), 0 unchanged, 1 already fresh"),
            std::string::npos)
      << FileText(log_);
  ExpectCacheMatchesRecompute(conn_);
}

// A daemon that starts knows its primers' compute times from their stored
// products and has planned their statements: its first batch is a fast
// write. The planning wrote nothing; a primer whose products took longer
// than the fast write's budget starts the normal way.
TEST_F(FastWriteTest, ADaemonThatStartsComputesItsFirstBatchInTheWriteTransaction) {
  EXPECT_NE(FirstBatch(FileText(log_)).find("computed in the write transaction"), std::string::npos)
      << FileText(log_);
  EXPECT_NE(FileText(log_).find("primers planned ahead: 2"), std::string::npos) << FileText(log_);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE key = ''"), "0");
  const auto author2 = [&] { return Scalar(conn_, "SELECT count(*) FROM store_book WHERE author_id = 2"); };
  EXPECT_EQ(Stored(conn_, "books/2"), author2());

  daemon_.reset();
  MustExec(conn_, "UPDATE kck.cache SET compute_ms = 500 WHERE primer = 'books'");
  const std::string log = LogPath("fast_slow_start");
  daemon_ = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, log, "debug");
  AddBooks(2, 1);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "books/2") == author2(); })) << FileText(log);
  EXPECT_TRUE(WaitFor([&] { return !FirstBatch(FileText(log)).empty(); })) << FileText(log);
  EXPECT_EQ(FirstBatch(FileText(log)).find("computed in the write transaction"), std::string::npos)
      << FileText(log);
  EXPECT_NE(FileText(log).find("primers planned ahead: 1"), std::string::npos) << FileText(log);
  ExpectCacheMatchesRecompute(conn_);
}

// A connection lost while the daemon reads the timings published or plans
// ahead fails the load: the daemon connects again, plans again and applies
// changes as before.
TEST_F(FastWriteTest, AConnectionLostWhilePlanningAheadIsConnectedAgain) {
  int books = 10;
  for (auto [step, context] : {std::pair{"read_timings", "reading the primers' published timings"},
                               {"plan_ahead", "planning the primers' statements ahead"}}) {
    SCOPED_TRACE(step);
    daemon_.reset();
    ScopedEnv env({{"KCK_FAULT_CUT", std::string(step) + ":1"}});
    const std::string log = LogPath(std::string("fast_cut_") + step);
    daemon_ = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, log, "debug");
    AddBooks(1, 2);
    books += 2;
    ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "books/1") == Books(books); })) << FileText(log);
    const std::string text = FileText(log);
    EXPECT_NE(text.find(std::string("cutting the connection at step ") + step), std::string::npos) << text;
    EXPECT_NE(text.find(context), std::string::npos) << text;
    EXPECT_NE(text.find("primers planned ahead: 2"), std::string::npos) << text;
    EXPECT_NE(FirstBatch(text).find("computed in the write transaction"), std::string::npos) << text;
    EXPECT_TRUE(daemon_->running());
    ExpectCacheMatchesRecompute(conn_);
  }
}

TEST_F(FastWriteTest, ACheapRecomputeIsComputedAndWrittenInOneTransaction) {
  const std::string before = Version("books/1");
  AddBooks(1, 2);  // 10 -> 12 books
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "books/1") == Books(12); })) << Stored(conn_, "books/1");
  // The batch's log line follows its COMMIT.
  EXPECT_TRUE(WaitFor([&] { return FastBatches() >= 1; })) << FileText(log_);
  EXPECT_EQ(Version("books/1"), std::to_string(std::stoi(before) + 1)) << FileText(log_);
  // Products of products follow it.
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "doubled/1") == std::to_string(2 * std::stoi(Books(12))); }))
      << Stored(conn_, "doubled/1");
  // The same value again: written, but no new version.
  const std::string version = Version("books/1");
  MustExec(conn_, "UPDATE store_book SET title = 'renamed' WHERE author_id = 1");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Version("books/1"), version);
  // A key that is not stored stays unstored.
  AddBooks(5, 1);
  EXPECT_EQ(Stored(conn_, "books/5"), "<absent>");
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(FastWriteTest, TheChangesOfSeveralTransactionsInOneBatchAreComputedInItsWriteTransaction) {
  const size_t fast = FastBatches();
  const std::string version = Version("books/2");
  InOneBatch({"INSERT INTO store_book (author_id, title) VALUES (1, 'a')",
              "INSERT INTO store_book (author_id, title) VALUES (2, 'b')",
              "DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = 1)"});
  EXPECT_EQ(Stored(conn_, "books/1"), Books(10));
  EXPECT_EQ(Stored(conn_, "books/2"), Books(12));
  EXPECT_EQ(Version("books/2"), std::to_string(std::stoi(version) + 1));
  const std::string log = FileText(log_);
  EXPECT_NE(log.find("batch: 3 changes, 1 products written (0 augmented), 1 unchanged, 0 already fresh, 0 errors in"),
            std::string::npos) << log;
  EXPECT_TRUE(WaitFor([&] { return FastBatches() > fast; })) << log;
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(FastWriteTest, ABatchOfMoreKeysThanTheFastWriteTakesIsComputedTheUsualWay) {
  std::vector<std::string> keys;
  for (int a = 4; a <= 20; ++a) keys.push_back("books/" + std::to_string(a));
  Prime(conn_, keys);  // with books/1-3, 20 stored keys: more than kFastKeys
  ASSERT_TRUE(WaitDrained(conn_));  // the primed rows' own changes (for "doubled") are applied first
  const size_t fast = FastBatches();
  InOneBatch({"INSERT INTO store_book (author_id, title) SELECT a, 'one each' FROM generate_series(1, 20) a"});
  EXPECT_EQ(Stored(conn_, "books/20"), Books(11));
  EXPECT_EQ(Stored(conn_, "books/3"), Books(11));
  EXPECT_EQ(FastBatches(), fast) << FileText(log_);
  EXPECT_NE(FileText(log_).find(" changes, 20 products written (0 augmented)"), std::string::npos) << FileText(log_);
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(FastWriteTest, AProductGoneAFailingComputeAndASlowOneFallBackToTheNormalPath) {
  // No row: the normal path removes the product.
  MustExec(conn_, "DELETE FROM store_book WHERE author_id = 2");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "books/2"), "<absent>");
  // Division by zero: the normal path records the error and keeps the value.
  MustExec(conn_, "DELETE FROM store_book WHERE author_id = 3 AND id NOT IN "
                  "(SELECT id FROM store_book WHERE author_id = 3 ORDER BY id LIMIT 3)");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_NE(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'books/3'").find("division by zero"),
            std::string::npos);
  EXPECT_EQ(Stored(conn_, "books/3"), Books(10));
  // Slower than the fast path's statement timeout: computed the normal way.
  MustExec(conn_, "UPDATE ctl SET slow = true");
  AddBooks(1, 1);
  EXPECT_EQ(Stored(conn_, "books/1"), Books(11));
  // Each of the three tried the fast write, which rolled back.
  EXPECT_EQ(Occurrences(FileText(log_), "fast write rolled back"), 3u) << FileText(log_);
  MustExec(conn_, "UPDATE ctl SET slow = false");
  AddBooks(3, 1);  // 4 books: computable again
  EXPECT_EQ(Stored(conn_, "books/3"), Books(4));
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(FastWriteTest, AConnectionLostAtEachStepRollsBackAndTheBatchIsRetried) {
  CutEachStepOfAFastWrite(BooksOnly(), "books/1");
}

// The same for a fast write that augments: the change is applied once.
TEST_F(FastWriteTest, AConnectionLostAtEachStepOfAnAugmentRollsBackAndTheBatchIsRetried) {
  CutEachStepOfAFastWrite(kAugmentConfig, "counted/1");
}

TEST_F(FastWriteTest, FourDaemonsOnTheSameKeysLeaveEveryProductRight) {
  daemon_.reset();
  ScopedEnv env({{"KCK_FAULT_CHEAP_COMPUTES", "1"}});
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  std::vector<std::string> logs;
  for (int i = 0; i < 4; ++i) {
    logs.push_back(LogPath("fast_four_" + std::to_string(i)));
    daemons.push_back(std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, logs.back(), "debug"));
  }
  for (int i = 0; i < 200; ++i) {
    const std::string author = std::to_string(1 + i % 3);
    if (i % 50 == 49) {  // now and then a bulk statement (over 100 rows) too
      MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT " + author + ", 'bulk' FROM generate_series(1, 120)");
    } else if (i % 7 == 6) {
      MustExec(conn_, "DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = " + author + ")");
    } else {
      MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (" + author + ", 'one')");
    }
    // Paced, so that batches of one transaction (fast writes) and of several
    // (the usual path) both occur.
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 2 ? 3 : 0));
  }
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  size_t fast = 0;
  for (const auto& log : logs) {
    const std::string text = FileText(log);
    for (size_t at = text.find("computed in the write transaction"); at != std::string::npos;
         at = text.find("computed in the write transaction", at + 1)) {
      ++fast;
    }
  }
  EXPECT_GT(fast, 0u);
  for (auto& d : daemons) EXPECT_TRUE(d->running());
}

TEST_F(FastWriteTest, WithoutTheSchemasFunctionTheDaemonComputesTheUsualWay) {
  const size_t fast = FastBatches();
  MustExec(conn_, "DROP FUNCTION kck.expect_one_row(bigint, text)");
  AddBooks(1, 2);
  AddBooks(1, 2);
  EXPECT_EQ(Stored(conn_, "books/1"), Books(14));
  EXPECT_EQ(FastBatches(), fast);
  EXPECT_NE(FileText(log_).find("kck.expect_one_row is missing"), std::string::npos) << FileText(log_);
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
