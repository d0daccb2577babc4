// Wake-ups (sql/004_wakeup.sql, sql/006_wake_flag.sql, listener/wakeup.h): a writer notifies only
// while a daemon waits, and no change is left waiting when a writer that
// saw the daemon busy commits just as the daemon goes to sleep.
#include <poll.h>

#include <nlohmann/json.hpp>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

class WakeupTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kBookstoreConfig);
    listener_ = Connect(conninfo_);
    MustExec(listener_, "LISTEN kck");
  }
  // Notifications on channel kck that arrive within `wait`.
  int Notifications(std::chrono::milliseconds wait = std::chrono::milliseconds(300)) {
    int n = 0;
    auto end = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < end) {
      pollfd fd{PQsocket(listener_.raw()), POLLIN, 0};
      poll(&fd, 1, 20);
      PQconsumeInput(listener_.raw());
      while (PGnotify* note = PQnotifies(listener_.raw())) {
        ++n;
        PQfreemem(note);
      }
    }
    return n;
  }
  std::string Scalar(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() == 1 ? std::string(r->get(0, 0)) : "<error>";
  }
  pg::Connection listener_;
};

TEST_F(WakeupTest, WritersNotifyOnlyWhileADaemonWaits) {
  // No daemon: single-row and bulk writes queue their changes silently.
  MustExec(conn_, "UPDATE store_book SET title = title || '.' WHERE id = 1");
  MustExec(conn_, "UPDATE store_book SET title = title || '.' WHERE id <= 150");
  EXPECT_EQ(Notifications(), 0);
  EXPECT_EQ(OutboxDepth(conn_), 2);
  // A busy daemon: still silent.
  MustExec(conn_, "INSERT INTO kck.listeners (id) VALUES (1)");
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 0)");
  MustExec(conn_, "DELETE FROM store_book WHERE id = 2");
  EXPECT_EQ(Notifications(), 0);
  // A waiting daemon: one notification per statement, bulk or not.
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 1)");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'one')");
  EXPECT_EQ(Notifications(), 1);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 2, 'bulk' FROM generate_series(1, 150)");
  EXPECT_EQ(Notifications(), 1);
  // The flag is a sequence, read as it is now whatever the writer's
  // snapshot: a REPEATABLE READ writer follows it too.
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 0)");
  MustExec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
  MustExec(conn_, "UPDATE store_book SET price = 1 WHERE id = 3; COMMIT");
  EXPECT_EQ(Notifications(), 0);
  MustExec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 1)");  // autocommit: seen by the open transaction
  EXPECT_EQ(Notifications(), 0);
  MustExec(conn_, "UPDATE store_book SET price = 2 WHERE id = 3; COMMIT");
  EXPECT_EQ(Notifications(), 1);
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 0)");
  // Refresh requests follow the same rule.
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['title_list/1'])");
  EXPECT_EQ(Notifications(), 0);
}

TEST_F(WakeupTest, AnIdleDaemonIsWokenAndMarksItselfWaitingAgain) {
  Prime(conn_, {"title_list/1"});
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.listeners"), "1");
  MustExec(conn_, "UPDATE store_book SET title = 'woken' WHERE id = 20");  // author 1
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("woken") != std::string::npos; }));
  EXPECT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' status --json", "2>/dev/null");
  ASSERT_EQ(rc, 0) << out;
  auto j = nlohmann::json::parse(out, nullptr, false);
  EXPECT_EQ(j["daemons"]["connected"], 1) << out;
  EXPECT_EQ(j["daemons"]["writers_notify"], true) << out;
  // A clean stop removes the daemon's row, and writers stop notifying nobody.
  daemon.Kill(SIGTERM);
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.listeners"), "0");
  EXPECT_EQ(Scalar("SELECT kck.must_notify()::text"), "false");
}

// A daemon woken from idle claims with the flag still set; under load it
// goes from batch to batch without going idle again, so unless its claim
// clears the flag every writer notifies for as long as the load lasts
// (sql/015_claims_clear_the_wake_flag.sql).
TEST_F(WakeupTest, ADaemonThatClaimsClearsTheFlagSoWritersStopNotifying) {
  Prime(conn_, {"title_list/1"});
  PausedDaemon daemon(conninfo_, "compute");
  ASSERT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
  MustExec(conn_, "UPDATE store_book SET title = 'woken' WHERE id = 20");  // author 1: one notification
  ASSERT_TRUE(daemon.WaitPaused());  // claimed, not written: the daemon is busy
  EXPECT_EQ(Scalar("SELECT kck.must_notify()::text"), "false");
  Notifications();  // the first writer's
  MustExec(conn_, "UPDATE store_book SET title = 'busy' WHERE id = 20");
  EXPECT_EQ(Notifications(), 0) << "a writer notified a busy daemon";
  daemon.Release();
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("busy") != std::string::npos; }));
  EXPECT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));  // idle again
}

// A daemon that stops cleanly while another remains: the other may be idle
// while the flag says busy (the first one would have looked again before
// sleeping), so the flag is set and the others are told to look.
TEST_F(WakeupTest, ACleanStopLeavesTheRemainingDaemonsWokenByWriters) {
  Prime(conn_, {"title_list/1"});
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
  // Another daemon, busy (this connection stands for it), claimed last.
  MustExec(conn_, "SELECT kck.listener_register(pg_backend_pid())");
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 0)");
  MustExec(conn_, "UPDATE store_book SET title = 'left' WHERE id = 20");  // no notification
  Notifications();
  MustExec(conn_, "SELECT kck.listener_unregister(pg_backend_pid())");
  EXPECT_GE(Notifications(std::chrono::milliseconds(100)), 1) << "the remaining daemon was not told to look";
  // It claims the change well before its periodic look, and writers wake it.
  EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("left") != std::string::npos; },
                      std::chrono::milliseconds(2000)));
  EXPECT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
}

// The race the recheck closes: a writer reads "busy", the daemon goes idle
// while the writer's transaction is still open, then the writer commits
// without a notification. With the periodic look switched off, only the
// recheck can find its change.
TEST_F(WakeupTest, AWriterThatSawTheDaemonBusyAndCommitsAfterItWentIdleIsNotLost) {
  Prime(conn_, {"title_list/1", "title_list/2"});
  ScopedEnv no_poll({{"KCK_FAULT_NO_POLL", "1"}});
  PausedDaemon daemon(conninfo_, "compute");
  MustExec(conn_, "UPDATE store_book SET title = 'first' WHERE id = 20");  // author 1
  ASSERT_TRUE(daemon.WaitPaused());
  // Mid-batch under load the daemon is marked busy.
  MustExec(conn_, "SELECT setval('kck.daemon_waiting', 0)");
  pg::Connection writer = Connect(conninfo_);
  MustExec(writer, "BEGIN; UPDATE store_book SET title = 'late' WHERE id = 1");  // author 2
  daemon.Release();
  ASSERT_TRUE(WaitFor([&] { return Scalar("SELECT kck.must_notify()::text") == "true"; }));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("first") != std::string::npos; }));
  MustExec(writer, "COMMIT");
  EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/2").find("late") != std::string::npos; },
                      std::chrono::seconds(10)));
  ExpectCacheMatchesRecompute(conn_);
}

// A writer that starts after the idle daemon's look took its snapshot and
// commits before the look returns: its change is neither seen by the look
// nor among the open transactions to recheck, so its notification, which
// reaches the daemon with the look's reply, is the only wake-up there is.
// It must not be dropped because the look said "nothing pending". The look
// is slowed at its end so that the writer fits in that window every time;
// the periodic look is off.
TEST_F(WakeupTest, ANotificationThatArrivesWithTheIdleLooksReplyIsNotLost) {
  Prime(conn_, {"title_list/1"});
  MustExec(conn_, R"sql(
    ALTER PROCEDURE kck.listener_idle(bigint, boolean, xid8[]) RENAME TO listener_idle_real;
    CREATE PROCEDURE kck.listener_idle(p_id bigint, INOUT pending boolean DEFAULT NULL,
                                       INOUT open_xids xid8[] DEFAULT NULL)
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    BEGIN
      CALL kck.listener_idle_real(p_id, pending, open_xids);
      PERFORM pg_sleep(0.5);
    END $$;)sql");
  ScopedEnv no_poll({{"KCK_FAULT_NO_POLL", "1"}});
  DaemonProcess daemon(conninfo_);
  auto in_look = [&] {
    return Scalar("SELECT count(*)::text FROM pg_stat_activity WHERE query LIKE '%CALL kck.listener_idle(%' "
                  "AND wait_event = 'PgSleep'") == "1";
  };
  for (int round = 0; round < 3; ++round) {
    const std::string title = "woken " + std::to_string(round);
    ASSERT_TRUE(WaitFor(in_look)) << "round " << round;
    MustExec(conn_, "UPDATE store_book SET title = '" + title + "' WHERE id = 20");  // author 1
    EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find(title) != std::string::npos; },
                        std::chrono::seconds(5)))
        << "round " << round;
  }
  ExpectCacheMatchesRecompute(conn_);
}

// The listening backend is not the batch's: a backend that listens from
// inside a long transaction holds back the server's notification queue.
TEST_F(WakeupTest, TheListeningConnectionNeverSitsInABatchTransaction) {
  Prime(conn_, {"title_list/1"});
  PausedDaemon daemon(conninfo_, "compute");
  MustExec(conn_, "UPDATE store_book SET title = 'paused' WHERE id = 20");
  ASSERT_TRUE(daemon.WaitPaused());
  EXPECT_EQ(Scalar("SELECT string_agg(a.state, ',') FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id"),
            "idle");
  // Nor does any other: the claim committed before the computes (sql/007_claims.sql).
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
                   "AND datname = current_database()"),
            "0");
  daemon.Release();
  EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("paused") != std::string::npos; }));
}

// Under load a daemon goes idle and busy hundreds of times a second. While
// another transaction holds back the xmin horizon nothing can remove what
// those flips leave behind, and every writer's look at the flag read it
// all: with the flag in kck.listeners, writers at 1000 tps fell up to 38 s
// behind (bench/write_path.py, section 5). The look must stay one page.
TEST_F(WakeupTest, FlipsWhileTheHorizonIsHeldLeaveWritersNothingToReadThrough) {
  pg::Connection holder = Connect(conninfo_);
  MustExec(holder, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1");
  MustExec(conn_, "INSERT INTO kck.listeners (id) VALUES (1)");
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['title_list/1'])");
  // Each call finds the change pending: idle, then busy again.
  MustExec(conn_, R"sql(
    DO $$
    DECLARE pending boolean; open_xids xid8[];
    BEGIN
      FOR i IN 1..3000 LOOP
        pending := NULL; open_xids := NULL;
        CALL kck.listener_idle(1, pending, open_xids);
      END LOOP;
    END $$)sql");
  auto plan = conn_.Exec("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT kck.must_notify()");
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  auto json = nlohmann::json::parse(std::string(plan->get(0, 0)));
  const auto& top = json[0]["Plan"];
  const long long pages = top["Shared Hit Blocks"].get<long long>() + top["Shared Read Blocks"].get<long long>();
  EXPECT_LE(pages, 3) << plan->get(0, 0);
  EXPECT_EQ(Scalar("SELECT kck.must_notify()::text"), "false");  // busy: a change is pending
  MustExec(holder, "ROLLBACK");
}

TEST_F(WakeupTest, RowsOfDaemonsThatAreGoneAreRemovedWhenADaemonConnects) {
  MustExec(conn_, "INSERT INTO kck.listeners (id, waiting) VALUES (2147483000, true)");  // no such backend
  {
    DaemonProcess killed(conninfo_);
    ASSERT_TRUE(WaitFor([&] { return Scalar("SELECT count(*) FROM kck.listeners") == "1"; }));
    killed.Kill(SIGKILL);
  }
  // The killed daemon's row stays until its backend is gone and another
  // daemon connects.
  ASSERT_TRUE(WaitFor([&] {
    return Scalar("SELECT count(*) FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id") == "0";
  }));
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitFor([&] {
    return Scalar("SELECT count(*) FROM kck.listeners l JOIN pg_stat_activity a ON a.pid = l.id") == "1";
  }));
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.listeners"), "1");
}

}  // namespace
}  // namespace kck::testing
