// End-to-end: capture triggers -> kck listen -> fresh products, against a
// real PostgreSQL and the real kck binary.
#include <sstream>

#include <nlohmann/json.hpp>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

class DaemonTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kBookstoreConfig);
  }
};

// `kck listen --help` shows the defaults (DESIGN.md: --batch 5000, the
// timeouts 30s); it showed none.
TEST(ListenHelp, ShowsTheDefaults) {
  auto [rc, help] = RunKckShell("listen --help", "2>&1");
  EXPECT_EQ(rc, 0);
  EXPECT_NE(help.find("--batch INT:INT in [1 - 100000]=5000"), std::string::npos) << help;
  EXPECT_NE(help.find("--worker-timeout TEXT=30s"), std::string::npos) << help;
  EXPECT_NE(help.find("--compute-timeout TEXT=30s"), std::string::npos) << help;
}

TEST_F(DaemonTest, InsertUpdateDeleteReachTheProduct) {
  Prime(conn_, {"title_list/1", "book_count/1", "total"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'fresh one')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("fresh one") != std::string::npos; }));
  MustExec(conn_, "UPDATE store_book SET title = 'renamed' WHERE title = 'fresh one'");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("renamed") != std::string::npos; }));
  MustExec(conn_, "DELETE FROM store_book WHERE title = 'renamed'");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("renamed") == std::string::npos; }));
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  // Products nobody read stay unstored: primed lazily on read.
  EXPECT_EQ(Stored(conn_, "title_list/2"), "<absent>");
}

TEST_F(DaemonTest, RowMovingBetweenKeysRefreshesBoth) {
  Prime(conn_, {"title_list/1", "title_list/2", "book_count/1", "book_count/2"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "UPDATE store_book SET author_id = 2 WHERE id = 20");  // author 1 -> 2
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Stored(conn_, "book_count/1"), "9");
  EXPECT_EQ(Stored(conn_, "book_count/2"), "11");
}

TEST_F(DaemonTest, AugmentAppliesEachChangeOnce) {
  Prime(conn_, {"book_count/3"});
  DaemonProcess daemon(conninfo_);
  for (int i = 0; i < 50; ++i) MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (3, 'x')");
  MustExec(conn_, "DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 3)");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "book_count/3"), "59");
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, BulkUpdateOfTenThousandRows) {
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 20, 'bulk ' || i FROM generate_series(1, 10000) i");
  Prime(conn_, {"title_list/1", "title_list/7", "book_count/5", "total"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "UPDATE store_book SET author_id = 1 + (author_id % 20), price = price + 1");
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  auto changes = conn_.Exec("SELECT count(*) FROM kck.changes");
  EXPECT_EQ(changes->get(0, 0), "0");
}

// A bulk statement past kck.bulk_max_images distinct images is one 'T'
// change: every stored product of the table is recomputed, none left stale.
TEST_F(DaemonTest, BulkUpdatePastTheImageCapRefreshesEveryStoredProduct) {
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 20, 'bulk ' || i FROM generate_series(1, 300) i");
  Prime(conn_, {"title_list/1", "title_list/7", "book_count/5", "total"});
  MustExec(conn_, "DELETE FROM kck.changes; SET kck.bulk_max_images = 3; "
                  "UPDATE store_book SET author_id = 1 + (author_id % 20), price = price + 1; RESET kck.bulk_max_images");
  auto change = conn_.Exec("SELECT string_agg(op || ' ' || (new ? 'bulk')::text, ', ') FROM kck.changes");
  ASSERT_TRUE(change.ok()) << change.status().message();
  EXPECT_EQ(std::string(change->get(0, 0)), "T true");
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' listen --until-idle", "2>&1");
  EXPECT_EQ(rc, 0) << out;
  // The operator sees why every product of the table was recomputed.
  EXPECT_NE(out.find("table \"public.store_book\": a bulk statement had more than 3 distinct images: every product "
                     "of the table; recomputing every product that depends on it (setting kck.bulk_max_images)"),
            std::string::npos)
      << out;
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

// A rule with update_of: an UPDATE that changes none of its columns leaves
// its products alone; one that changes one, or moves a row, recomputes them.
TEST_F(DaemonTest, UpdateOfRecomputesOnlyForItsColumns) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "price_sum", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(sum(price)) FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}, "update_of": ["price"]}]}
  ]})json");
  Prime(conn_, {"title_list/1", "price_sum/1", "price_sum/2"});
  auto computed_at = [&](const std::string& key) {
    return Scalar(conn_, "SELECT computed_at FROM kck.cache WHERE key = $1", {key});
  };
  const std::string book = Scalar(conn_, "SELECT min(id) FROM store_book WHERE author_id = 1");
  const std::string first_1 = computed_at("price_sum/1"), first_2 = computed_at("price_sum/2");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "UPDATE store_book SET title = 'renamed' WHERE id = " + book);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("renamed") != std::string::npos; }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(computed_at("price_sum/1"), first_1) << "a title UPDATE recomputed a product of price only";

  MustExec(conn_, "UPDATE store_book SET price = price + 1 WHERE id = " + book);
  ASSERT_TRUE(WaitDrained(conn_));
  const std::string second_1 = computed_at("price_sum/1");
  EXPECT_NE(second_1, first_1);
  EXPECT_EQ(computed_at("price_sum/2"), first_2);

  MustExec(conn_, "UPDATE store_book SET author_id = 2 WHERE id = " + book);  // price unchanged
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_NE(computed_at("price_sum/1"), second_1);
  EXPECT_NE(computed_at("price_sum/2"), first_2);
  ExpectCacheMatchesRecompute(conn_);

  // A bulk statement's images are not paired row by row: it always recomputes.
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1, 'more ' || i FROM generate_series(1, 150) i");
  MustExec(conn_, "UPDATE store_book SET title = title || '!', price = price + 2 WHERE author_id = 1");
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, TruncateRefreshesEveryStoredProduct) {
  Prime(conn_, {"title_list/1", "total"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "TRUNCATE store_book");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "title_list/1"), "[]");
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, RolledBackTransactionChangesNothing) {
  Prime(conn_, {"title_list/1"});
  DaemonProcess daemon(conninfo_);
  std::string before = Stored(conn_, "title_list/1");
  MustExec(conn_, "BEGIN; INSERT INTO store_book (author_id, title) VALUES (1, 'ghost'); ROLLBACK");
  EXPECT_EQ(OutboxDepth(conn_), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Stored(conn_, "title_list/1"), before);
}

TEST_F(DaemonTest, FailingPrimerSetsErrorAndOthersGoOn) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "fragile", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(100 / (SELECT count(*) - 9 FROM store_book WHERE author_id = :author_id))",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}
  ]})json");
  Prime(conn_, {"title_list/1", "fragile/1"});
  EXPECT_EQ(Stored(conn_, "fragile/1"), "100");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 1)");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] {
    auto r = conn_.Exec("SELECT error FROM kck.cache WHERE key = 'fragile/1'");
    return r.ok() && !r->is_null(0, 0);
  }));
  auto err = conn_.Exec("SELECT error, value::text FROM kck.cache WHERE key = 'fragile/1'");
  EXPECT_NE(std::string(err->get(0, 0)).find("division by zero"), std::string::npos) << err->get(0, 0);
  EXPECT_EQ(err->get(0, 1), "100");  // the last good value is kept
  EXPECT_EQ(Stored(conn_, "title_list/1").find("\"book 20\""), std::string::npos);
  auto ok = conn_.Exec("SELECT error IS NULL FROM kck.cache WHERE key = 'title_list/1'");
  EXPECT_EQ(ok->get(0, 0), "t");
  // The daemon goes on: the next change heals it.
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'heal')");
  ASSERT_TRUE(WaitFor([&] {
    auto r = conn_.Exec("SELECT error IS NULL AND value = '100' FROM kck.cache WHERE key = 'fragile/1'");
    return r.ok() && r->get(0, 0) == "t";
  }));
  EXPECT_TRUE(daemon.running());
}

TEST_F(DaemonTest, StringKeysAreBoundNeverSpliced) {
  MustExec(conn_, "CREATE TABLE tags (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL)");
  InstallConfig(conn_, R"json({"primers": [
    {"name": "tag", "parameters": [{"name": "name", "type": "str"}],
     "compute": "SELECT jsonb_build_object('name', :name, 'n', (SELECT sum(n) FROM tags WHERE name = :name))",
     "depends_on": [{"table": "tags", "params": {"name": "name"}}]}
  ]})json");
  const std::vector<std::string> names = {"a/b", "100%", "it's", "'; DROP TABLE store_book; --", "%2F", "x\"y"};
  auto registry = LoadRegistry(conn_);
  ASSERT_TRUE(registry.ok());
  std::vector<std::string> keys;
  for (const auto& n : names) {
    auto key = EncodeKey("tag", (*registry)->Find("tag")->spec.params, {n});
    ASSERT_TRUE(key.ok());
    keys.push_back(*key);
    auto r = conn_.Exec("INSERT INTO tags (name, n) VALUES ($1, 1)", {n});
    ASSERT_TRUE(r.ok());
  }
  Prime(conn_, keys);
  DaemonProcess daemon(conninfo_);
  for (const auto& n : names) {
    auto r = conn_.Exec("UPDATE tags SET n = n + 1 WHERE name = $1", {n});
    ASSERT_TRUE(r.ok()) << r.status().message();
  }
  ASSERT_TRUE(WaitDrained(conn_));
  for (size_t i = 0; i < names.size(); ++i) {
    auto r = conn_.Exec("SELECT value->>'name', value->>'n' FROM kck.cache WHERE key = $1", {keys[i]});
    ASSERT_EQ(r->rows(), 1) << keys[i];
    EXPECT_EQ(r->get(0, 0), names[i]);
    EXPECT_EQ(r->get(0, 1), "2");
  }
  EXPECT_TRUE(conn_.Exec("SELECT count(*) FROM store_book").ok());  // still there
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, KilledMidStreamThenRestartedConverges) {
  Prime(conn_, {"title_list/1", "title_list/2", "book_count/1", "book_count/2", "total"});
  auto daemon = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{"--batch", "7"});
  std::thread writer([&] {
    auto w = Connect(conninfo_);
    for (int i = 0; i < 300; ++i) {
      (void)w.ExecScript("INSERT INTO store_book (author_id, title) VALUES (" + std::to_string(1 + i % 2) + ", 'k" +
                         std::to_string(i) + "')");
      if (i % 3 == 0) (void)w.ExecScript("DELETE FROM store_book WHERE id = (SELECT max(id) FROM store_book WHERE author_id = 2)");
    }
  });
  for (int k = 0; k < 4; ++k) {
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
    daemon->Kill(SIGKILL);
    daemon = std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{"--batch", "7"});
  }
  writer.join();
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, SurvivesPostgresRestartAndCatchesUp) {
  Prime(conn_, {"title_list/3", "book_count/3"});
  DaemonProcess daemon(conninfo_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(Cluster().Stop("fast").ok());
  ASSERT_TRUE(Cluster().Restart().ok());
  conn_ = Connect(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (3, 'after restart')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/3").find("after restart") != std::string::npos; },
                      std::chrono::seconds(20)));
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_TRUE(daemon.running());
}

TEST_F(DaemonTest, TwoDaemonsApplyEveryChangeExactlyOnce) {
  Prime(conn_, {"book_count/1", "book_count/2", "title_list/1", "total"});
  DaemonProcess a(conninfo_, {"--batch", "5"});
  DaemonProcess b(conninfo_, {"--batch", "5"});
  std::thread w1([&] {
    auto w = Connect(conninfo_);
    for (int i = 0; i < 200; ++i) (void)w.ExecScript("INSERT INTO store_book (author_id, title) VALUES (1, 'a')");
  });
  std::thread w2([&] {
    auto w = Connect(conninfo_);
    for (int i = 0; i < 200; ++i) (void)w.ExecScript("INSERT INTO store_book (author_id, title) VALUES (2, 'b')");
  });
  w1.join();
  w2.join();
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "book_count/1"), "210");
  EXPECT_EQ(Stored(conn_, "book_count/2"), "210");
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(DaemonTest, SigtermExitsCleanly) {
  DaemonProcess daemon(conninfo_);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int status = daemon.Kill(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// --until-idle applies what is queued, including the changes its own writes
// cascade into, then exits 0; what is written afterwards stays queued.
TEST_F(BookstoreTest, UntilIdleAppliesEveryPendingChangeThenExits) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "summary", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT jsonb_build_object('titles', jsonb_array_length(value)) FROM kck.cache WHERE key = 'title_list/' || :author_id",
     "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]}]})json");
  Prime(conn_, {"title_list/1", "summary/1", "title_list/2"});
  for (int i = 0; i < 12; ++i) MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1 + " + std::to_string(i % 2) + ", 'queued')");
  ASSERT_GE(OutboxDepth(conn_), 12);  // and the primed products' own changes
  DaemonProcess drain(conninfo_, {"--until-idle", "--batch", "5"});
  EXPECT_EQ(drain.ExitCode(), 0);
  EXPECT_EQ(OutboxDepth(conn_), 0);
  EXPECT_EQ(Stored(conn_, "summary/1"), "{\"titles\": 16}");
  ExpectCacheMatchesRecompute(conn_);

  DaemonProcess idle(conninfo_, {"--until-idle"});
  EXPECT_EQ(idle.ExitCode(std::chrono::seconds(10)), 0);  // nothing queued: exits at once
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'later')");
  EXPECT_EQ(OutboxDepth(conn_), 1);
}

// A backlog drained in several batches: the first batch's compute already
// sees every queued change, so the later batches find the product fresh
// and neither compute nor write it again.
TEST_F(DaemonTest, ABacklogDrainedInSeveralBatchesComputesEachProductOnce) {
  Prime(conn_, {"title_list/1", "title_list/2"});
  MustExec(conn_, "CREATE TABLE cache_writes (key text, n int DEFAULT 1)");
  MustExec(conn_, "CREATE FUNCTION count_cache_write() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN INSERT INTO cache_writes (key) VALUES (NEW.key); RETURN NULL; END $$");
  MustExec(conn_, "CREATE TRIGGER count_cache_write AFTER UPDATE ON kck.cache FOR EACH ROW "
                  "EXECUTE FUNCTION count_cache_write()");
  // Ten single-row updates for author 1 (store_book 20, 40, ...), one per
  // transaction, then one 150-row statement that reaches both authors.
  for (int i = 1; i <= 10; ++i) {
    MustExec(conn_, "UPDATE store_book SET title = 'queued " + std::to_string(i) + "' WHERE id = " +
                        std::to_string(20 * i));
  }
  MustExec(conn_, "UPDATE store_book SET price = 1 WHERE id <= 150");
  DaemonProcess drain(conninfo_, {"--until-idle", "--batch", "2"});
  EXPECT_EQ(drain.ExitCode(), 0);
  EXPECT_EQ(OutboxDepth(conn_), 0);
  auto writes = conn_.Exec("SELECT count(*) FROM cache_writes WHERE key = 'title_list/1'");
  ASSERT_TRUE(writes.ok());
  EXPECT_EQ(writes->get(0, 0), "1") << "title_list/1 computed again for changes its stored value already showed";
  EXPECT_NE(Stored(conn_, "title_list/1").find("queued 10"), std::string::npos);
  ExpectCacheMatchesRecompute(conn_);
}

TEST(UntilIdleTest, ExitsOneWhenTheDatabaseCannotBeReached) {
  DaemonProcess drain("host=/nonexistent-kck-socket-dir dbname=none connect_timeout=2", {"--until-idle"});
  EXPECT_EQ(drain.ExitCode(std::chrono::seconds(10)), 1);
}

// A database kck was never installed in (or uninstalled from with
// --drop-data): the primers cannot load, and --until-idle exits 1 (it
// stayed in its event loop with its connections open; kck.testing.drain()
// runs it).
TEST(UntilIdleTest, ExitsOneWhenKckIsNotInstalled) {
  DaemonProcess drain(FreshDatabase(), {"--until-idle"});
  EXPECT_EQ(drain.ExitCode(std::chrono::seconds(10)), 1);
}

// kck uninstall --drop-data under a running daemon: one error saying why,
// no flood of failed batches or idle looks, and once kck install creates
// the schema again the daemon connects, registers and applies changes.
TEST_F(BookstoreTest, ADaemonWaitsOutADroppedSchemaAndResumesAfterInstall) {
  InstallConfig(conn_, kBookstoreConfig);
  const std::string log = LogPath("daemon_schema_dropped");
  DaemonProcess daemon(conninfo_, {}, log, "info");
  ASSERT_TRUE(WaitForLog(log, "connected, listening")) << FileText(log);
  auto dropped = Uninstall(conn_, true, false);
  ASSERT_TRUE(dropped.ok()) << dropped.status().message();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const std::string text = FileText(log);
  EXPECT_EQ(Occurrences(text, "kck's schema is missing or incomplete"), 1u) << text;
  EXPECT_EQ(Occurrences(text, "changes stay queued"), 0u) << text;
  EXPECT_EQ(Occurrences(text, "warning marking the daemon idle"), 0u) << text;
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1"});
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'after reinstall')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "title_list/1").find("after reinstall") != std::string::npos; },
                      std::chrono::seconds(15)))
      << FileText(log);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.listeners"), "1");
  EXPECT_TRUE(daemon.running());
}

// The example's title_list (examples/bookstore, embedded for kck demo) is
// ordered by id, and its insert augment must give that order whatever
// order the inserts arrive in: a book inserted by a transaction that
// commits after a later one's (or with an explicit lower id) is applied
// after it. Single-row and 150-row inserts, one daemon.
TEST(ExampleConfigTest, InsertsAugmentedInAnyOrderMatchARecompute) {
  const std::string conninfo = FreshDatabase();
  pg::Connection conn = Connect(conninfo);
  MustExec(conn, std::string(sql::File("bookstore/schema.sql")));
  InstallConfig(conn, std::string(sql::File("bookstore/primers.json")));
  Prime(conn, {"title_list/1", "title_list/2"});
  DaemonProcess daemon(conninfo);
  pg::Connection early = Connect(conninfo);
  MustExec(early, "BEGIN; INSERT INTO store_book (author_id, title) VALUES (1, 'early, committed last')");
  MustExec(conn, "INSERT INTO store_book (author_id, title) VALUES (1, 'late, committed first')");
  ASSERT_TRUE(WaitDrained(conn));
  MustExec(early, "COMMIT");
  MustExec(conn, "INSERT INTO store_book (id, author_id, title) VALUES (100, 2, 'id 100'), (50, 2, 'id 50')");
  ASSERT_TRUE(WaitDrained(conn));
  ExpectCacheMatchesRecompute(conn);
  MustExec(conn, "INSERT INTO store_book (id, author_id, title) SELECT 1000 - i, 1 + i % 2, 'bulk ' || i "
                 "FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn));
  ExpectCacheMatchesRecompute(conn);
}

TEST_F(BookstoreTest, ProductsThatDependOnProductsCascade) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "summary", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT jsonb_build_object('titles', jsonb_array_length(value)) FROM kck.cache WHERE key = 'title_list/' || :author_id",
     "depends_on": [{"primer": "title_list", "params": {"author_id": "author_id"}}]}]})json");
  Prime(conn_, {"title_list/1", "summary/1"});
  EXPECT_EQ(Stored(conn_, "summary/1"), "{\"titles\": 10}");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'cascade')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "summary/1") == "{\"titles\": 11}"; }));
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}


// Keys of one primer are recomputed in one statement; when one of them
// fails, each is computed alone so the error lands on its own key.
TEST_F(BookstoreTest, ManyKeysOfOnePrimerComputeTogetherAndFailAlone) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "fragile", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(100 / (SELECT count(*) - 9 FROM store_book WHERE author_id = :author_id))",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json");
  Prime(conn_, {"fragile/1", "fragile/2", "fragile/3"});
  DaemonProcess daemon(conninfo_);
  // One statement touching three authors: 1 loses book 20 to 2 (9 books: division by zero), 2 loses
  // book 21 to 3 (still 10 books), 3 gains one (11 books).
  MustExec(conn_, "UPDATE store_book SET author_id = CASE WHEN id = 20 THEN 2 ELSE 3 END WHERE id IN (20, 21)");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] {
    // fragile/2 computes its stored value again: nothing to write.
    auto r = conn_.Exec("SELECT count(*) FROM kck.cache WHERE version = 2 OR error IS NOT NULL");
    return r.ok() && r->get(0, 0) == "2";
  }));
  auto r = conn_.Exec("SELECT key, value::text, error IS NOT NULL FROM kck.cache ORDER BY key");
  EXPECT_EQ(r->get(0, 1), "100");  // fragile/1 keeps its value...
  EXPECT_EQ(r->get(0, 2), "t");    // ...and carries the error
  EXPECT_EQ(r->get(1, 1), "100");  // fragile/2: 10 books
  EXPECT_EQ(r->get(1, 2), "f");
  EXPECT_EQ(r->get(2, 1), "50");   // fragile/3: 11 books
  EXPECT_EQ(Stored(conn_, "fragile/3"), "50");
}

// --log-format json: every line the daemon logs is one JSON object, its
// message escaped (a compute error quotes the primer and key).
TEST_F(DaemonTest, JsonLogLinesParseOneByOne) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "fragile", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(100 / (SELECT count(*) - 9 FROM store_book WHERE author_id = :author_id))",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json");
  Prime(conn_, {"fragile/1"});
  MustExec(conn_, "DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 1)");
  auto [rc, out] = RunKckShell("--db '" + conninfo_ + "' --log-format json listen --until-idle", "2>&1");
  EXPECT_EQ(rc, 0) << out;
  std::istringstream lines(out);
  std::string line, messages;
  int parsed = 0;
  while (std::getline(lines, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.contains("time") && j.contains("level") && j.contains("message")) << line;
    messages += j["message"].get<std::string>() + "\n";
    ++parsed;
  }
  EXPECT_GE(parsed, 2) << out;
  EXPECT_NE(messages.find("primer \"fragile\": key \"fragile/1\": compute failed"), std::string::npos) << out;
  EXPECT_NE(messages.find("--until-idle: the outbox is empty, exiting"), std::string::npos) << out;
}

}  // namespace
}  // namespace kck::testing
