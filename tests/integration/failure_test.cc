// How the daemon fails: a transient failure rolls the batch back and is
// retried (never an error on the product, never a consumed change), a bad
// product or change is isolated and the rest moves on, a registry change or
// a reader racing a batch cannot leave a product stale. Each test reproduced
// a defect of the daemon before it was fixed.
#include <cstdlib>
#include <fstream>

#include <nlohmann/json.hpp>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// Sets environment variables for the daemons started in its lifetime.

std::string FakeWorker() {
  return std::string("/usr/bin/python3 ") + KCK_SOURCE_DIR + "/tests/integration/fake_worker.py";
}

// Runs the kck binary; returns exit code and stderr.
std::pair<int, std::string> RunKck(const std::string& args) { return RunKckShell(args, "2>&1 >/dev/null"); }

// Runs the kck binary; returns exit code and stdout.
std::pair<int, std::string> RunKckOutput(const std::string& args) { return RunKckShell(args, "2>/dev/null"); }

class FailureTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, "CREATE TABLE ctl (block boolean NOT NULL); INSERT INTO ctl VALUES (false)");
  }
};

// A compute that blocks until the test lets it go.
const char* kSlowConfig = R"json({"primers": [
  {"name": "slow", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT (SELECT count(*) FROM store_book WHERE author_id = :author_id) + (SELECT count(*) FROM ctl, pg_sleep(CASE WHEN block THEN 30 ELSE 0 END)) - 1",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json";

// Products whose compute failed (a renamed column) are tried again once
// the schema is fixed, with no change reaching them: one probe per primer,
// then the rest. Single-row and 150-row writes while it was broken.
TEST_F(FailureTest, ProductsInErrorAreComputedAgainOnceTheirPrimerWorks) {
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1", "title_list/2", "title_list/3", "book_count/4"});
  ScopedEnv retry({{"KCK_FAULT_RETRY_ERRORS", "1"}});
  const std::string log = LogPath("failure_retry_errors");
  DaemonProcess daemon(conninfo_, {}, log, "info");
  MustExec(conn_, "ALTER TABLE store_book RENAME COLUMN title TO title_was");
  MustExec(conn_, "INSERT INTO store_book (author_id, title_was) VALUES (1, 'while broken')");
  MustExec(conn_, "UPDATE store_book SET title_was = title_was || ' x' WHERE id IN "
                  "(SELECT id FROM store_book WHERE author_id IN (2, 3) ORDER BY id LIMIT 150)");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE error IS NOT NULL") == "3"; }));
  MustExec(conn_, "ALTER TABLE store_book RENAME COLUMN title_was TO title");
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE error IS NOT NULL") == "0"; },
                      std::chrono::seconds(15)))
      << FileText(log);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_NE(FileText(log).find("computes again; recomputing its 2 other products in error"), std::string::npos)
      << FileText(log);
}

TEST_F(FailureTest, LostComputeConnectionRetriesInsteadOfRecordingAnError) {
  InstallConfig(conn_, kSlowConfig);
  Prime(conn_, {"slow/1"});
  MustExec(conn_, "UPDATE ctl SET block = true");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'new')");
  const std::string sleeping =
      "SELECT pid FROM pg_stat_activity WHERE application_name = 'kck' AND state = 'active' AND query LIKE '%pg_sleep%' "
      "AND pid <> pg_backend_pid()";
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, sleeping) != "<null>"; }));
  MustExec(conn_, "UPDATE ctl SET block = false");
  MustExec(conn_, "SELECT pg_terminate_backend(pid) FROM (" + sleeping + ") s");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "slow/1") == "11"; })) << Stored(conn_, "slow/1");
  EXPECT_EQ(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'slow/1'"), "<null>");
  EXPECT_TRUE(daemon.running());
}

TEST_F(FailureTest, ComputeThatAlwaysTimesOutBecomesAnErrorAndOthersMoveOn) {
  InstallConfig(conn_, kSlowConfig);
  Prime(conn_, {"slow/1", "slow/2"});
  MustExec(conn_, "UPDATE ctl SET block = true");
  DaemonProcess daemon(conninfo_, {"--compute-timeout", "1s"});
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'new')");
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'slow/1'") != "<null>"; },
                      std::chrono::seconds(30)));
  EXPECT_NE(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'slow/1'").find("statement timeout"),
            std::string::npos);
  ASSERT_TRUE(WaitDrained(conn_));
  MustExec(conn_, "UPDATE ctl SET block = false");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'later')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "slow/2") == "11"; }));
}

// Two primers on the same rows; "ratio" divides by zero when an author has
// exactly 11 books (each has 10 to begin with).
const char* kTwoPrimersConfig = R"json({"primers": [
  {"name": "books", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "ratio", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT 100 / (count(*) - 11) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json";

// A batch's recomputes go to the server together: one that fails must not
// cost the others their values, with one key per primer and with several.
TEST_F(FailureTest, AComputeThatFailsInABatchLeavesTheOtherComputesOfTheBatchWritten) {
  InstallConfig(conn_, kTwoPrimersConfig);
  Prime(conn_, {"books/1", "books/2", "ratio/1", "ratio/2"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'eleventh')");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "books/1"), "11");
  EXPECT_NE(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'ratio/1'").find("division by zero"),
            std::string::npos);
  // Several keys per primer: ratio/2 computes, ratio/1 still fails.
  MustExec(conn_, "BEGIN; INSERT INTO store_book (author_id, title) VALUES (2, 'a'), (2, 'b'); "
                  "UPDATE store_book SET title = title || '.' WHERE author_id = 1; COMMIT");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "books/2"), "12");
  EXPECT_EQ(Stored(conn_, "ratio/2"), "100");
  EXPECT_NE(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'ratio/1'").find("division by zero"),
            std::string::npos);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE error IS NOT NULL"), "1");
}

const char* kPythonConfig = R"json({"source": "django", "primers": [
  {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
   "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]},
  {"name": "pyk", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
   "depends_on": [{"table": "store_book", "python_rule": 0}]}]})json";

TEST_F(FailureTest, ProductPostgresRejectsIsIsolatedAndTheRestIsWritten) {
  InstallConfig(conn_, kPythonConfig);
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value) VALUES ('py/0', 'py', '0'), ('py/1', 'py', '0')");
  DaemonProcess daemon(conninfo_, {"--python-worker", FakeWorker()});
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/0', 'py/1'])");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT value->>'n' FROM kck.cache WHERE key = 'py/1'") == "1"; }));
  EXPECT_EQ(Stored(conn_, "py/0"), "0");  // the stored value stays
  EXPECT_NE(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'py/0'").find("rejected"), std::string::npos);
}

TEST_F(FailureTest, NumberBeyondDoubleInAStoredValueDoesNotStopTheDaemon) {
  InstallConfig(conn_, R"json({"source": "django", "primers": [
    {"name": "py", "engine": "python", "augment": true, "parameters": [{"name": "n", "type": "int"}],
     "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json");
  // jsonb holds any numeric; a double does not.
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value) VALUES ('py/1', 'py', '{\"big\": 1e400}')");
  DaemonProcess daemon(conninfo_, {"--python-worker", FakeWorker()});
  MustExec(conn_, "UPDATE store_book SET title = 'augment me' WHERE id = 20");  // author 1: an augment
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT value->>'n' FROM kck.cache WHERE key = 'py/1'") == "1"; }));
  EXPECT_TRUE(daemon.running());
}

const char* kStrConfig = R"json({"primers": [
  {"name": "by_title", "parameters": [{"name": "title", "type": "str"}],
   "compute": "SELECT count(*) FROM store_book WHERE title = :title",
   "depends_on": [{"table": "store_book", "params": {"title": "title"}}]}]})json";

TEST_F(FailureTest, RefreshOfAKeyTooLongToStoreIsDroppedAndLaterChangesApply) {
  InstallConfig(conn_, kStrConfig);
  Prime(conn_, {"by_title/book 5"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['by_title/' || repeat('x', 100000)])");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'book 5')");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "by_title/book 5") == "2"; }));
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache"), "1");
}

TEST_F(FailureTest, GetOfAHugeKeyIsBadInputWithABoundedMessage) {
  InstallConfig(conn_, kStrConfig);
  auto [rc, err] = RunKck("--db '" + conninfo_ + "' get by_title/" + std::string(100000, 'x'));
  EXPECT_EQ(rc, 2) << err;
  EXPECT_LT(err.size(), 400u) << err.substr(0, 400);
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err.substr(0, 400);
  EXPECT_NE(err.find("at most 2048 bytes"), std::string::npos) << err.substr(0, 400);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache"), "0");
}

// A compute the schema no longer fits fails with PostgreSQL's position,
// told in the compute as written, in kck get and in the error the daemon
// records (both pointed into kck's wrapping of the compute).
TEST_F(FailureTest, ErrorPositionsAreToldInThePrimersSql) {
  InstallConfig(conn_, R"json({"primers": [{"name": "priced", "parameters": [{"name": "author_id", "type": "int"}],
    "compute": "SELECT :author_id + sum(price) FROM store_book WHERE author_id = :author_id",
    "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json");
  Prime(conn_, {"priced/1"});
  MustExec(conn_, "ALTER TABLE store_book DROP COLUMN price");
  const std::string error = "column \"price\" does not exist at character 25";
  auto [rc, err] = RunKck("--db '" + conninfo_ + "' get priced/2");
  EXPECT_EQ(rc, 1);
  EXPECT_EQ(err, "kck: primer \"priced\": key \"priced/2\": compute failed: " + error + "\n");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['priced/1'])");
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'priced/1'") != "<null>"; }));
  EXPECT_EQ(Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'priced/1'"), error);
}

TEST_F(FailureTest, BatchClaimedAfterARegistryChangeUsesTheNewPrimers) {
  MustExec(conn_, "CREATE TABLE store_review (id bigserial PRIMARY KEY, author_id bigint NOT NULL)");
  const std::string v1 = R"json({"primers": [{"name": "r", "parameters": [{"name": "author_id", "type": "int"}],
    "compute": "SELECT (SELECT count(*) FROM store_book WHERE author_id = :author_id) * 100 + (SELECT count(*) FROM store_review WHERE author_id = :author_id)",
    "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json";
  std::string v2 = v1;
  v2.replace(v2.find("]}]}"), 4,
             R"(, {"table": "store_review", "params": {"author_id": "author_id"}}]}]})");
  InstallConfig(conn_, v1);
  Prime(conn_, {"r/1"});
  PausedDaemon daemon(conninfo_, "claim");
  ASSERT_TRUE(daemon.WaitPaused());
  InstallConfig(conn_, v2);
  MustExec(conn_, "INSERT INTO store_review (author_id) VALUES (1)");
  daemon.Release();
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "r/1") == "1001"; })) << Stored(conn_, "r/1");
}

// A reader computing a missed product by hand, in the order the Django
// reader does (django/kck/cache.py): the key's lock, then a REPEATABLE READ
// snapshot and the compute; Store() stores the value with that snapshot
// and lets go of the lock.
class MissReader {
 public:
  MissReader(const std::string& conninfo, std::string key, std::string primer)
      : conn_(Connect(conninfo)), key_(std::move(key)), primer_(std::move(primer)) {}
  void Compute(const std::string& sql) {
    ASSERT_TRUE(conn_.Exec("SELECT kck.lock_key_session($1)", {key_}).ok());
    MustExec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ");
    auto r = conn_.Exec("SELECT pg_current_snapshot()::text, (" + sql + ")::text");
    ASSERT_TRUE(r.ok()) << r.status().message();
    snapshot_ = std::string(r->get(0, 0));
    value_ = std::string(r->get(0, 1));
  }
  void Store() {
    auto stored = conn_.Exec("SELECT stored FROM kck.store($1, $2, $3::jsonb, $4::pg_snapshot, 1, NULL, NULL, NULL)",
                             {key_, primer_, value_, snapshot_});
    ASSERT_TRUE(stored.ok()) << stored.status().message();
    MustExec(conn_, "COMMIT");
    ASSERT_TRUE(conn_.Exec("SELECT kck.unlock_key_session($1)", {key_}).ok());
  }

 private:
  pg::Connection conn_;
  std::string key_, primer_, snapshot_, value_;
};

TEST_F(FailureTest, ReaderComputingAMissWhileABatchListsKeysIsNotLeftStale) {
  InstallConfig(conn_, R"json({"primers": [{"name": "books_of", "parameters": [{"name": "author_id", "type": "int"}],
    "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
    "depends_on": [{"table": "store_book", "params": {}}]}]})json");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  // A reader misses books_of/1: it takes the key's lock, then its snapshot.
  MissReader reader(conninfo_, "books_of/1", "books_of");
  ASSERT_NO_FATAL_FAILURE(reader.Compute("SELECT count(*) FROM store_book WHERE author_id = 1"));
  // A change commits and the daemon takes its batch while the reader computes.
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'racing')");
  const std::string waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted";
  ASSERT_TRUE(WaitFor([&] { return OutboxDepth(conn_) == 0 || Scalar(conn_, waiting) != "0"; }));
  // The reader stores what it computed and lets go.
  ASSERT_NO_FATAL_FAILURE(reader.Store());
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "books_of/1") == "11"; })) << Stored(conn_, "books_of/1");
}

// Computes run before the key locks are taken: a reader that misses a
// product of a batch's keys waits for the batch's writes, not its computes,
// and a product a reader stored meanwhile from an older snapshot is
// computed again under the locks.
TEST_F(FailureTest, ReaderStoringAMissWhileABatchComputesNeitherWaitsNorStaysStale) {
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1"});
  PausedDaemon daemon(conninfo_, "compute");
  // The reader of title_list/2 takes its lock, then its snapshot...
  MissReader reader(conninfo_, "title_list/2", "title_list");
  ASSERT_NO_FATAL_FAILURE(reader.Compute("SELECT jsonb_agg(title ORDER BY id) FROM store_book WHERE author_id = 2"));
  // ...then one statement changes both authors, and the daemon reaches its computes.
  MustExec(conn_, "UPDATE store_book SET title = title || '+' WHERE id IN (1, 20)");  // authors 2 and 1
  ASSERT_TRUE(daemon.WaitPaused());
  // Another reader's lock on a key of the batch is not held by the batch.
  pg::Connection other = Connect(conninfo_);
  MustExec(other, "SET lock_timeout = '2s'");
  MustExec(other, "BEGIN; SELECT kck.lock_keys(ARRAY['title_list/1']); COMMIT");
  // The first reader stores what it computed from its older snapshot.
  ASSERT_NO_FATAL_FAILURE(reader.Store());
  EXPECT_EQ(Stored(conn_, "title_list/2").find("+"), std::string::npos);  // stale for now
  daemon.Release();
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/2").find("+") != std::string::npos; }))
      << Stored(conn_, "title_list/2");
  ExpectCacheMatchesRecompute(conn_);
}

// A daemon newer than the schema (kck install not run since the upgrade)
// has no kck.expect_products to check its keys in the write transaction:
// it says so once and settles each batch the old way, by reading the keys
// again under their locks.
TEST_F(FailureTest, WithoutTheSchemasWriteCheckTheDaemonSettlesTheOldWay) {
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1"});
  MustExec(conn_, "DROP FUNCTION kck.expect_products(text[], text[])");
  const std::string log = LogPath("no_write_check");
  DaemonProcess daemon(conninfo_, {}, log);
  for (int i = 0; i < 3; ++i) {
    MustExec(conn_, "UPDATE store_book SET title = title || '+' WHERE id = 20");  // author 1
    ASSERT_TRUE(WaitDrained(conn_));
  }
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("+++") != std::string::npos; }))
      << Stored(conn_, "title_list/1");
  ExpectCacheMatchesRecompute(conn_);
  const std::string text = FileText(log);
  EXPECT_NE(text.find("kck.expect_products is missing"), std::string::npos) << text;
  EXPECT_EQ(text.find("rolled back"), std::string::npos) << text;
}

TEST_F(FailureTest, RegistryChangeRestartsThePythonWorker) {
  InstallConfig(conn_, kPythonConfig);
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value) VALUES ('py/1', 'py', '0')");
  DaemonProcess daemon(conninfo_, {"--python-worker", FakeWorker()});
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/1'])");
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT value->>'pid' FROM kck.cache WHERE key = 'py/1'") != "<null>"; }));
  std::string first = Scalar(conn_, "SELECT value->>'pid' FROM kck.cache WHERE key = 'py/1'");
  InstallConfig(conn_, kPythonConfig);  // a deploy: kck_sync writes the registry again
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/1'])");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT version FROM kck.cache WHERE key = 'py/1'") == "3"; }));
  EXPECT_NE(Scalar(conn_, "SELECT value->>'pid' FROM kck.cache WHERE key = 'py/1'"), first);
}

TEST_F(FailureTest, FailingAugmentsAreCountedAndShownByStatus) {
  InstallConfig(conn_, R"json({"primers": [{"name": "n_books", "parameters": [{"name": "author_id", "type": "int"}],
    "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
    "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
    "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int / (SELECT count(*) FROM ctl WHERE block))"}}}]})json");
  Prime(conn_, {"n_books/1"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'one')");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "n_books/1") == "11"; }));  // recomputed instead
  auto [rc, out] = RunKckOutput("--db '" + conninfo_ + "' status --json");
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["primers"][0]["augment_fallbacks"], 1) << out;
  EXPECT_NE(j["primers"][0]["last_fallback"].get<std::string>().find("division by zero"), std::string::npos) << out;
}

TEST_F(FailureTest, PythonAugmentThatRaisesIsCountedButOneThatDeclinesIsNot) {
  InstallConfig(conn_, R"json({"source": "django", "primers": [
    {"name": "py", "engine": "python", "augment": true, "parameters": [{"name": "n", "type": "int"}],
     "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json");
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value) VALUES ('py/5', 'py', '0'), ('py/6', 'py', '0')");
  DaemonProcess daemon(conninfo_, {"--python-worker", FakeWorker()});
  MustExec(conn_, "UPDATE store_book SET title = 'x' WHERE id = 5");  // author 6: declines
  MustExec(conn_, "UPDATE store_book SET title = 'x' WHERE id = 4");  // author 5: raises
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT value->>'n' FROM kck.cache WHERE key = 'py/5'") == "5"; }));
  ASSERT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT value->>'n' FROM kck.cache WHERE key = 'py/6'") == "6"; }));
  EXPECT_EQ(Scalar(conn_, "SELECT augment_fallbacks FROM kck.primer_stats WHERE primer = 'py'"), "1");
  EXPECT_NE(Scalar(conn_, "SELECT last_fallback FROM kck.primer_stats WHERE primer = 'py'").find("augment of five"),
            std::string::npos);
}

}  // namespace
}  // namespace kck::testing
