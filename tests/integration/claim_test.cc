// Claims (sql/007_claims.sql, listener/intake.h): a batch's claim commits at
// once and its products are computed with no transaction open; the changes
// are consumed by the transaction that writes the products, exactly once,
// whatever happens to the claim (a daemon killed mid-batch, a claim
// released while its daemon still runs).
#include <memory>
#include <thread>
#include <vector>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// book_count augments inserts: a change applied twice shows as a count one
// too high.
constexpr const char* kConfig = R"json({"primers": [
  {"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)"}}}
]})json";

class ClaimTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kConfig);
    Prime(conn_, {"book_count/1", "book_count/2"});
  }
  std::string Count(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() == 1 ? std::string(r->get(0, 0)) : "<error>";
  }
  int Books(int author) {
    return std::stoi(Count("SELECT count(*) FROM store_book WHERE author_id = " + std::to_string(author)));
  }
  // One single-row and one 150-row insert for `author`, in one transaction
  // (so that a daemon claims both changes together).
  void InsertBooks(int author) {
    const std::string a = std::to_string(author);
    MustExec(conn_, "BEGIN; INSERT INTO store_book (author_id, title) VALUES (" + a + ", 'one'); "
                    "INSERT INTO store_book (author_id, title) SELECT " + a + ", 'bulk' FROM generate_series(1, 150); "
                    "COMMIT");
  }
  // Daemons of this database in a transaction, or holding a transaction id
  // or an xmin (this test's own connection is not one).
  std::string OpenDaemonTransactions() {
    return Count(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND (state LIKE 'idle in transaction%' OR backend_xid IS NOT NULL OR backend_xmin IS NOT NULL)");
  }
};

TEST_F(ClaimTest, NoTransactionIsOpenWhileABatchComputes) {
  PausedDaemon daemon(conninfo_, "compute");
  InsertBooks(1);
  ASSERT_TRUE(daemon.WaitPaused());
  // The claim is committed: no transaction id, no snapshot, no lock on the
  // outbox held while the batch computes.
  EXPECT_EQ(OpenDaemonTransactions(), "0");
  EXPECT_EQ(Count("SELECT count(*) FROM kck.claims"), "1");
  EXPECT_EQ(Count("SELECT cardinality(ids) FROM kck.claims"), "2");
  EXPECT_EQ(OutboxDepth(conn_), 2);  // consumed only by the write
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' status", "2>/dev/null");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("outbox: 2 changes waiting (2 claimed by daemons)"), std::string::npos) << out;
  daemon.Release();
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(Books(1)); }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_TRUE(WaitFor([&] { return Count("SELECT count(*) FROM kck.claims") == "0"; }));
  ExpectCacheMatchesRecompute(conn_);
}

// While another transaction holds back the xmin horizon every version of a
// claim row stays, and the next claim reads through it: a claim is written
// once (no update), and removed once.
TEST_F(ClaimTest, AClaimIsOneRowVersion) {
  MustExec(conn_, "CREATE EXTENSION IF NOT EXISTS pgstattuple");
  pg::Connection holder = Connect(conninfo_);
  MustExec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
  PausedDaemon daemon(conninfo_, "compute");
  InsertBooks(1);
  ASSERT_TRUE(daemon.WaitPaused());
  EXPECT_EQ(Count("SELECT tuple_count || ' live, ' || dead_tuple_count || ' dead' FROM pgstattuple('kck.claims')"),
            "1 live, 0 dead");
  daemon.Release();
  ASSERT_TRUE(WaitDrained(conn_));
  MustExec(holder, "ROLLBACK");
}

// The write transaction consumes the claim before it takes the keys' locks,
// so a reader that misses one of the batch's keys waits for the writes, not
// for the deletion of the batch's changes. Here a row lock on the changes
// holds the consumption back; the key's lock stays free meanwhile. Once
// for a batch written the usual way (an augment), once for a fast write.
TEST_F(ClaimTest, TheKeysAreLockedOnlyOnceTheClaimIsConsumed) {
  pg::Connection holder = Connect(conninfo_);
  auto batch_waiting_on_its_changes = [&](const std::string& write) {
    PausedDaemon daemon(conninfo_, "claim");
    ASSERT_TRUE(daemon.WaitPaused());
    MustExec(conn_, write);
    MustExec(holder, "BEGIN; SELECT 1 FROM kck.changes FOR UPDATE");
    daemon.Release();
    ASSERT_TRUE(WaitFor([&] {
      return Count("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND application_name = 'kck' AND wait_event_type = 'Lock'") == "1";
    })) << write;
    EXPECT_EQ(Count("SELECT pg_try_advisory_xact_lock(7037803, kck.bucket('book_count/1'))"), "t") << write;
    MustExec(holder, "ROLLBACK");
    ASSERT_TRUE(WaitDrained(conn_));
    EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(Books(1)); })) << write;
  };
  batch_waiting_on_its_changes("INSERT INTO store_book (author_id, title) VALUES (1, 'augmented')");
  batch_waiting_on_its_changes("UPDATE store_book SET title = 'fast' WHERE author_id = 1");
  ExpectCacheMatchesRecompute(conn_);
}

// The upkeep truncates kck.claims only once it takes 256 kB
// (sql/013_claims_truncated_when_large.sql): every batch leaves a dead
// claim, and a TRUNCATE each second paused the daemon's loop.
TEST_F(ClaimTest, TheUpkeepTruncatesClaimsOnlyOnceTheyAreLarge) {
  const std::string claim = "INSERT INTO kck.claims (owner_pid, owner_start, ids, parts, tids) "
                            "SELECT 1, now(), array_fill(7::bigint, ARRAY[n]), array_fill(0::smallint, ARRAY[n]), "
                            "array_fill('(0,1)'::tid, ARRAY[n]) FROM generate_series(1, ";
  MustExec(conn_, claim + "20) i, (SELECT 10 AS n) x; DELETE FROM kck.claims");
  const std::string before = Count("SELECT pg_relation_filenode('kck.claims')");
  Count("SELECT kck.outbox_truncate()");
  EXPECT_EQ(Count("SELECT pg_relation_filenode('kck.claims')"), before) << "a small kck.claims was truncated";
  EXPECT_GT(std::stoll(Count("SELECT pg_relation_size('kck.claims')")), 0);
  MustExec(conn_, claim + "2000) i, (SELECT 10 AS n) x; DELETE FROM kck.claims");
  ASSERT_GE(std::stoll(Count("SELECT pg_relation_size('kck.claims')")), 262144);
  Count("SELECT kck.outbox_truncate()");
  EXPECT_NE(Count("SELECT pg_relation_filenode('kck.claims')"), before);
  EXPECT_EQ(Count("SELECT pg_relation_size('kck.claims')"), "0");
}

// A claim's consumption deletes its changes by tuple id however large the
// outbox part grew after the session's first consumption planned it
// (sql/014_consume_by_tuple_id.sql). PL/pgSQL keeps the plan it made first:
// made while the part took a page, it scanned the whole part at every
// consumption, thousands of consumed rows included.
TEST_F(ClaimTest, AConsumptionDeletesByTupleIdOnceThePartIsLarge) {
  auto one_batch = [&](int n) {
    MustExec(conn_, "INSERT INTO kck.changes_0 (tbl, op, new) SELECT 'public.nowhere', 'I', '{}' "
                    "FROM generate_series(1, " + std::to_string(n) + ")");
    const std::string claim = Count("SELECT DISTINCT claim FROM kck.claim_batch(10)");
    ASSERT_NE(claim, "<error>");
    MustExec(conn_, "BEGIN");
    const std::string before = Count("SELECT seq_scan FROM pg_stat_xact_user_tables "
                                     "WHERE relid = 'kck.changes_0'::regclass");
    MustExec(conn_, "SELECT kck.consume_claim(" + claim + ")");
    EXPECT_EQ(Count("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relid = 'kck.changes_0'::regclass"),
              before) << "consuming a claim of " << n << " changes scanned kck.changes_0";
    MustExec(conn_, "COMMIT");
  };
  MustExec(conn_, "TRUNCATE kck.changes_0, kck.changes_1, kck.changes_2, kck.claims");
  for (int i = 0; i < 8; ++i) one_batch(10);  // planned while the part takes one page
  one_batch(20000);
  EXPECT_EQ(Count("SELECT count(*) FROM kck.changes_0"), std::to_string(20000 - 10));
  MustExec(conn_, "TRUNCATE kck.changes_0");
}

// A consumption deletes by tuple id and then compares the ids it deleted
// with the claim's (sql/016_consume_in_linear_time.sql): a tuple id that
// now holds another change (its part was truncated and written again)
// fails the consumption, and the transaction rolls the deletion back.
TEST_F(ClaimTest, AClaimWhoseTupleIdsNowHoldOtherChangesIsNotConsumed) {
  const std::string insert = "INSERT INTO kck.changes_0 (tbl, op, new) SELECT 'public.nowhere', 'I', "
                             "jsonb_build_object('n', i) FROM generate_series(1, 3) i";
  MustExec(conn_, "TRUNCATE kck.changes_0, kck.changes_1, kck.changes_2, kck.claims");
  MustExec(conn_, insert);
  const std::string claim = Count("SELECT DISTINCT claim FROM kck.claim_batch(10)");
  ASSERT_NE(claim, "<error>");
  MustExec(conn_, "TRUNCATE kck.changes_0");
  MustExec(conn_, insert);  // the same tuple ids, other changes
  ASSERT_EQ(Count("SELECT count(*) FROM kck.changes_0 c JOIN kck.claims l ON c.ctid = ANY (l.tids)"), "3");
  MustExec(conn_, "BEGIN");
  auto r = conn_.Exec("SELECT kck.consume_claim(" + claim + ")");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("3 of its 3 changes were consumed by another daemon"), std::string::npos)
      << r.status().message();
  MustExec(conn_, "ROLLBACK");
  // SQLSTATE 40001: a transient failure, the batch is claimed again.
  MustExec(conn_, "DO $$ BEGIN PERFORM kck.consume_claim(" + claim + "); RAISE EXCEPTION 'consumed'; "
                  "EXCEPTION WHEN serialization_failure THEN NULL; END $$");
  EXPECT_EQ(Count("SELECT count(*) FROM kck.changes_0"), "3");
  // A claim of 5000 changes over two parts is consumed whole.
  MustExec(conn_, "TRUNCATE kck.changes_0, kck.changes_1, kck.claims");
  MustExec(conn_, "INSERT INTO kck.changes_0 (tbl, op, new) SELECT 'public.nowhere', 'I', '{}' "
                  "FROM generate_series(1, 2500)");
  MustExec(conn_, "INSERT INTO kck.changes_1 (tbl, op, new) SELECT 'public.nowhere', 'I', '{}' "
                  "FROM generate_series(1, 2600)");
  const std::string big = Count("SELECT DISTINCT claim FROM kck.claim_batch(5000)");
  ASSERT_NE(big, "<error>");
  MustExec(conn_, "SELECT kck.consume_claim(" + big + ")");
  EXPECT_EQ(Count("SELECT count(*) FROM kck.changes"), "100");
  MustExec(conn_, "TRUNCATE kck.changes_0, kck.changes_1");
}

TEST_F(ClaimTest, ADaemonKilledMidBatchHasItsChangesAppliedOnceByAnother) {
  {
    PausedDaemon killed(conninfo_, "compute");
    InsertBooks(1);
    ASSERT_TRUE(killed.WaitPaused());
    ASSERT_EQ(Count("SELECT count(*) FROM kck.claims"), "1");
    killed.process().Kill(SIGKILL);
  }
  InsertBooks(2);
  DaemonProcess daemon(conninfo_);
  // The dead daemon's claim is released once its backend is gone; its
  // changes, and the newer ones, apply once.
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(Books(1)); },
                      std::chrono::seconds(15)));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/2") == std::to_string(Books(2)); }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Count("SELECT count(*) FROM kck.claims"), "0");
  ExpectCacheMatchesRecompute(conn_);
}

// A claim released while its daemon still computes (it looked gone): the
// other daemon applies the changes, and the first one's write must roll
// back instead of applying them a second time.
TEST_F(ClaimTest, ABatchWhoseClaimWasTakenOverRollsBackInsteadOfApplyingTwice) {
  const int before = Books(1);
  PausedDaemon slow(conninfo_, "compute");
  InsertBooks(1);
  ASSERT_TRUE(slow.WaitPaused());
  MustExec(conn_, "DELETE FROM kck.claims");
  {
    DaemonProcess other(conninfo_);
    ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(before + 151); }));
    ASSERT_TRUE(WaitDrained(conn_));
  }
  slow.Release();
  // The slow daemon finds its claim gone, rolls back and finds nothing left.
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count(*) FROM kck.claims") == "0"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Stored(conn_, "book_count/1"), std::to_string(before + 151));
  ExpectCacheMatchesRecompute(conn_);
}

// More than 100 products written by one batch, with four daemons: every
// change reaches every product once.
TEST_F(ClaimTest, FourDaemonsWriteManyProductsFromBulkAndSingleRowChanges) {
  std::vector<std::string> keys;
  for (int a = 1; a <= 120; ++a) keys.push_back("book_count/" + std::to_string(a));
  MustExec(conn_, "INSERT INTO store_author (id, name) SELECT a, 'author ' || a FROM generate_series(3, 120) a "
                  "ON CONFLICT DO NOTHING");
  Prime(conn_, keys);
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) daemons.push_back(std::make_unique<DaemonProcess>(conninfo_));
  for (int round = 0; round < 5; ++round) {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT a, 'bulk' FROM generate_series(1, 120) a");
    for (int a = 1; a <= 120; a += 7) {
      MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (" + std::to_string(a) + ", 'one')");
    }
  }
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Count("SELECT count(*) FROM kck.claims") == "0"; }));
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
