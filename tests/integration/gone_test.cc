// Products of rows that are gone: a compute that finds nothing removes the
// product (it does not keep the old value with an error), `kck get` says the
// product does not exist, and removing a primer removes its products.
#include <cstdio>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// Runs the kck binary; returns exit code and stdout + stderr.
std::pair<int, std::string> RunKckAll(const std::string& args) { return RunKckShell(args, "2>&1"); }

// A product per book: no row once the book is deleted.
const char* kBookConfig = R"json({"primers": [
  {"name": "book", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('title', title) FROM store_book WHERE id = :id",
   "depends_on": [{"table": "store_book", "params": {"id": "id"}}]},
  {"name": "book_title", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT to_jsonb(title) FROM store_book WHERE id = :id ORDER BY id",
   "depends_on": [{"table": "store_book", "params": {"id": "id"}}]}]})json";

const char* kPythonBookConfig = R"json({"source": "django", "primers": [
  {"name": "py", "engine": "python", "parameters": [{"name": "n", "type": "int"}],
   "depends_on": [{"table": "store_book", "params": {"n": "author_id"}}]}]})json";

std::string FakeWorker() {
  return std::string("/usr/bin/python3 ") + KCK_SOURCE_DIR + "/tests/integration/fake_worker.py";
}

using GoneTest = BookstoreTest;

TEST_F(GoneTest, SqlComputeWithNoRowRemovesTheProduct) {
  InstallConfig(conn_, kBookConfig);
  Prime(conn_, {"book/3", "book/4", "book/5", "book_title/3"});
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "DELETE FROM store_book WHERE id IN (3, 4)");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book/3") == "<absent>"; })) << Stored(conn_, "book/3");
  EXPECT_EQ(Stored(conn_, "book/4"), "<absent>");  // computed together with book/3: one statement
  EXPECT_EQ(Stored(conn_, "book_title/3"), "<absent>");
  EXPECT_EQ(Stored(conn_, "book/5"), R"({"title": "book 5"})");
  EXPECT_TRUE(daemon.running());
}

TEST_F(GoneTest, GetOfAProductWithNoRowExitsOneAndStoresNothing) {
  InstallConfig(conn_, kBookConfig);
  auto [code, out] = RunKckAll("--db '" + conninfo_ + "' get book/999");
  EXPECT_EQ(code, 1) << out;
  EXPECT_EQ(out, "kck: product \"book/999\" does not exist (primer \"book\" computed no row)\n");
  EXPECT_EQ(Stored(conn_, "book/999"), "<absent>");
  auto ok = RunKckAll("--db '" + conninfo_ + "' get book/5");
  EXPECT_EQ(ok.first, 0) << ok.second;
}

TEST_F(GoneTest, PythonWorkerGoneReplyRemovesTheProduct) {
  InstallConfig(conn_, kPythonBookConfig);
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) VALUES ('py/404', 'py', '1', 1), "
                  "('py/1', 'py', '1', 1)");
  DaemonProcess daemon(conninfo_, {"--python-worker", FakeWorker()});
  MustExec(conn_, "SELECT kck.queue_refresh(ARRAY['py/404', 'py/1'])");
  ASSERT_TRUE(WaitDrained(conn_));
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "py/404") == "<absent>"; })) << Stored(conn_, "py/404");
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "py/1") != "1"; }));
}

TEST_F(GoneTest, RemovingAPrimerDeletesItsProducts) {
  InstallConfig(conn_, kBookstoreConfig);
  Prime(conn_, {"title_list/1", "title_list/2", "book_count/1"});
  auto config = ParseConfig(
      R"json({"primers": [{"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
        "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
        "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json",
      "test.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto dry = Install(conn_, *config, true);
  ASSERT_TRUE(dry.ok()) << dry.status().message();
  EXPECT_EQ(Stored(conn_, "title_list/1"), "[\"book 20\", \"book 40\", \"book 60\", \"book 80\", \"book 100\", "
                                           "\"book 120\", \"book 140\", \"book 160\", \"book 180\", \"book 200\"]");
  auto report = Install(conn_, *config, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  std::string lines;
  for (const auto& l : report->lines) lines += l + "\n";
  EXPECT_NE(lines.find("primer title_list: removed (2 products deleted)\n"), std::string::npos) << lines;
  EXPECT_NE(lines.find("primer total: removed (0 products deleted)\n"), std::string::npos) << lines;
  EXPECT_EQ(Stored(conn_, "title_list/1"), "<absent>");
  EXPECT_EQ(Stored(conn_, "title_list/2"), "<absent>");
  EXPECT_EQ(Stored(conn_, "book_count/1"), "10");
}

}  // namespace
}  // namespace kck::testing
