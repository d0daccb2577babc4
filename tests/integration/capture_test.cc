// Capture triggers end to end: every branch of the capture (single row and
// bulk; insert, update, delete) carries what the rules read, products that
// depend on products cascade in bulk too, and a schema change under a
// primer never breaks the application's statements.
#include <cstdio>
#include <memory>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// A primer keyed by the primary key: its rule reads only `id`.
const char* kBookByIdConfig = R"json({"primers": [
  {"name": "book", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT coalesce((SELECT jsonb_build_object('title', title, 'author_id', author_id) FROM store_book WHERE id = :id), '{}')",
   "depends_on": [{"table": "store_book", "params": {"id": "id"}}]}]})json";

class CaptureTest : public BookstoreTest {
 protected:
  std::string Scalar(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() > 0 ? std::string(r->get(0, 0)) : "<error: " + r.status().message() + ">";
  }
  // Runs `sql`, waits for the daemon, and checks the cache against a recompute.
  void ExecAndConverge(const std::string& sql) {
    MustExec(conn_, sql);
    ASSERT_TRUE(WaitDrained(conn_)) << sql;
    ExpectCacheMatchesRecompute(conn_);
  }
  // `table` (its `columns`, an int column `region` among them) partitioned
  // by region into 1 and 2, where a BEFORE INSERT trigger skips every row:
  // an UPDATE moving a row to region 2 leaves uneven transition tables.
  void CreateSkippingPartitions(const std::string& table, const std::string& columns) {
    MustExec(conn_, "CREATE TABLE " + table + " (" + columns + ") PARTITION BY LIST (region); "
                    "CREATE TABLE " + table + "_1 PARTITION OF " + table + " FOR VALUES IN (1); "
                    "CREATE TABLE " + table + "_2 PARTITION OF " + table + " FOR VALUES IN (2); "
                    "CREATE FUNCTION " + table + "_skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$; "
                    "CREATE TRIGGER skip BEFORE INSERT ON " + table + "_2 FOR EACH ROW EXECUTE FUNCTION " + table +
                    "_skip()");
  }
  // Installs `primers` (a JSON array) with `capture`, "plpgsql" or "c".
  void InstallWithCapture(const std::string& capture, const std::string& primers) {
    InstallConfig(conn_, "{\"capture\": \"" + capture + "\", \"capture_library\": \"" KCK_CAPTURE_MODULE
                         "\", \"primers\": " + primers + "}");
  }
};

TEST_F(CaptureTest, ProductsKeyedByThePrimaryKeySeeSingleRowAndBulkChanges) {
  InstallConfig(conn_, kBookByIdConfig);
  Prime(conn_, {"book/3", "book/150", "book/160", "book/201", "book/250", "book/260"});
  DaemonProcess daemon(conninfo_);
  // Single-row statements.
  ExecAndConverge("INSERT INTO store_book (author_id, title) VALUES (1, 'single')");  // id 201
  EXPECT_NE(Stored(conn_, "book/201").find("single"), std::string::npos);
  ExecAndConverge("UPDATE store_book SET title = 'one row' WHERE id = 3");
  EXPECT_NE(Stored(conn_, "book/3").find("one row"), std::string::npos);
  ExecAndConverge("DELETE FROM store_book WHERE id = 160");
  EXPECT_EQ(Stored(conn_, "book/160"), "{}");
  // Bulk statements (more than kBulkRows rows).
  ExecAndConverge("UPDATE store_book SET title = title || '-b' WHERE id <= 150");
  EXPECT_NE(Stored(conn_, "book/3").find("one row-b"), std::string::npos);
  ExecAndConverge("INSERT INTO store_book (author_id, title) SELECT 2, 'bulk ' || i FROM generate_series(1, 150) i");
  EXPECT_NE(Stored(conn_, "book/250").find("bulk"), std::string::npos);
  ExecAndConverge("DELETE FROM store_book WHERE id > 200");
  EXPECT_EQ(Stored(conn_, "book/201"), "{}");
  EXPECT_EQ(Stored(conn_, "book/260"), "{}");
}

// Bulk images hold the primary key only when a rule reads it.
TEST_F(CaptureTest, BulkImagesCarryThePrimaryKeyOnlyWhenARuleReadsIt) {
  InstallConfig(conn_, kBookstoreConfig);
  MustExec(conn_, "UPDATE store_book SET price = price + 1");
  EXPECT_EQ(Scalar("SELECT bool_or(e ? 'id')::text || bool_and(e ? 'author_id')::text "
                   "FROM kck.changes, jsonb_array_elements(new) e"),
            "falsetrue");
  MustExec(conn_, "DELETE FROM kck.changes");
  InstallConfig(conn_, kBookByIdConfig);
  MustExec(conn_, "UPDATE store_book SET price = price + 1");
  EXPECT_EQ(Scalar("SELECT bool_and(e ? 'id')::text || bool_or(e ? 'author_id')::text "
                   "FROM kck.changes, jsonb_array_elements(new) e"),
            "truefalse");
}

// Each updated row is one change holding its own before and after images,
// also when its primary key changed (they were paired by key before, which
// split such a row into an old-only and a new-only change); at most
// kBulkRows rows are row changes, one more is one bulk change.
TEST_F(CaptureTest, UpdatesArePairedRowByRowAlsoWhenThePrimaryKeyChanges) {
  InstallConfig(conn_, kBookByIdConfig);
  MustExec(conn_, "UPDATE store_book SET id = id + 1000 WHERE id IN (7, 8)");
  EXPECT_EQ(Scalar("SELECT string_agg((old->>'id') || '>' || (new->>'id'), ',' ORDER BY old->>'id') "
                   "FROM kck.changes WHERE op = 'U'"),
            "7>1007,8>1008");
  MustExec(conn_, "DELETE FROM kck.changes");
  MustExec(conn_, "UPDATE store_book SET title = title || '!' WHERE id BETWEEN 101 AND 200");
  EXPECT_EQ(Scalar("SELECT count(*) || ' ' || bool_and(old->>'id' = new->>'id') FROM kck.changes"), "100 true");
  MustExec(conn_, "DELETE FROM kck.changes");
  MustExec(conn_, "UPDATE store_book SET title = title || '!' WHERE id BETWEEN 100 AND 200");
  EXPECT_EQ(Scalar("SELECT count(*) || ' ' || jsonb_array_length(min(new::text)::jsonb) FROM kck.changes"), "1 101");
  MustExec(conn_, "DELETE FROM kck.changes");
  MustExec(conn_, "UPDATE store_book SET title = 'none' WHERE id < 0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.changes"), "0");
  // With a daemon, the products of both keys follow.
  Prime(conn_, {"book/9", "book/1009"});
  DaemonProcess daemon(conninfo_);
  ExecAndConverge("UPDATE store_book SET id = 1009 WHERE id = 9");
  EXPECT_EQ(Stored(conn_, "book/9"), "{}");
  EXPECT_NE(Stored(conn_, "book/1009").find("book 9"), std::string::npos);
}

// Rows whose primary key changes, one, ten and 120 at a time, under four
// daemons: products keyed by the key, and a product that augments an
// update (its value keyed by book id) from the change's own before and
// after images, all end equal to a recompute.
TEST_F(CaptureTest, FourDaemonsFollowPrimaryKeyChangesInSingleRowAndBulkUpdates) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "book", "parameters": [{"name": "id", "type": "int"}],
     "compute": "SELECT coalesce((SELECT jsonb_build_object('title', title, 'author_id', author_id) FROM store_book WHERE id = :id), '{}')",
     "depends_on": [{"table": "store_book", "params": {"id": "id"}}]},
    {"name": "by_id", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_object_agg(id::text, title), '{}') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
     "augment": {"store_book": {"update": "SELECT (:value - (:old->>'id')) || jsonb_build_object(:new->>'id', :new->>'title')"}}}]})json");
  std::vector<std::string> keys;
  for (int a = 1; a <= 20; ++a) keys.push_back("by_id/" + std::to_string(a));
  for (int b = 1; b <= 200; b += 7) keys.push_back("book/" + std::to_string(b));
  Prime(conn_, keys);
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) daemons.push_back(std::make_unique<DaemonProcess>(conninfo_));
  for (int i = 1; i <= 60; ++i) {
    const std::string id = std::to_string(i * 3);
    if (i % 20 == 0) {  // 120 rows' keys move at once: one bulk change
      MustExec(conn_, "UPDATE store_book SET id = id + 10000, title = title || '+' WHERE id IN "
                      "(SELECT id FROM store_book ORDER BY id LIMIT 120)");
    } else if (i % 10 == 5) {  // an author's rows (about 10) at once: row changes paired by position
      MustExec(conn_, "UPDATE store_book SET id = id + 2000, title = title || '#' WHERE id < 1000 AND author_id = " +
                          std::to_string(1 + i % 20));
    } else if (i % 2 == 0) {
      MustExec(conn_, "UPDATE store_book SET id = id + 1000, title = title || '*' WHERE id = " + id);
    } else {
      MustExec(conn_, "UPDATE store_book SET title = title || '!' WHERE id = " + id);
    }
  }
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_GT(std::stoi(Scalar("SELECT count(*) FROM store_book WHERE id > 1000")), 120);
  for (auto& d : daemons) EXPECT_TRUE(d->running());
}

// A row moved to another partition whose BEFORE INSERT trigger skips it
// leaves an old image without a new one: the transition tables are uneven
// and position no longer pairs rows. Both captures write the statement in
// bulk form then (pairing by key needs the key type's equality: see the
// next test), and the products follow.
TEST_F(CaptureTest, UnevenTransitionTablesTakeTheBulkForm) {
  CreateSkippingPartitions("part_book", "id bigint, region int, title text, PRIMARY KEY (id, region)");
  for (const std::string capture : {"plpgsql", "c"}) {
    InstallWithCapture(capture, R"([{"name": "pbook", "parameters": [{"name": "id", "type": "int"}],
       "compute": "SELECT to_jsonb(title) FROM part_book WHERE id = :id",
       "depends_on": [{"table": "part_book", "params": {"id": "id"}}]}])");
    MustExec(conn_, "TRUNCATE part_book; INSERT INTO part_book SELECT i, 1, 'p' || i FROM generate_series(1, 4) i; "
                    "DELETE FROM kck.changes; DELETE FROM kck.cache");
    Prime(conn_, {"pbook/1", "pbook/2", "pbook/3", "pbook/4"});
    // Row 1 leaves for partition 2 and is skipped there; rows 2 and 3 stay.
    MustExec(conn_, "UPDATE part_book SET region = CASE WHEN id = 1 THEN 2 ELSE 1 END, title = 'u' || id "
                    "WHERE id <= 3");
    auto ids = [](const std::string& side) {
      return "(SELECT string_agg(e->>'id', ',' ORDER BY (e->>'id')::int) FROM jsonb_array_elements(" + side + ") e)";
    };
    EXPECT_EQ(Scalar("SELECT string_agg(op || ' ' || " + ids("old") + " || ' ' || " + ids("new") + ", '; ') "
                     "FROM kck.changes"),
              "U 1,2,3 2,3")
        << capture;
    DaemonProcess daemon(conninfo_);
    ASSERT_TRUE(WaitDrained(conn_));
    ExpectCacheMatchesRecompute(conn_);
    EXPECT_EQ(Stored(conn_, "pbook/1"), "<absent>") << capture;  // its row is gone: so is the product
    EXPECT_EQ(Stored(conn_, "pbook/2"), "\"u2\"") << capture;
  }
}

// The same with a primary key whose type's equality lives outside
// pg_catalog and has no implicit cast to a type of pg_catalog (isn's isbn13):
// pairing its rows must not fail the writer's UPDATE.
TEST_F(CaptureTest, UnevenTransitionTablesOfAnExtensionKeyTypeDoNotFailTheStatement) {
  MustExec(conn_, "CREATE EXTENSION isn");
  CreateSkippingPartitions("part_isbn", "code isbn13, region int, title text, PRIMARY KEY (code, region)");
  for (const std::string capture : {"plpgsql", "c"}) {
    InstallWithCapture(capture, R"([{"name": "ptitle", "parameters": [{"name": "t", "type": "str"}],
       "compute": "SELECT to_jsonb(count(*)) FROM part_isbn WHERE title = :t",
       "depends_on": [{"table": "part_isbn", "params": {"t": "title"}}]}])");
    MustExec(conn_, "TRUNCATE part_isbn; "
                    "INSERT INTO part_isbn VALUES ('978-0-393-04002-9', 1, 'a'), ('978-1-56619-909-4', 1, 'b'); "
                    "DELETE FROM kck.changes; DELETE FROM kck.cache");
    Prime(conn_, {"ptitle/a", "ptitle/b", "ptitle/x"});
    MustExec(conn_, "UPDATE part_isbn SET region = CASE WHEN title = 'a' THEN 2 ELSE 1 END, title = 'x'");
    EXPECT_EQ(Scalar("SELECT count(*) FROM part_isbn"), "1");  // 'a' left for partition 2, skipped there
    DaemonProcess daemon(conninfo_);
    ASSERT_TRUE(WaitDrained(conn_));
    ExpectCacheMatchesRecompute(conn_);
    EXPECT_EQ(Stored(conn_, "ptitle/x"), "1") << capture;
  }
}

// A table without a primary key cannot pair an UPDATE's rows: every
// statement, even of one row, is one change in bulk form (the distinct
// images of the columns rules read), and the products follow.
TEST_F(CaptureTest, TablesWithoutPrimaryKeyAreCapturedInBulkForm) {
  MustExec(conn_, "CREATE TABLE book_tag (book_id bigint NOT NULL, tag text NOT NULL); "
                  "INSERT INTO book_tag SELECT i % 10, 't' || i FROM generate_series(1, 50) i");
  InstallConfig(conn_, R"json({"primers": [{"name": "tags", "parameters": [{"name": "book_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(tag ORDER BY tag), '[]') FROM book_tag WHERE book_id = :book_id",
     "depends_on": [{"table": "book_tag", "params": {"book_id": "book_id"}}]}]})json");
  MustExec(conn_, "INSERT INTO book_tag VALUES (3, 'new')");
  MustExec(conn_, "UPDATE book_tag SET tag = 'renamed' WHERE tag = 't13'");
  MustExec(conn_, "DELETE FROM book_tag WHERE tag = 't23'");
  MustExec(conn_, "UPDATE book_tag SET book_id = 4 WHERE tag = 'new'");
  EXPECT_EQ(Scalar("SELECT string_agg(op || coalesce(old::text, '-') || coalesce(new::text, '-'), ' ' ORDER BY id) "
                   "FROM kck.changes"),
            "I-[{\"book_id\": 3}] U[{\"book_id\": 3}][{\"book_id\": 3}] D[{\"book_id\": 3}]- "
            "U[{\"book_id\": 3}][{\"book_id\": 4}]");
  MustExec(conn_, "DELETE FROM kck.changes");
  Prime(conn_, {"tags/3", "tags/4", "tags/5"});
  DaemonProcess daemon(conninfo_);
  ExecAndConverge("INSERT INTO book_tag VALUES (5, 'five')");
  ExecAndConverge("UPDATE book_tag SET book_id = 5 WHERE tag = 't33'");
  ExecAndConverge("DELETE FROM book_tag WHERE book_id = 4");
  EXPECT_EQ(Stored(conn_, "tags/4"), "[]");
  EXPECT_NE(Stored(conn_, "tags/5").find("t33"), std::string::npos);
}

// titles/<author> and title_count/<author>, a product of a product.
const char* kCascadeConfig = R"json({"primers": [
    {"name": "titles", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
    {"name": "title_count", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT to_jsonb(coalesce((SELECT jsonb_array_length(value) FROM kck.cache WHERE key = 'titles/' || :author_id), -1))",
     "depends_on": [{"primer": "titles", "params": {"author_id": "author_id"}}]},
    {"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
     "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)"}}}]})json";

// More than kBulkRows products written in one batch: the kck.cache capture
// takes its bulk form, which must still name each key.
TEST_F(CaptureTest, ProductCascadesSurviveBulkWritesOfProducts) {
  InstallConfig(conn_, kCascadeConfig);
  MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(21, 150) i");
  std::vector<std::string> titles, counts;
  for (int a = 1; a <= 150; ++a) {
    titles.push_back("titles/" + std::to_string(a));
    counts.push_back("title_count/" + std::to_string(a));
  }
  Prime(conn_, titles);
  Prime(conn_, counts);
  EXPECT_EQ(Stored(conn_, "title_count/1"), "10");
  EXPECT_EQ(Stored(conn_, "title_count/150"), "0");
  DaemonProcess daemon(conninfo_);
  ExecAndConverge("INSERT INTO store_book (author_id, title) SELECT id, 'one more' FROM store_author");
  EXPECT_EQ(Stored(conn_, "title_count/1"), "11");
  EXPECT_EQ(Stored(conn_, "title_count/150"), "1");
}

// title_list and by_title capture author_id and title; book and total
// compute from whole rows, so they stay computable after those columns go.
const char* kSchemaChangeConfig = R"json({"primers": [
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]},
  {"name": "by_title", "parameters": [{"name": "title", "type": "str"}],
   "compute": "SELECT count(*) FROM store_book WHERE title = :title",
   "depends_on": [{"table": "store_book", "params": {"title": "title"}}]},
  {"name": "book", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT coalesce((SELECT to_jsonb(b) FROM store_book b WHERE id = :id), '{}')",
   "depends_on": [{"table": "store_book", "params": {"id": "id"}}]},
  {"name": "total", "parameters": [],
   "compute": "SELECT jsonb_build_object('books', count(*), 'price', sum(price)) FROM store_book",
   "depends_on": [{"table": "store_book", "params": {}}]}]})json";

// Output (stdout and stderr) and exit code of the kck binary.
std::pair<int, std::string> RunKckCommand(const std::string& args) { return RunKckShell(args, "2>&1"); }

class SchemaChangeTest : public CaptureTest {
 protected:
  // Single-row and bulk INSERT/UPDATE/DELETE all succeed, and the products
  // that can still be computed are fresh afterwards. `title` says whether
  // the table still has that column.
  void WritesSucceedAndProductsStayFresh(pg::Connection& conn, bool title) {
    const std::string cols = title ? "writer_id, title" : "writer_id";
    const std::string vals = title ? "2, 'bulk ' || i" : "2";
    const std::vector<std::string> statements = {
        "INSERT INTO store_book (" + cols + ") VALUES (1" + (title ? ", 'single'" : "") + ")",
        "UPDATE store_book SET price = price + 1 WHERE id = 3",
        "DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE id > 3)",
        "UPDATE store_book SET price = price + 1",
        "INSERT INTO store_book (" + cols + ") SELECT " + vals + " FROM generate_series(1, 150) i",
        "DELETE FROM store_book WHERE id IN (SELECT id FROM store_book ORDER BY id DESC LIMIT 120)",
    };
    for (const auto& sql : statements) {
      kck::Status s = conn.ExecScript(sql);
      ASSERT_TRUE(s.ok()) << sql << ": " << s.message();
      ASSERT_TRUE(WaitDrained(conn_)) << sql;
      ExpectCacheMatchesRecompute(conn_);
    }
  }
  std::string KckStatus(const std::string& args = "") {
    auto [rc, out] = RunKckCommand("--db '" + conninfo_ + "' status " + args);
    EXPECT_EQ(rc, 0) << out;
    return out;
  }
};

// A column only the capture reads (an update_of column, the primary key)
// renamed: writes degrade, and kck status names it (it showed nothing).
TEST_F(SchemaChangeTest, StatusNamesAColumnOnlyTheCaptureReads) {
  InstallConfig(conn_, R"json({"primers": [
    {"name": "counted", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}, "update_of": ["price"]}]}]})json");
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.registry_problems()"), "0");
  MustExec(conn_, "ALTER TABLE store_book RENAME COLUMN price TO cost");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'still written')");
  std::string status = KckStatus();
  EXPECT_NE(status.find("primer \"counted\": depends_on[0]: the capture of table \"public.store_book\" reads column "
                        "\"price\", which the table no longer has"),
            std::string::npos)
      << status;
  MustExec(conn_, "ALTER TABLE store_book RENAME COLUMN id TO book_id");
  status = KckStatus();
  EXPECT_NE(status.find("reads column \"id\", which the table no longer has"), std::string::npos) << status;
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.registry_problems()"), "2");
}

TEST_F(SchemaChangeTest, RenamedOrDroppedColumnDegradesTheCaptureNotTheStatement) {
  InstallConfig(conn_, kSchemaChangeConfig);
  Prime(conn_, {"book/3", "book/250", "book/310", "total"});
  DaemonProcess daemon(conninfo_);
  ExecAndConverge("INSERT INTO store_book (author_id, title) VALUES (1, 'before')");  // plans cached in this session
  MustExec(conn_, "ALTER TABLE store_book RENAME COLUMN author_id TO writer_id");
  WritesSucceedAndProductsStayFresh(conn_, true);
  auto other = Connect(conninfo_);  // a session that never ran the capture before
  WritesSucceedAndProductsStayFresh(other, true);
  EXPECT_NE(Stored(conn_, "book/3").find("\"writer_id\""), std::string::npos);  // recomputed since the rename
  EXPECT_EQ(Stored(conn_, "book/250"), "{}");                                    // inserted, then deleted
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.registry_problems()"), "1");
  std::string status = KckStatus();
  EXPECT_NE(status.find("primer \"title_list\": depends_on[0]: table \"public.store_book\" has no column \"author_id\""),
            std::string::npos)
      << status;
  EXPECT_NE(status.find("kck install"), std::string::npos) << status;
  EXPECT_NE(KckStatus("--json").find("\"problems\""), std::string::npos);

  MustExec(conn_, "ALTER TABLE store_book DROP COLUMN title");
  WritesSucceedAndProductsStayFresh(conn_, false);
  status = KckStatus();
  EXPECT_NE(status.find("primer \"by_title\": depends_on[0]: table \"public.store_book\" has no column \"title\""),
            std::string::npos)
      << status;

  // Fixed primers install again, and the capture records row changes again.
  InstallConfig(conn_, R"json({"primers": [
    {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
     "compute": "SELECT coalesce(jsonb_agg(id ORDER BY id), '[]') FROM store_book WHERE writer_id = :author_id",
     "depends_on": [{"table": "store_book", "params": {"author_id": "writer_id"}}]},
    {"name": "book", "parameters": [{"name": "id", "type": "int"}],
     "compute": "SELECT coalesce((SELECT to_jsonb(b) FROM store_book b WHERE id = :id), '{}')",
     "depends_on": [{"table": "store_book", "params": {"id": "id"}}]}]})json");
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.registry_problems()"), "0");
  MustExec(conn_, "BEGIN");
  MustExec(conn_, "INSERT INTO store_book (writer_id) VALUES (1)");
  EXPECT_EQ(Scalar("SELECT op || (new ? 'writer_id')::text FROM kck.changes ORDER BY id DESC LIMIT 1"), "Itrue");
  MustExec(conn_, "COMMIT");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(KckStatus().find("problem"), std::string::npos);
}

// The kck.cache capture records a product's update only when its version
// moved: a renewed snapshot or expiry of an unchanged value is no change.
TEST_F(CaptureTest, ProductUpdatesThatKeepTheVersionAreNoChange) {
  InstallConfig(conn_, kCascadeConfig);
  MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(21, 150) i");
  std::vector<std::string> titles;
  for (int a = 1; a <= 150; ++a) titles.push_back("titles/" + std::to_string(a));
  Prime(conn_, titles);
  MustExec(conn_, "DELETE FROM kck.changes");  // the priming's own inserts
  for (const std::string where : {"key = 'titles/1'", "true"}) {  // single-row and bulk
    MustExec(conn_, "UPDATE kck.cache SET snapshot = pg_current_snapshot(), computed_at = now() WHERE " + where);
    EXPECT_EQ(OutboxDepth(conn_), 0) << where;
    MustExec(conn_, "UPDATE kck.cache SET version = version + 1 WHERE " + where);
    EXPECT_EQ(OutboxDepth(conn_), 1) << where;
    MustExec(conn_, "DELETE FROM kck.changes");
  }
}

// A recompute that finds the stored value keeps the version and cascades
// nowhere; augmentable products renew their snapshot.
TEST_F(CaptureTest, RecomputeToTheStoredValueKeepsItsVersionAndCascadesNowhere) {
  InstallConfig(conn_, kCascadeConfig);
  MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(21, 150) i");
  std::vector<std::string> keys;
  for (int a = 1; a <= 150; ++a) {
    for (const char* p : {"titles/", "title_count/", "book_count/"}) keys.push_back(p + std::to_string(a));
  }
  Prime(conn_, keys);
  const std::string rows = "SELECT string_agg(key || ':' || version, ',' ORDER BY key) FROM kck.cache ";
  const std::string plain = Scalar(rows + "WHERE primer <> 'book_count'");
  const std::string snapshots = Scalar("SELECT string_agg(snapshot::text, ',' ORDER BY key) FROM kck.cache "
                                       "WHERE primer = 'book_count'");
  DaemonProcess daemon(conninfo_);
  ExecAndConverge("UPDATE store_book SET price = price + 1 WHERE id = 20");  // single row, author 1
  ExecAndConverge("UPDATE store_book SET price = price + 1");                // bulk, 20 authors
  EXPECT_EQ(Scalar(rows + "WHERE primer <> 'book_count'"), plain);
  EXPECT_NE(Scalar("SELECT string_agg(snapshot::text, ',' ORDER BY key) FROM kck.cache "
                   "WHERE primer = 'book_count'"),
            snapshots);
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.cache WHERE primer = 'book_count' AND version > 1"), "0");
  // A new value is written and cascades.
  ExecAndConverge("UPDATE store_book SET title = title || '!' WHERE id = 20");
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'titles/1'"), "2");
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'title_count/1'"), "1");  // the count is the same
  ExecAndConverge("INSERT INTO store_book (author_id, title) VALUES (1, 'new')");
  EXPECT_EQ(Scalar("SELECT version FROM kck.cache WHERE key = 'title_count/1'"), "2");
}

}  // namespace
}  // namespace kck::testing
