// The outbox's parts (sql/005_outbox_parts.sql, listener/janitor.h): a
// consumed part is truncated even while another transaction holds back the
// xmin horizon, and a part is never truncated while it may still receive or
// hold a change.
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// Longer than two of the parts' two-second turns.
constexpr auto kPartTurn = std::chrono::milliseconds(4500);

class OutboxTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kBookstoreConfig);
  }
  std::string Scalar(pg::Connection& conn, const std::string& sql) {
    auto r = conn.Exec(sql);
    return r.ok() && r->rows() == 1 ? std::string(r->get(0, 0)) : "<error: " + r.status().message() + ">";
  }
  // Waits until writers write to a part other than these (kck.outbox_part()).
  bool WaitForPartOtherThan(const std::set<std::string>& parts) {
    return WaitFor([&] { return !parts.count(Scalar(conn_, "SELECT kck.outbox_part()")); }, kPartTurn * 2);
  }
  // The parts that hold rows (live or dead).
  std::set<std::string> PartsInUse() {
    std::set<std::string> parts;
    for (int p = 0; p < 3; ++p) {
      if (Scalar(conn_, "SELECT pg_relation_size('kck.changes_" + std::to_string(p) + "')") != "0") {
        parts.insert(std::to_string(p));
      }
    }
    return parts;
  }
  long long OutboxBytes() {
    return std::stoll(Scalar(conn_,
                             "SELECT sum(pg_relation_size(c.oid)) FROM pg_inherits i JOIN pg_class c "
                             "ON c.oid = i.inhrelid WHERE i.inhparent = 'kck.changes'::regclass"));
  }
};

TEST_F(OutboxTest, ConsumedPartsAreTruncatedWhileASnapshotHoldsTheHorizon) {
  Prime(conn_, {"title_list/1", "title_list/2"});
  // An analytics query that holds its snapshot: vacuum can remove nothing.
  pg::Connection holder = Connect(conninfo_);
  MustExec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ");
  ASSERT_EQ(Scalar(holder, "SELECT count(*) FROM store_author"), "20");
  DaemonProcess daemon(conninfo_);
  // Single-row and bulk statements over more than one part's turn.
  auto until = std::chrono::steady_clock::now() + kPartTurn;
  int round = 0;
  while (std::chrono::steady_clock::now() < until) {
    MustExec(conn_, "UPDATE store_book SET price = coalesce(price, 0) + 1 WHERE id = " +
                        std::to_string(1 + round % 200));
    if (round % 20 == 0) MustExec(conn_, "UPDATE store_book SET price = coalesce(price, 0) + 1 WHERE id <= 150");
    ++round;
  }
  MustExec(conn_, "UPDATE store_book SET title = 'last' WHERE id = 20");  // author 1
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_GT(OutboxBytes(), 0);
  // Every part, the last one written included, is truncated once it is
  // neither written to nor holds a pending change; the snapshot is still held.
  EXPECT_TRUE(WaitFor([&] { return OutboxBytes() == 0; }, kPartTurn * 3)) << OutboxBytes() << " bytes";
  EXPECT_EQ(Scalar(holder, "SELECT count(*) FROM store_author"), "20");
  EXPECT_NE(Stored(conn_, "title_list/1").find("last"), std::string::npos);
  ExpectCacheMatchesRecompute(conn_);
  MustExec(holder, "COMMIT");
}

TEST_F(OutboxTest, APartIsNotTruncatedWhileItHoldsAChangeOrAWriterIsOpen) {
  // No daemon: a pending change keeps its part, however old the part.
  MustExec(conn_, "UPDATE store_book SET title = 'pending' WHERE id = 20");
  MustExec(conn_, "UPDATE store_book SET title = title || '.' WHERE id <= 150");
  // A writer whose transaction stays open: its part is locked, and the
  // truncation neither waits for it nor takes the part.
  pg::Connection writer = Connect(conninfo_);
  MustExec(writer, "BEGIN");
  MustExec(writer, "UPDATE store_book SET title = 'open' WHERE id = 40");  // author 1
  ASSERT_TRUE(WaitForPartOtherThan({Scalar(writer, "SELECT kck.outbox_part()")}));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Scalar(conn_, "SELECT kck.outbox_truncate()"), "0");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2)) << "waited for the open writer";
  EXPECT_EQ(OutboxDepth(conn_), 2);
  MustExec(writer, "COMMIT");
  EXPECT_EQ(OutboxDepth(conn_), 3);
  // In REPEATABLE READ the look under the lock would use a snapshot from
  // before the lock: nothing is truncated.
  MustExec(conn_, "DELETE FROM kck.changes");
  ASSERT_TRUE(WaitForPartOtherThan(PartsInUse()));
  MustExec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ");
  EXPECT_EQ(Scalar(conn_, "SELECT kck.outbox_truncate()"), "0");
  MustExec(conn_, "COMMIT");
  EXPECT_GT(OutboxBytes(), 0);
  EXPECT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT kck.outbox_truncate()") != "0"; }));
  // A daemon applies new changes and truncates every part.
  MustExec(conn_, "UPDATE store_book SET title = 'later' WHERE id = 40");
  Prime(conn_, {"title_list/1"});
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_TRUE(WaitFor([&] { return OutboxBytes() == 0; }, kPartTurn * 3)) << OutboxBytes() << " bytes";
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(OutboxTest, RowsWrittenToTheParentLandInAPart) {
  // Refresh requests, and capture functions installed before the parts
  // existed, insert into kck.changes itself.
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['title_list/1', 'title_list/2'])");
  MustExec(conn_, "INSERT INTO kck.changes (tbl, op, new) VALUES ('kck.refresh', 'U', '{\"key\": \"title_list/3\"}')");
  EXPECT_EQ(OutboxDepth(conn_), 3);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM ONLY kck.changes"), "0");
  EXPECT_EQ(Scalar(conn_, "SELECT count(DISTINCT id) FROM kck.changes"), "3");
}

// kck's schema as a kck from before the outbox parts left it (migrations 1 to 4).
class OutboxUpgradeTest : public BookstoreTest {
 protected:
  void InstallSchemaBeforeParts() {
    MustExec(conn_,
             "CREATE SCHEMA kck; CREATE TABLE kck.schema_version (version integer PRIMARY KEY, name text NOT NULL, "
             "applied_at timestamptz NOT NULL DEFAULT now())");
    const char* files[] = {"001_schema.sql", "002_registry_problems.sql", "003_generation_and_primer_locks.sql",
                           "004_wakeup.sql"};
    int version = 0;
    for (const char* name : files) {
      std::ifstream in(std::string(KCK_SOURCE_DIR) + "/sql/" + name);
      std::stringstream text;
      text << in.rdbuf();
      ASSERT_FALSE(text.str().empty()) << name;
      MustExec(conn_, text.str());
      MustExec(conn_, "INSERT INTO kck.schema_version (version, name) VALUES (" + std::to_string(++version) + ", '" +
                          name + "')");
    }
  }
  std::string Scalar(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() == 1 ? std::string(r->get(0, 0)) : "<error: " + r.status().message() + ">";
  }
};

TEST_F(OutboxUpgradeTest, PendingChangesSurviveTheMoveToParts) {
  InstallSchemaBeforeParts();
  // Pending in the old, indexed outbox: a refresh request and a captured row.
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['title_list/1'])");
  MustExec(conn_, "INSERT INTO kck.changes (tbl, op, new) VALUES ('public.store_book', 'I', "
                  "'{\"id\": 20, \"author_id\": 1}')");
  const std::string ids = Scalar("SELECT array_agg(id ORDER BY id)::text FROM kck.changes");
  InstallConfig(conn_, kBookstoreConfig);  // migration 5
  EXPECT_EQ(Scalar("SELECT max(version) FROM kck.schema_version"), LatestSchemaVersion());
  EXPECT_EQ(Scalar("SELECT array_agg(id ORDER BY id)::text FROM kck.changes"), ids);
  EXPECT_EQ(Scalar("SELECT count(*) FROM ONLY kck.changes"), "0");
  EXPECT_EQ(Scalar("SELECT to_regclass('kck.changes_before_005') IS NULL"), "t");
  // New changes continue the old ids.
  MustExec(conn_, "UPDATE store_book SET title = 'after' WHERE id = 40");  // author 1
  EXPECT_EQ(Scalar("SELECT min(id) > 0 AND max(id) > min(id) FROM kck.changes"), "t");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_NE(Stored(conn_, "title_list/1").find("after"), std::string::npos);
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
