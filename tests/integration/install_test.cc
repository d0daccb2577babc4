// kck install / uninstall against a real catalog, and the kck command's
// exit codes and one-line errors.
#include <cstdio>
#include <memory>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

class InstallTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
  }
  StatusOr<InstallReport> Run(const std::string& json, bool dry_run = false) {
    auto config = ParseConfig(json, "primers.json");
    if (!config.ok()) return config.status();
    return Install(conn_, *config, dry_run);
  }
  std::string Scalar(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() > 0 ? std::string(r->get(0, 0)) : "<error>";
  }
};

TEST_F(InstallTest, SecondRunChangesNothing) {
  auto first = Run(kBookstoreConfig);
  ASSERT_TRUE(first.ok()) << first.status().message();
  EXPECT_TRUE(first->changed);
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'kck_capture_%'"), "4");
  std::string catalog = Scalar("SELECT string_agg(tgname || tgfoid::text, ',' ORDER BY tgname) FROM pg_trigger");
  auto second = Run(kBookstoreConfig);
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->changed);
  EXPECT_EQ(Scalar("SELECT string_agg(tgname || tgfoid::text, ',' ORDER BY tgname) FROM pg_trigger"), catalog);
  EXPECT_EQ(Scalar("SELECT max(version) FROM kck.schema_version"), LatestSchemaVersion());
}

TEST_F(InstallTest, SqlPrimersGetTheirComputeForDjangoAlsoWhenRegisteredBeforeIt) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  const std::string client = Scalar("SELECT client_compute FROM kck.primers WHERE name = 'title_list'");
  EXPECT_EQ(client.rfind("SELECT to_jsonb(kck_r.kck_value)::text AS value FROM (", 0), 0u) << client;
  EXPECT_NE(client.find("= (%(author_id)s::bigint)"), std::string::npos) << client;
  // A registration of schema 10 has none; install fills it in without
  // calling the primer changed.
  MustExec(conn_, "UPDATE kck.primers SET client_compute = NULL");
  auto again = Run(kBookstoreConfig);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(again->changed);
  EXPECT_EQ(Scalar("SELECT client_compute FROM kck.primers WHERE name = 'title_list'"), client);
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.primers WHERE client_compute IS NULL"), "0");
}

TEST_F(InstallTest, DryRunPrintsSqlAndChangesNothing) {
  auto report = Run(kBookstoreConfig, true);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_NE(report->sql.find("CREATE TABLE kck.cache"), std::string::npos);
  EXPECT_NE(report->sql.find("CREATE OR REPLACE TRIGGER kck_capture_upd"), std::string::npos);
  EXPECT_NE(report->sql.find("INSERT INTO kck.primers"), std::string::npos);
  EXPECT_EQ(Scalar("SELECT to_regnamespace('kck') IS NULL"), "t");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'kck_%'"), "0");
}

TEST_F(InstallTest, ChangingTheConfigUpdatesTriggersAndRegistry) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  // Now title_list also maps by title, and total is gone.
  auto changed = Run(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "by_title", "parameters": [{"name": "title", "type": "str"}],
     "compute": "SELECT count(*) FROM store_book WHERE title = :title",
     "depends_on": [{"table": "store_book", "params": {"title": "title"}}]}]})json");
  ASSERT_TRUE(changed.ok()) << changed.status().message();
  EXPECT_TRUE(changed->changed);
  EXPECT_EQ(Scalar("SELECT string_agg(name, ',' ORDER BY name) FROM kck.primers"), "by_title,title_list");
  EXPECT_NE(Scalar("SELECT definition FROM kck.triggers WHERE tbl = 'public.store_book'").find("'title'"),
            std::string::npos);
  // The new trigger really captures title.
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'captured')");
  EXPECT_EQ(Scalar("SELECT new->>'title' FROM kck.changes ORDER BY id DESC LIMIT 1"), "captured");
}

TEST_F(InstallTest, UninstallRemovesEveryTrigger) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  auto report = Uninstall(conn_, false, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'kck_%'"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_proc WHERE proname LIKE 'capture:%'"), "0");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'untracked')");
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.changes"), "0");
  ASSERT_TRUE(Uninstall(conn_, true, false).ok());
  EXPECT_EQ(Scalar("SELECT to_regnamespace('kck') IS NULL"), "t");
  ASSERT_TRUE(Run(kBookstoreConfig).ok());  // and back
}

TEST_F(InstallTest, CatalogErrorsNameThePrimerAndField) {
  struct Case {
    const char* rule;
    const char* expect;
  } cases[] = {
      {R"("depends_on": [{"table": "store_bok", "params": {"author_id": "author_id"}}])",
       "primer \"p\": depends_on[0]: unknown table \"store_bok\""},
      {R"("depends_on": [{"table": "store_book", "params": {"author_id": "writer"}}])",
       "primer \"p\": depends_on[0]: table \"public.store_book\" has no column \"writer\""},
      {R"("depends_on": [{"table": "store_book", "params": {"author_id": "title"}}])",
       "column \"title\" is text but parameter \"author_id\" is int"},
      {R"("depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}, "update_of": ["pages"]}])",
       "primer \"p\": depends_on[0].update_of: table \"public.store_book\" has no column \"pages\""},
  };
  for (const auto& c : cases) {
    auto r = Run(std::string(R"({"primers": [{"name": "p", "parameters": [{"name": "author_id", "type": "int"}],
      "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id", )") + c.rule + "}]}");
    ASSERT_FALSE(r.ok()) << c.rule;
    EXPECT_NE(r.status().message().find(c.expect), std::string::npos) << r.status().message();
  }
  auto bad_sql = Run(R"({"primers": [{"name": "p", "parameters": [{"name": "author_id", "type": "int"}],
      "compute": "SELECT count(*) FROM store_books WHERE author_id = :author_id"}]})");
  ASSERT_FALSE(bad_sql.ok());
  EXPECT_NE(bad_sql.status().message().find("primer \"p\": compute: SQL does not prepare: relation \"store_books\" does not exist"),
            std::string::npos)
      << bad_sql.status().message();
  // Two columns: the second was dropped, and "SELECT :x, 2" stored :x.
  auto two = Run(R"({"primers": [{"name": "p", "parameters": [{"name": "author_id", "type": "int"}],
      "compute": "SELECT count(*), max(title) FROM store_book WHERE author_id = :author_id;"}]})");
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("primer \"p\": compute: returns 2 columns; it returns one"), std::string::npos)
      << two.status().message();
  // PostgreSQL's position is told in the primer's SQL as written, not in
  // kck's wrapping of it (a syntax error was "at character 96").
  auto syntax = Run(R"({"primers": [{"name": "p", "parameters": [], "compute": "SELEC 1"}]})");
  ASSERT_FALSE(syntax.ok());
  EXPECT_EQ(syntax.status().message(),
            "primer \"p\": compute: SQL does not prepare: syntax error at or near \"1\" at character 7");
  // The primer is named once, also where compiling its SQL fails.
  auto unknown = Run(R"({"primers": [{"name": "p", "parameters": [{"name": "author_id", "type": "int"}],
      "compute": "SELECT count(*) FROM store_book WHERE author_id = :authorid"}]})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "primer \"p\": compute: unknown parameter :authorid (known: :author_id)");
  EXPECT_EQ(Scalar("SELECT to_regnamespace('kck') IS NULL"), "t");  // nothing half-installed
}

// Runs the kck binary; returns exit code and stderr.
std::pair<int, std::string> RunKck(const std::string& args) { return RunKckShell(args, "2>&1 >/dev/null"); }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

TEST_F(InstallTest, CommandExitCodesAndOneLineErrors) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  std::string db = "--db " + Quote(conninfo_);
  auto [rc1, e1] = RunKck(db + " get title_list/05");
  EXPECT_EQ(rc1, 2);
  EXPECT_EQ(e1, "kck: primer \"title_list\": parameter \"author_id\" is written \"5\" in its canonical form, not "
                "\"05\" (key \"title_list/5\")\n");
  EXPECT_EQ(std::count(e1.begin(), e1.end(), '\n'), 1);
  auto [rc2, e2] = RunKck(db + " get nosuch/1");
  EXPECT_EQ(rc2, 2);
  EXPECT_NE(e2.find("unknown primer \"nosuch\""), std::string::npos) << e2;
  auto [rc3, e3] = RunKck("--db 'host=/nonexistent dbname=x' status");
  EXPECT_EQ(rc3, 1);
  EXPECT_NE(e3.find("could not connect"), std::string::npos) << e3;
  // A connection string libpq cannot parse is bad input; the daemon does
  // not retry it either.
  for (const char* command : {"status", "listen"}) {
    auto [rc, e] = RunKck(std::string("--db 'garbage===' ") + command);
    EXPECT_EQ(rc, 2) << command;
    EXPECT_EQ(e.rfind("kck: invalid connection string: ", 0), 0u) << e;
    EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 1) << e;
  }
  auto [rc4, e4] = RunKck(db + " install --config /nonexistent.json");
  EXPECT_EQ(rc4, 2);
  auto [rc5, e5] = RunKck("frobnicate");
  EXPECT_EQ(rc5, 2);
  auto [rc6, e6] = RunKck(db + " get title_list/1");
  EXPECT_EQ(rc6, 0) << e6;
  EXPECT_EQ(Stored(conn_, "title_list/1").substr(0, 9), "[\"book 20");
  // A refresh that finds the stored value keeps its version (schema 21);
  // one that finds a new value makes a new version.
  auto [rc7, e7] = RunKck(db + " refresh title_list/1 total");
  EXPECT_EQ(rc7, 0) << e7;
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'title_list/1'"), "1");
  MustExec(conn_, "UPDATE store_book SET title = title || ' (2nd ed.)' WHERE author_id = 1");
  auto [rc7b, e7b] = RunKck(db + " refresh title_list/1");
  EXPECT_EQ(rc7b, 0) << e7b;
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'title_list/1'"), "2");
  // A bad key among several: no key is refreshed (title_list/1 was, then
  // exit 2), though its value moved.
  MustExec(conn_, "UPDATE store_book SET title = title || ' (3rd ed.)' WHERE author_id = 1");
  auto [rc7c, e7c] = RunKck(db + " refresh title_list/1 bogus/1");
  EXPECT_EQ(rc7c, 2);
  EXPECT_EQ(e7c, "kck: unknown primer \"bogus\" in key \"bogus/1\"\n");
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'title_list/1'"), "2");
  auto [rc8, e8] = RunKck(db + " status --json");
  EXPECT_EQ(rc8, 0) << e8;
}

// Writes `json` to a temporary file and returns its path.
std::string ConfigFile(const std::string& json) {
  char path[] = "/tmp/kck-config-XXXXXX";
  int fd = mkstemp(path);
  FILE* f = fdopen(fd, "w");
  std::fputs(json.c_str(), f);
  std::fclose(f);
  return path;
}

// An augment reading a column the table does not have would make every
// INSERT fail: install refuses it like an unknown params column.
TEST_F(InstallTest, AugmentReadingAMissingColumnIsRejected) {
  std::string path = ConfigFile(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
     "augment": {"store_book": {"insert": "SELECT :value || to_jsonb(:new->>'titel')"}}}]})json");
  auto [rc, err] = RunKck("--db " + Quote(conninfo_) + " install --config " + path);
  std::remove(path.c_str());
  EXPECT_EQ(rc, 2) << err;
  EXPECT_NE(err.find("primer \"title_list\": augment.public.store_book.insert: table \"public.store_book\" has no "
                     "column \"titel\""),
            std::string::npos)
      << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(Scalar("SELECT to_regnamespace('kck') IS NULL"), "t");  // nothing installed
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'still writable')");
}

// The dry run prints a script: run as printed (as psql -f would), it
// installs what install would, so install then finds nothing to change.
// Every line of its comments is a comment, also where a parameter's
// literal spans lines, and the schema versions are recorded.
TEST_F(InstallTest, DryRunPrintsAScriptThatInstallsWhatInstallWould) {
  std::string path = ConfigFile(kBookstoreConfig);
  auto [rc, script] = RunKckShell("--db " + Quote(conninfo_) + " install --dry-run --config " + path, "2>/dev/null");
  std::remove(path.c_str());
  ASSERT_EQ(rc, 0) << script;
  EXPECT_EQ(Scalar("SELECT to_regnamespace('kck') IS NULL"), "t");
  MustExec(conn_, script);
  auto again = Run(kBookstoreConfig);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_FALSE(again->changed);
}

// The daemon runs with exactly the privileges DESIGN.md lists; the
// application's role needs none on schema kck.
TEST(Privileges, DaemonAndApplicationNeedOnlyTheListedPrivileges) {
  std::string conninfo = FreshDatabase();
  auto conn = Connect(conninfo);
  MustExec(conn, kBookstoreSchema);
  InstallConfig(conn, kBookstoreConfig);
  Prime(conn, {"title_list/1"});
  auto db = conn.Exec("SELECT current_database()");
  std::string dbname(db->get(0, 0));
  MustExec(conn, R"sql(
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kck_daemon') THEN CREATE ROLE kck_daemon LOGIN; END IF;
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kck_app') THEN CREATE ROLE kck_app LOGIN; END IF;
    END $$;
    GRANT USAGE ON SCHEMA kck TO kck_daemon;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA kck TO kck_daemon;
    GRANT SELECT ON store_book TO kck_daemon;
    GRANT SELECT, INSERT, UPDATE, DELETE ON store_book TO kck_app;
    GRANT USAGE ON SEQUENCE store_book_id_seq TO kck_app;
  )sql");
  DaemonProcess daemon(Cluster().ConnInfo(dbname) + " user=kck_daemon");
  auto app = Connect(Cluster().ConnInfo(dbname) + " user=kck_app");
  MustExec(app, "INSERT INTO store_book (author_id, title) VALUES (1, 'written by the app role')");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn, "title_list/1").find("written by the app role") != std::string::npos; }));
  EXPECT_TRUE(daemon.running());
  // A clean stop publishes what it timed (kck.primer_stats) with these privileges too.
  EXPECT_EQ(WEXITSTATUS(daemon.Kill(SIGTERM)), 0);
  EXPECT_EQ(Scalar(conn, "SELECT count(*) FROM kck.primer_stats WHERE primer = 'title_list' AND timings ? 'spec'"), "1");
}


TEST_F(InstallTest, ReinstallRepairsADroppedOrDisabledTrigger) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  MustExec(conn_, "DROP TRIGGER kck_capture_upd ON store_book");
  auto repaired = Run(kBookstoreConfig);
  ASSERT_TRUE(repaired.ok()) << repaired.status().message();
  EXPECT_TRUE(repaired->changed);
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'kck_capture_upd'"), "1");
  MustExec(conn_, "ALTER TABLE store_book DISABLE TRIGGER kck_capture_ins");
  ASSERT_TRUE(Run(kBookstoreConfig)->changed);
  EXPECT_EQ(Scalar("SELECT tgenabled FROM pg_trigger WHERE tgname = 'kck_capture_ins'"), "O");
  EXPECT_FALSE(Run(kBookstoreConfig)->changed);
}

// Writes while a table had no capture (kck uninstall, then kck install; a
// dropped or disabled trigger, then the install that repairs it) reach no
// product: the install that captures the table again has every stored
// product that depends on it recomputed. Single-row and 150-row writes,
// with a daemon running throughout.
TEST_F(InstallTest, WritesWhileATableHadNoCaptureAreAppliedOnceItHasOneAgain) {
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  Prime(conn_, {"title_list/1", "book_count/2", "total"});
  const std::string log = LogPath("install_recapture");
  DaemonProcess daemon(conninfo_, {}, log, "info");
  ASSERT_TRUE(Uninstall(conn_, false, false).ok());
  auto [rc, status] = RunKckShell("--db '" + conninfo_ + "' status", "2>&1");
  EXPECT_EQ(rc, 0) << status;
  EXPECT_NE(status.find("captures: none: no change reaches the 3 stored products (kck install captures the tables "
                        "again and recomputes them)"),
            std::string::npos)
      << status;
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'while uninstalled')");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 20, 'bulk' FROM generate_series(1, 150) i");
  auto reinstalled = Run(kBookstoreConfig);
  ASSERT_TRUE(reinstalled.ok()) << reinstalled.status().message();
  std::string lines;
  for (const auto& l : reinstalled->lines) lines += l + "\n";
  EXPECT_NE(lines.find("table public.store_book: capture trigger installed ("), std::string::npos) << lines;
  EXPECT_NE(lines.find("; the stored products that depend on it will be recomputed"), std::string::npos) << lines;
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_TRUE(WaitForLog(log, "table \"public.store_book\": kck install installed its capture while products were "
                              "stored")) << FileText(log);
  MustExec(conn_, "ALTER TABLE store_book DISABLE TRIGGER kck_capture_ins");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'while disabled')");
  ASSERT_TRUE(Run(kBookstoreConfig).ok());
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
