// Bad input, one kind per test: the daemon reports it, goes on, and a
// later good change is applied. Malformed outbox rows, computes that fail,
// hang or return the wrong type, source tables altered under the daemon,
// and bad keys given to `kck get`.
#include <sstream>
#include <algorithm>
#include <string>

#include "tests/torture/torture_helpers.h"

namespace kck::torture {
namespace {

using kck::testing::BookstoreTest;
using kck::testing::InstallConfig;
using kck::testing::kBookstoreConfig;
using kck::testing::WaitFor;

// A bookstore database with its primers stored for a few authors and a
// daemon whose log the test can read.
class BadInputTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    conn_ = kck::testing::Connect(TestConnInfo(conninfo_));
  }
  void InstallAndPrime(const std::string& config, const std::vector<std::string>& keys) {
    InstallConfig(conn_, config);
    PrimeKeys(conn_, keys);
  }
  void StartDaemon(std::vector<std::string> extra = {}) {
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) c = (c == '/') ? '_' : c;
    daemon_ = std::make_unique<Daemon>(conninfo_, LogDir() + "/" + name + ".log", std::move(extra));
  }
  bool StoredContains(const std::string& key, const std::string& text, std::chrono::seconds limit = 30s) {
    return WaitFor([&] { return Stored(conn_, key).find(text) != std::string::npos; }, limit);
  }
  // The good change every test ends with, and the wait for its effect.
  void ExpectLaterGoodChangeApplied() {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'good after bad')");
    EXPECT_TRUE(StoredContains("title_list/1", "good after bad"))
        << "a good change after the bad input was not applied: title_list/1 = " << Stored(conn_, "title_list/1")
        << "; " << OutboxReport(conn_) << "\n" << Tail(daemon_->log(), 15);
    EXPECT_TRUE(daemon_->running()) << "the daemon exited:\n" << Tail(daemon_->log(), 15);
  }
  void ExpectDrained() {
    EXPECT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), 30s))
        << "the outbox did not drain (bad input retried forever?): " << OutboxReport(conn_) << "\n"
        << Tail(daemon_->log(), 15);
  }
  std::unique_ptr<Daemon> daemon_;
};

// ---------------------------------------------------------------- malformed outbox rows

struct MalformedRow {
  const char* name;
  const char* tbl;
  const char* op;
  const char* old_sql;  // SQL expressions for the row images
  const char* new_sql;
};

const MalformedRow kMalformedRows[] = {
    {"new_is_a_string", "public.store_book", "I", "NULL", "'\"just a string\"'"},
    {"new_is_a_number", "public.store_book", "I", "NULL", "'42'"},
    {"insert_without_image", "public.store_book", "I", "NULL", "NULL"},
    {"update_without_images", "public.store_book", "U", "NULL", "NULL"},
    {"update_old_array_new_object", "public.store_book", "U", "'[{\"author_id\": 1}]'", "'{\"author_id\": 2}'"},
    {"key_column_wrong_type", "public.store_book", "I", "NULL", "'{\"id\": 1, \"author_id\": \"abc\"}'"},
    {"key_column_is_an_object", "public.store_book", "I", "NULL", "'{\"id\": 1, \"author_id\": {\"x\": [1]}}'"},
    {"key_column_is_a_megabyte_object", "public.store_book", "I", "NULL",
     "jsonb_build_object('id', 1, 'author_id', jsonb_build_object('x', repeat('y', 1024 * 1024)))"},
    {"key_column_out_of_range", "public.store_book", "I", "NULL", "'{\"id\": 1, \"author_id\": 1e30}'"},
    {"bulk_array_of_scalars", "public.store_book", "I", "NULL", "'[1, \"x\", null, [2]]'"},
    {"unknown_table", "public.no_such_table", "I", "NULL", "'{\"id\": 1}'"},
    {"unqualified_table", "store_book", "I", "NULL", "'{\"id\": 1, \"author_id\": 1}'"},
    {"empty_table_name", "", "D", "'{\"id\": 1}'", "NULL"},
    {"truncate_with_images", "public.store_book", "T", "'{\"x\": 1}'", "'[]'"},
    {"refresh_without_key", "kck.refresh", "I", "NULL", "'{}'"},
    {"refresh_key_not_a_string", "kck.refresh", "I", "NULL", "'{\"key\": 5}'"},
    {"refresh_bad_key", "kck.refresh", "I", "NULL", "'{\"key\": \"title_list/abc\"}'"},
    {"refresh_unknown_primer", "kck.refresh", "I", "NULL", "'{\"key\": \"no_such_primer/1\"}'"},
    {"cache_change_without_key", "kck.cache", "U", "'{\"key\": 42}'", "'null'"},
    // An update that changes nothing (a fabricated insert would rightly be
    // augmented into book_count), with a 10 MB image on both sides.
    {"ten_megabyte_row_image", "public.store_book", "U",
     "jsonb_build_object('id', 1, 'author_id', 1, 'title', repeat('x', 10 * 1024 * 1024))",
     "jsonb_build_object('id', 1, 'author_id', 1, 'title', repeat('x', 10 * 1024 * 1024))"},
    {"ten_megabyte_bulk_image", "public.store_book", "U", "jsonb_build_array(jsonb_build_object('author_id', 2))",
     "(SELECT jsonb_agg(jsonb_build_object('author_id', i, 'pad', repeat('y', 100 * 1024))) FROM generate_series(1, 100) i)"},
};

void PrintTo(const MalformedRow& row, std::ostream* os) { *os << row.name; }

class MalformedChangeTest : public BadInputTest, public ::testing::WithParamInterface<MalformedRow> {};

// The malformed row and the good change are in the outbox before the
// daemon starts, so they are claimed in one batch.
TEST_P(MalformedChangeTest, DaemonGoesOnAndLaterGoodChangeIsApplied) {
  InstallAndPrime(kBookstoreConfig, {"title_list/1", "title_list/2", "book_count/1", "total"});
  const MalformedRow& row = GetParam();
  MustExec(conn_, std::string("INSERT INTO kck.changes (tbl, op, old, new) VALUES ('") + row.tbl + "', '" + row.op +
                      "', " + row.old_sql + ", " + row.new_sql + ")");
  StartDaemon();
  ExpectLaterGoodChangeApplied();
  ExpectDrained();
  ExpectConsistent(conn_, std::string("after malformed row ") + row.name);
  // Log lines quote payloads only up to a bounded length (a 10 MB image
  // once made a 10 MB warning line).
  std::istringstream log(daemon_->log());
  size_t longest = 0;
  for (std::string line; std::getline(log, line);) longest = std::max(longest, line.size());
  EXPECT_LT(longest, 4096u) << "a daemon log line of " << longest << " bytes";
}

INSTANTIATE_TEST_SUITE_P(Rows, MalformedChangeTest, ::testing::ValuesIn(kMalformedRows),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- computes that misbehave

// Fails (invalid input for integer) for the keys whose author has a book
// titled 'poison', and only for those.
const char* kPickyConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "picky", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(CASE WHEN title = 'poison' THEN to_jsonb(title::int) ELSE to_jsonb(title) END ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json";

TEST_F(BadInputTest, ComputeErrorsForSomeKeysOnly) {
  InstallAndPrime(kPickyConfig, {"title_list/1", "picky/1", "picky/2", "picky/3", "picky/4"});
  StartDaemon();
  // One statement: authors 1 and 3 get a poison title, 2 and 4 a fine one.
  MustExec(conn_, "UPDATE store_book SET title = CASE WHEN author_id % 2 = 1 THEN 'poison' ELSE 'fine' END"
                  " WHERE id IN (SELECT min(id) FROM store_book WHERE author_id <= 4 GROUP BY author_id)");
  for (const char* key : {"picky/2", "picky/4"})
    EXPECT_TRUE(StoredContains(key, "fine")) << key << " was not refreshed next to failing keys: " << Stored(conn_, key);
  for (const char* key : {"picky/1", "picky/3"}) {
    EXPECT_TRUE(WaitFor([&] { return Scalar(conn_, "SELECT error FROM kck.cache WHERE key = $1", {key}) != "<null>"; }, 30s))
        << key << ": no error recorded";
    EXPECT_EQ(Stored(conn_, key).find("poison"), std::string::npos) << key << ": the last good value was not kept";
  }
  ExpectLaterGoodChangeApplied();
  MustExec(conn_, "UPDATE store_book SET title = 'cured' WHERE title = 'poison'");
  ExpectDrained();
  ExpectConsistent(conn_, "after the poison titles were cured");
}

TEST_F(BadInputTest, ComputeSleepsPastComputeTimeout) {
  InstallAndPrime(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "slow", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(count(*)) FROM store_book, LATERAL (SELECT pg_sleep(CASE WHEN title = 'slow' THEN 3 ELSE 0 END)) s WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json",
                  {"title_list/1", "title_list/2", "slow/1", "slow/2"});
  StartDaemon({"--compute-timeout", "1s"});
  MustExec(conn_, "UPDATE store_book SET title = 'slow' WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 2)");
  ExpectLaterGoodChangeApplied();
  std::printf("slow/2 while its compute times out: value %s, error %s\n", Stored(conn_, "slow/2").c_str(),
              Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'slow/2'").c_str());
  MustExec(conn_, "UPDATE store_book SET title = 'quick' WHERE title = 'slow'");
  ExpectDrained();
  ExpectConsistent(conn_, "after the slow title was removed");
}

struct WrongType {
  const char* name;
  const char* compute;  // must mention :author_id
};

const WrongType kWrongTypes[] = {
    {"text_that_is_not_json", "SELECT 'not json {'::text WHERE :author_id > 0"},
    {"two_columns", "SELECT 1, 2 WHERE :author_id > 0"},
    {"two_rows", "SELECT g FROM generate_series(1, 2) g WHERE :author_id > 0"},
    {"no_row", "SELECT 1 WHERE :author_id < 0"},
    {"record", "SELECT row(1, 'x') WHERE :author_id > 0"},
    {"float_nan", "SELECT 'NaN'::float8 WHERE :author_id > 0"},
    {"bytea", "SELECT '\\\\x00ff'::bytea WHERE :author_id > 0"},
    {"int_array", "SELECT ARRAY[1, NULL, 3] WHERE :author_id > 0"},
};

void PrintTo(const WrongType& type, std::ostream* os) { *os << type.name; }

class WrongTypeTest : public BadInputTest, public ::testing::WithParamInterface<WrongType> {};

// The odd product is stored by hand (a read might refuse it), then a
// change maps to it and to a good product in the same batch.
TEST_P(WrongTypeTest, DaemonGoesOnAndLaterGoodChangeIsApplied) {
  std::string config = std::string(R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "odd", "parameters": [{"name": "author_id", "type": "int"}], "compute": ")json") +
                       GetParam().compute + R"json(",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]}]})json";
  auto parsed = ParseConfig(config, "wrong_type.json");
  if (!parsed.ok()) GTEST_SKIP() << "rejected by the config parser: " << parsed.status().message();
  auto installed = Install(conn_, *parsed, false);
  if (!installed.ok()) GTEST_SKIP() << "rejected at install: " << installed.status().message();
  PrimeKeys(conn_, {"title_list/1"});
  MustExec(conn_, "INSERT INTO kck.cache (key, primer, value, version) VALUES ('odd/1', 'odd', '0', 1)");
  StartDaemon();
  ExpectLaterGoodChangeApplied();
  ExpectDrained();
  std::printf("odd/1 with compute %s: value %s, error %s\n", GetParam().compute, Stored(conn_, "odd/1").c_str(),
              Scalar(conn_, "SELECT error FROM kck.cache WHERE key = 'odd/1'").c_str());
}

INSTANTIATE_TEST_SUITE_P(Computes, WrongTypeTest, ::testing::ValuesIn(kWrongTypes),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- source tables altered under the daemon

struct Alteration {
  const char* name;
  const char* ddl;
};

const Alteration kAlterations[] = {
    {"add_column", "ALTER TABLE store_book ADD COLUMN isbn text"},
    {"rename_captured_column", "ALTER TABLE store_book RENAME COLUMN author_id TO writer_id"},
    {"rename_uncaptured_column", "ALTER TABLE store_book RENAME COLUMN title TO name"},
    {"drop_uncaptured_column", "ALTER TABLE store_book DROP COLUMN price"},
    {"drop_captured_column", "ALTER TABLE store_book DROP COLUMN author_id"},
    {"change_captured_column_type", "ALTER TABLE store_book ALTER COLUMN author_id TYPE text"},
    {"drop_table", "DROP TABLE store_book"},
};

void PrintTo(const Alteration& alteration, std::ostream* os) { *os << alteration.name; }

class AlteredSourceTest : public BadInputTest, public ::testing::WithParamInterface<Alteration> {
 protected:
  void SetUp() override {
    BadInputTest::SetUp();
    MustExec(conn_, "DROP TABLE store_book; DROP TABLE store_author;" + TortureSchema(10));
    InstallAndPrime(kTortureConfig, TortureKeys(10));
  }
};

// The daemon has worked on the table before the DDL (its statements are
// prepared); afterwards writes to the table go on and a change to another
// table is applied.
TEST_P(AlteredSourceTest, DaemonGoesOnAndLaterGoodChangeIsApplied) {
  StartDaemon();
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (3, 'before ddl')");
  ASSERT_TRUE(StoredContains("title_list/3", "before ddl")) << Tail(daemon_->log(), 15);
  MustExec(conn_, GetParam().ddl);
  if (std::string(GetParam().name) != "drop_table") {
    Status write = conn_.ExecScript("INSERT INTO store_book DEFAULT VALUES");
    Status write2 = conn_.ExecScript("DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book)");
    EXPECT_TRUE(write2.ok()) << "after \"" << GetParam().ddl << "\" the application cannot write the table: "
                             << write2.message();
    (void)write;  // fails for NOT NULL columns without default: the application's business
  }
  MustExec(conn_, "INSERT INTO store_review (author_id, stars) VALUES (1, 5)");
  const std::string stars_sql =
      "SELECT jsonb_build_object('n', count(*), 'sum', coalesce(sum(stars), 0))::text FROM store_review WHERE author_id = 1";
  EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "stars/1") == Scalar(conn_, stars_sql); }, 30s))
      << "a change to another table was not applied after \"" << GetParam().ddl << "\": stars/1 = "
      << Stored(conn_, "stars/1") << "; " << OutboxReport(conn_) << "\n" << Tail(daemon_->log(), 15);
  EXPECT_TRUE(WaitFor([&] { return Stored(conn_, "review_total") == Scalar(conn_, "SELECT count(*) FROM store_review"); }, 30s))
      << "review_total (augment) = " << Stored(conn_, "review_total");
  EXPECT_TRUE(daemon_->running()) << "the daemon exited:\n" << Tail(daemon_->log(), 15);
  ExpectDrained();
}

INSTANTIATE_TEST_SUITE_P(Ddl, AlteredSourceTest, ::testing::ValuesIn(kAlterations),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- bad keys for `kck get`

class BadKeyTest : public BadInputTest {
 protected:
  void SetUp() override {
    BadInputTest::SetUp();
    InstallConfig(conn_, std::string(kBookstoreConfig).substr(0, std::string(kBookstoreConfig).rfind(']')) + R"json(,
      {"name": "tag", "parameters": [{"name": "name", "type": "str"}],
       "compute": "SELECT to_jsonb(CAST(:name AS text))", "depends_on": []}]})json");
  }
  // kck get KEY must exit 2 with one line on stderr and store nothing.
  void ExpectRejected(const std::string& key, const std::string& what) {
    std::string stored_before = StoredCount();
    CommandResult r = RunKck(conninfo_, {"get", key});
    ExpectOneLineError(r, what);
    EXPECT_EQ(StoredCount(), stored_before) << what << ": something was stored";
  }
  void ExpectOneLineError(const CommandResult& r, const std::string& what) {
    size_t newlines = std::count(r.err.begin(), r.err.end(), '\n');
    EXPECT_EQ(r.exit_code, 2) << what << ": kck get exit code; stderr: " << r.err.substr(0, 300);
    EXPECT_TRUE(newlines == 1 && r.err.back() == '\n')
        << what << ": stderr should be one line, got " << newlines << " newlines: " << r.err.substr(0, 300);
  }
  std::string StoredCount() { return Scalar(conn_, "SELECT count(*) FROM kck.cache"); }
};

std::string Hex(unsigned char byte) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02x", byte);
  return buf;
}

// Every byte value (NUL cannot travel in argv) in an int parameter.
// Four kck processes at a time: 255 of them one by one take too long.
TEST_F(BadKeyTest, EveryByteInAnIntKeyIsRejected) {
  std::vector<CommandResult> results(256);
  std::vector<std::thread> runners;
  for (int first = 1; first <= 4; ++first)
    runners.emplace_back([&, first] {
      for (int byte = first; byte < 256; byte += 4)
        results[byte] = RunKck(conninfo_, {"get", "title_list/1" + std::string(1, static_cast<char>(byte)) + "x"});
    });
  for (auto& r : runners) r.join();
  for (int byte = 1; byte < 256; ++byte) ExpectOneLineError(results[byte], "byte " + Hex(byte));
  EXPECT_EQ(StoredCount(), "0") << "something was stored";
}

TEST_F(BadKeyTest, InvalidUtf8InAStringKeyIsRejected) {
  const std::pair<const char*, std::string> keys[] = {
      {"lone 0xff", "tag/\xff"},
      {"truncated sequence", "tag/\xc3"},
      {"bad continuation", "tag/\xc3\x28"},
      {"overlong slash", "tag/a\xc0\xaf" "b"},
      {"utf-16 surrogate", "tag/\xed\xa0\x80"},
      {"newline in an int key", "title_list/1\n"},
  };
  for (const auto& [what, key] : keys) ExpectRejected(key, what);
}

// A str value may hold any character but NUL (DESIGN.md, Keys; the shared
// vectors have "a b\tc\nd\r"): such a key is stored under exactly itself.
TEST_F(BadKeyTest, NewlineInAStringKeyIsStoredUnderExactlyThatKey) {
  CommandResult r = RunKck(conninfo_, {"get", "tag/a\r\nb"});
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(0, 300);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE key = E'tag/a\\r\\nb'"), "1");
}

TEST_F(BadKeyTest, HundredKilobyteKeysAreRejected) {
  ExpectRejected("tag/" + std::string(100 * 1024, 'a'), "100 KB string key (compressible)");
  std::mt19937_64 rng(Seed());
  std::string noise;
  for (int i = 0; i < 100 * 1024; ++i) noise += "abcdefghijklmnopqrstuvwxyz0123456789"[rng() % 36];
  ExpectRejected("tag/" + noise, "100 KB string key (incompressible)");
  ExpectRejected("title_list/" + std::string(100 * 1024, '7'), "100 KB int key");
  ExpectRejected(std::string(100 * 1024, 'p') + "/1", "100 KB primer name");
}

// NUL cannot be passed through argv; the library call behind kck get must
// reject it rather than store a truncated key.
TEST_F(BadKeyTest, NulInAKeyIsRejectedByTheLibrary) {
  auto registry = LoadRegistry(conn_);
  ASSERT_TRUE(registry.ok()) << registry.status().message();
  Products products(conn_, *registry);
  for (std::string key : {std::string("tag/a\0b", 7), std::string("title_list/1\0", 13), std::string("tag/\0", 5)}) {
    auto got = products.Get(key);
    EXPECT_FALSE(got.ok()) << "key with NUL accepted, value " << *got;
    if (!got.ok()) {
      EXPECT_EQ(got.status().kind(), Status::Kind::kInvalid) << got.status().message();
    }
  }
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache"), "0") << "something was stored";
}

}  // namespace
}  // namespace kck::torture
