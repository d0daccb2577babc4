// The C capture (triggers/capture_module.c) against the generated plpgsql
// one: the same statements write the same outbox rows, whatever the
// columns' types, in every shape of statement; `kck install` takes it only
// where the server loads it. (The capture, wake-up and schema-change suites
// also run with KCK_CAPTURE=c: tests/CMakeLists.txt.)
#include <string>
#include <vector>

#include "daemon_helpers.h"

namespace kck::testing {
namespace {

#ifdef KCK_CAPTURE_MODULE

const char* kTypesSchema = R"sql(
CREATE TABLE kinds (id int PRIMARY KEY, grp bigint, name text, code varchar(8), flag boolean, amount numeric,
                    ratio float8, at timestamptz, day date, doc jsonb, tags text[], u uuid, c char(3), small smallint,
                    js json, pt point);
CREATE TABLE loose (grp int, name text, doc json);
CREATE TABLE pairs (a int, b int, v text, PRIMARY KEY (a, b));
CREATE TABLE whole_t (id int PRIMARY KEY, a int, b text);
CREATE TABLE wide (id int PRIMARY KEY);
DO $$ BEGIN FOR i IN 1..55 LOOP EXECUTE format('ALTER TABLE wide ADD COLUMN c%s int', i); END LOOP; END $$;
CREATE FUNCTION kck_test_sorted(j jsonb) RETURNS jsonb LANGUAGE sql AS $$
  SELECT CASE WHEN jsonb_typeof(j) = 'array' THEN (SELECT jsonb_agg(e ORDER BY e::text) FROM jsonb_array_elements(j) e)
              ELSE j END $$;
)sql";

// Rules reading every column of kinds, a table without primary key, and a
// two-column key.
const char* kTypesConfig = R"json({"primers": [
  {"name": "kind", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT coalesce((SELECT to_jsonb(k) FROM kinds k WHERE id = :id), '{}')",
   "depends_on": [{"table": "kinds", "params": {"id": "id"},
                   "columns": ["grp", "name", "code", "flag", "amount", "ratio", "at", "day", "doc", "tags", "u", "c", "small",
                               "js", "pt"]}]},
  {"name": "by_grp", "parameters": [{"name": "grp", "type": "int"}],
   "compute": "SELECT to_jsonb(count(*)) FROM loose WHERE grp = :grp",
   "depends_on": [{"table": "loose", "params": {"grp": "grp"}, "columns": ["doc"]}]},
  {"name": "pair", "parameters": [{"name": "a", "type": "int"}],
   "compute": "SELECT to_jsonb(count(*)) FROM pairs WHERE a = :a",
   "depends_on": [{"table": "pairs", "params": {"a": "a"}}]},
  {"name": "pair_total", "parameters": [{"name": "a", "type": "int"}], "compute": "SELECT to_jsonb(:a)",
   "depends_on": [{"primer": "pair", "params": {"a": "a"}}]},
  {"name": "by_a", "parameters": [{"name": "a", "type": "int"}],
   "compute": "SELECT to_jsonb(count(*)) FROM whole_t WHERE a = :a",
   "depends_on": [{"table": "whole_t", "keys": "SELECT 'by_a/' || coalesce(:new->>'a', :old->>'a')"}]},
  {"name": "wide_row", "parameters": [{"name": "id", "type": "int"}], "compute": "SELECT to_jsonb(:id)",
   "depends_on": [{"table": "wide", "params": {"id": "id"}, "columns": WIDE_COLUMNS}]}]})json";

// Every shape of statement: single row, several rows, bulk (over 100
// rows), primary-key updates, nulls, TOASTed values, no row, TRUNCATE.
const std::vector<std::string> kStatements = {
    "INSERT INTO kinds VALUES (1, 10, 'one', 'c1', true, 1.50, 0.25, '2026-01-02 03:04:05.678+00', '2026-01-02', "
    "'{\"a\": [1, {\"b\": null}]}', '{x,\"y z\"}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ab', 7, '{\"j\": [1]}', '(1,2)')",
    "INSERT INTO kinds (id) VALUES (2)",
    "INSERT INTO kinds (id, grp, name, ratio) VALUES (3, 30, 'three', 'NaN'), (4, 40, 'fo\"ur\\n', '-Infinity'), "
    "(5, 50, E'tab\\there', 1e300)",
    "INSERT INTO kinds (id, name, doc) VALUES (6, repeat('ab', 50000), jsonb_build_object('big', repeat('cd', 50000)))",
    "UPDATE kinds SET grp = grp + 1 WHERE id = 1",
    "UPDATE kinds SET id = id + 1000 WHERE id = 1",
    "UPDATE kinds SET flag = false, doc = '[]' WHERE id < 10",
    "UPDATE kinds SET name = 'none' WHERE id = -1",
    "DELETE FROM kinds WHERE id = 2",
    "INSERT INTO kinds (id, grp, name) SELECT i, i % 7, 'bulk ' || i FROM generate_series(100, 249) i",
    "UPDATE kinds SET grp = grp + 1",
    "DELETE FROM kinds WHERE id IN (SELECT id FROM kinds ORDER BY id DESC LIMIT 120)",
    "INSERT INTO loose VALUES (1, 'a')",
    "UPDATE loose SET name = 'b'",
    "INSERT INTO loose SELECT i % 3, 'x', '{\"k\": [1, 2]}' FROM generate_series(1, 150) i",
    "DELETE FROM loose WHERE grp = 1",
    "INSERT INTO pairs VALUES (1, 1, 'p'), (1, 2, 'q')",
    "UPDATE pairs SET b = b + 10 WHERE a = 1",
    "DELETE FROM pairs WHERE b = 11",
    "INSERT INTO whole_t VALUES (1, 1, 'x'), (2, 2, NULL)",
    "UPDATE whole_t SET id = 10, b = 'y' WHERE id = 1",
    "INSERT INTO whole_t SELECT i, i % 4, 'w' || i FROM generate_series(100, 250) i",
    "UPDATE whole_t SET a = a + 1",
    "DELETE FROM whole_t WHERE id = 2",
    "INSERT INTO wide (id, c1, c55) VALUES (1, 1, 55)",
    "UPDATE wide SET c30 = 3 WHERE id = 1",
    "INSERT INTO wide (id, c2) SELECT i, i FROM generate_series(2, 200) i",
    "TRUNCATE kinds",
};

class CaptureCTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, kTypesSchema);
  }
  std::string Scalar(const std::string& sql) {
    auto r = conn_.Exec(sql);
    return r.ok() && r->rows() > 0 ? std::string(r->get(0, 0)) : "<error: " + r.status().message() + ">";
  }
  // The config with a capture setting and the module built with the tests.
  static std::string Config(const std::string& capture, const std::string& library = KCK_CAPTURE_MODULE) {
    std::string json = kTypesConfig, columns;
    for (int i = 1; i <= 55; ++i) columns += (i > 1 ? ", \"c" : "[\"c") + std::to_string(i) + "\"";
    json.replace(json.find("WIDE_COLUMNS"), 12, columns + "]");
    return "{\"capture\": \"" + capture + "\", \"capture_library\": \"" + library + "\", " + json.substr(1);
  }
  // The language of the capture function of `table`.
  std::string Language(const std::string& table) {
    return Scalar("SELECT l.lanname FROM kck.triggers t JOIN pg_proc p ON p.oid = to_regprocedure(t.function || '()') "
                  "JOIN pg_language l ON l.oid = p.prolang WHERE t.tbl = 'public." + table + "'");
  }
  // Installs with `capture`, runs every statement on empty tables and
  // returns the outbox rows they wrote, in order.
  std::vector<std::string> ChangesOf(const std::string& capture) {
    InstallConfig(conn_, Config(capture));
    MustExec(conn_, "TRUNCATE kinds, loose, pairs, whole_t, wide; DELETE FROM kck.changes");
    for (const auto& sql : kStatements) MustExec(conn_, sql);
    std::vector<std::string> rows;
    // A bulk image's order is the DISTINCT's: sorted here.
    auto r = conn_.Exec(
        "SELECT concat_ws(' ', tbl, op, kck_test_sorted(old)::text, kck_test_sorted(new)::text) FROM kck.changes "
        "ORDER BY id");
    EXPECT_TRUE(r.ok()) << r.status().message();
    for (int i = 0; r.ok() && i < r->rows(); ++i) rows.emplace_back(r->get(i, 0));
    return rows;
  }
};

TEST_F(CaptureCTest, WritesTheOutboxRowsThePlpgsqlCaptureWrites) {
  const std::vector<std::string> plpgsql = ChangesOf("plpgsql");
  EXPECT_EQ(Language("kinds"), "plpgsql");
  const std::vector<std::string> c = ChangesOf("c");
  EXPECT_EQ(Language("kinds"), "c");
  EXPECT_EQ(Language("loose"), "c");
  EXPECT_EQ(Language("whole_t"), "c");
  EXPECT_EQ(Language("wide"), "c");
  // kinds 1 + 1 + 3 + 1 + 1 + 1 + 5 (ids 2 to 6) + 0 + 1 + 1 + 1 + 1 (the
  // last three in bulk form), loose 1 + 1 + 1 + 1 (bulk form: no primary
  // key), pairs 2 + 2 + 1, whole_t (whole rows) 2 + 1 + 1 + 1 + 1, wide
  // (55 columns: whole rows) 1 + 1 + 1, TRUNCATE 1.
  ASSERT_EQ(plpgsql.size(), 36u);
  ASSERT_EQ(c.size(), plpgsql.size());
  for (size_t i = 0; i < c.size(); ++i) {
    EXPECT_EQ(c[i], plpgsql[i]) << "change " << i << " of " << c.size() << ", " << kStatements.size() << " statements";
  }
  auto [rc, status] = RunKckShell("--db '" + conninfo_ + "' status", "2>&1");
  EXPECT_EQ(rc, 0) << status;
  EXPECT_NE(status.find("captures: kck.cache (plpgsql), public.kinds (c), public.loose (c), public.pairs (c), public.whole_t (c), "
                        "public.wide (c)\n"),
            std::string::npos)
      << status;
  // And back: an install that may not use the module replaces it.
  InstallConfig(conn_, Config("plpgsql"));
  EXPECT_EQ(Language("kinds"), "plpgsql");
  // The kck.cache capture stays plpgsql: its UPDATEs are filtered by version.
  EXPECT_EQ(Scalar("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                   "WHERE p.oid = to_regprocedure('kck.\"capture:kck.cache\"()')"),
            "plpgsql");
}

// A plain outbox part takes heap tuples; one with an index (a person's, or
// a future migration's) takes the INSERT through SPI, which maintains it.
// Both write the same rows, with the INSERT's defaults.
TEST_F(CaptureCTest, PartsWithAnIndexTakeTheInsertAndHoldTheSameRows) {
  const std::vector<std::string> plain = ChangesOf("c");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = 'kck.changes_0'::regclass AND contype = 'c'"),
            "0");
  MustExec(conn_, "CREATE INDEX ON kck.changes_0 (id); CREATE INDEX ON kck.changes_1 (id); "
                  "CREATE INDEX ON kck.changes_2 (id)");
  const std::vector<std::string> indexed = ChangesOf("c");
  ASSERT_EQ(indexed.size(), 36u);
  EXPECT_EQ(indexed, plain);
  MustExec(conn_, "SET enable_seqscan = off");  // the index holds every row
  EXPECT_EQ(Scalar("SELECT count(*) FROM kck.changes WHERE id > 0"), "36");
  MustExec(conn_, "RESET enable_seqscan");
  for (const char* drop : {"DROP INDEX kck.changes_0_id_idx", "DROP INDEX kck.changes_1_id_idx",
                           "DROP INDEX kck.changes_2_id_idx"}) {
    MustExec(conn_, drop);
  }
  // The defaults: the writer's transaction id and start, ids in order.
  MustExec(conn_, "DELETE FROM kck.changes; CREATE TABLE seen_tx AS SELECT pg_current_xact_id() AS x, now() AS at LIMIT 0");
  MustExec(conn_, "BEGIN; INSERT INTO kinds (id) VALUES (1); INSERT INTO kinds (id) VALUES (2), (3); "
                  "INSERT INTO seen_tx SELECT pg_current_xact_id(), now(); COMMIT");
  EXPECT_EQ(Scalar("SELECT count(*) FILTER (WHERE c.txid = s.x AND c.at = s.at) || '/' || count(*) "
                   "FROM kck.changes c, seen_tx s"),
            "3/3");
  EXPECT_EQ(Scalar("SELECT string_agg(new->>'id', ',' ORDER BY id) FROM kck.changes"), "1,2,3");
}

// Bulk images keep apart values that their column's equality merges but
// keys tell apart: under a case-insensitive collation 'A' and 'a' are one
// value to a DISTINCT, and by_name/A and by_name/a two products. Both
// captures keep both (a DISTINCT over the values kept one, leaving the
// other product stale).
TEST_F(CaptureCTest, BulkImagesKeepValuesEqualOnlyUnderTheirCollation) {
  MustExec(conn_, "CREATE COLLATION kck_test_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false); "
                  "CREATE TABLE named (id int PRIMARY KEY, name text COLLATE kck_test_ci)");
  for (const std::string capture : {"plpgsql", "c"}) {
    InstallConfig(conn_, "{\"capture\": \"" + capture + "\", \"capture_library\": \"" KCK_CAPTURE_MODULE "\", "
                         "\"primers\": [{\"name\": \"by_name\", \"parameters\": [{\"name\": \"name\", \"type\": \"str\"}], "
                         "\"compute\": \"SELECT to_jsonb(count(*)) FROM named WHERE name = :name\", "
                         "\"depends_on\": [{\"table\": \"named\", \"params\": {\"name\": \"name\"}}]}]}");
    EXPECT_EQ(Language("named"), capture);
    MustExec(conn_, "TRUNCATE named; DELETE FROM kck.changes");
    MustExec(conn_, "INSERT INTO named SELECT i, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'a' END FROM generate_series(1, 150) i");
    MustExec(conn_, "UPDATE named SET name = 'b' WHERE name = 'a'");
    EXPECT_EQ(Scalar("SELECT string_agg(concat_ws(' ', op, jsonb_array_length(old), old @> '[{\"name\": \"A\"}]', "
                     "old @> '[{\"name\": \"a\"}]', jsonb_array_length(new), new @> '[{\"name\": \"A\"}]', "
                     "new @> '[{\"name\": \"a\"}]'), '; ' ORDER BY id) FROM kck.changes"),
              // The INSERT; the UPDATE, which the collation makes rename all 150 rows to 'b'.
              "I 2 t t; U 2 t t 1 f f")
        << capture;
  }
}

// A bulk statement with more distinct images on a side than
// kck.bulk_max_images (default 1000000) is one 'T' change, which
// recomputes every product of the table: an array of 30 million images
// failed a 30-million-row INSERT (invalid memory alloc request size).
// Both captures, bulk images by column and whole rows, under a cap of 100.
TEST_F(CaptureCTest, BulkStatementsPastTheImageCapRecomputeTheirTable) {
  MustExec(conn_, "CREATE TABLE capped (id int PRIMARY KEY, grp int)");
  const std::string over = "T {\"bulk\": \"more than 100 distinct images: every product of the table\"}";
  const std::vector<std::pair<std::string, std::string>> steps = {
      {"INSERT INTO capped SELECT i, i FROM generate_series(1, 150) i", over},
      {"INSERT INTO capped SELECT i, i % 5 FROM generate_series(1001, 1150) i", "I 5"},
      {"UPDATE capped SET grp = grp + 1 WHERE id > 1000", "U 5 5"},
      {"UPDATE capped SET grp = 0", over},
      {"DELETE FROM capped WHERE id > 1000", "D 1"},
      {"INSERT INTO whole_t SELECT i, i % 4, 'w' FROM generate_series(1, 150) i", over},
      {"SET kck.bulk_max_images = 'many'; INSERT INTO capped SELECT i, i FROM generate_series(2001, 2150) i",
       "I 150"},
  };
  std::string config = Config("c");
  config.replace(config.rfind("]}"), 2, ", {\"name\": \"capped_grp\", \"parameters\": [{\"name\": \"grp\", "
                                          "\"type\": \"int\"}], \"compute\": \"SELECT to_jsonb(:grp)\", "
                                          "\"depends_on\": [{\"table\": \"capped\", \"params\": {\"grp\": \"grp\"}}]}]}");
  for (const std::string capture : {"plpgsql", "c"}) {
    config.replace(config.find("\"capture\": \""), 13 + (capture == "c" ? 7 : 1), "\"capture\": \"" + capture + "\"");
    InstallConfig(conn_, config);
    EXPECT_EQ(Language("capped"), capture);
    MustExec(conn_, "RESET kck.bulk_max_images; TRUNCATE capped, whole_t; DELETE FROM kck.changes; "
                    "SET kck.bulk_max_images = 100");
    for (const auto& [sql, want] : steps) {
      MustExec(conn_, "DELETE FROM kck.changes");
      MustExec(conn_, sql);
      EXPECT_EQ(Scalar("SELECT string_agg(concat_ws(' ', op, CASE WHEN op = 'T' THEN new::text ELSE concat_ws(' ', "
                       "jsonb_array_length(old), jsonb_array_length(new)) END), '; ') FROM kck.changes"),
                want)
          << capture << ": " << sql;
    }
  }
}

TEST_F(CaptureCTest, AColumnGoneDegradesTheCaptureNotTheStatement) {
  InstallConfig(conn_, Config("c"));
  MustExec(conn_, "ALTER TABLE kinds RENAME COLUMN name TO title");
  MustExec(conn_, "DELETE FROM kck.changes");
  MustExec(conn_, "INSERT INTO kinds (id, title) VALUES (1, 'x')");
  MustExec(conn_, "INSERT INTO kinds (id) SELECT i FROM generate_series(10, 200) i");
  MustExec(conn_, "ALTER TABLE kinds DROP COLUMN grp");
  MustExec(conn_, "UPDATE kinds SET title = 'y'");
  EXPECT_EQ(Scalar("SELECT string_agg(op || ' ' || (new->>'error'), '; ' ORDER BY id) FROM kck.changes"),
            "T column \"name\" of relation \"public.kinds\" does not exist; "
            "T column \"name\" of relation \"public.kinds\" does not exist; "
            "T column \"grp\" of relation \"public.kinds\" does not exist");
}

// The C capture is not SECURITY DEFINER: a value's conversion, which may
// run a cast to json that a type's owner wrote, runs as the writing role;
// only the outbox write is its owner's, which the writer needs no
// privilege for.
TEST_F(CaptureCTest, RowValuesAreConvertedAsTheWriterAndTheOutboxIsWrittenAsTheOwner) {
  MustExec(conn_, R"sql(
    DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kck_writer') THEN CREATE ROLE kck_writer LOGIN; END IF;
    END $$;
    CREATE TYPE mood AS ENUM ('ok', 'bad');
    CREATE TABLE moods (id int PRIMARY KEY, m mood);
    GRANT SELECT, INSERT, UPDATE ON moods TO kck_writer;
    CREATE TABLE seen (who text);
    GRANT INSERT ON seen TO PUBLIC;
    CREATE FUNCTION mood_json(mood) RETURNS json LANGUAGE sql
      AS $$ INSERT INTO seen VALUES (current_user) RETURNING to_json($1::text) $$;
    CREATE CAST (mood AS json) WITH FUNCTION mood_json(mood);
  )sql");
  InstallConfig(conn_, std::string(R"json({"capture": "c", "capture_library": ")json") + KCK_CAPTURE_MODULE +
                           R"json(", "primers": [
    {"name": "mood", "parameters": [{"name": "id", "type": "int"}], "compute": "SELECT to_jsonb(:id)",
     "depends_on": [{"table": "moods", "params": {"id": "id"}, "columns": ["m"]}]}]})json");
  EXPECT_EQ(Language("moods"), "c");
  MustExec(conn_, "DELETE FROM kck.changes; SELECT setval('kck.daemon_waiting', 1)");
  auto writer = Connect(conninfo_ + " user=kck_writer");
  MustExec(writer, "INSERT INTO moods VALUES (1, 'ok')");
  MustExec(writer, "UPDATE moods SET m = 'bad'");
  MustExec(writer, "INSERT INTO moods SELECT i, 'ok' FROM generate_series(2, 150) i");
  EXPECT_EQ(Scalar("SELECT string_agg(DISTINCT who, ',') FROM seen"), "kck_writer");
  EXPECT_EQ(Scalar("SELECT string_agg(op || ' ' || coalesce(new->>'m', new->0->>'m'), ', ' ORDER BY id) FROM kck.changes"),
            "I ok, U bad, I ok");
}

TEST_F(CaptureCTest, AutoFallsBackToPlpgsqlWhereTheServerCannotLoadIt) {
  const std::string missing = "/nonexistent/kck_capture.so";
  auto config = ParseConfig(Config("auto", missing), "test.json");
  ASSERT_TRUE(config.ok()) << config.status().message();
  auto report = Install(conn_, *config, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(Language("kinds"), "plpgsql");
  std::string lines;
  for (const auto& l : report->lines) lines += l + "\n";
  EXPECT_NE(lines.find("captures in plpgsql: the C capture is not available"), std::string::npos) << lines;
  EXPECT_NE(lines.find(missing), std::string::npos) << lines;

  config = ParseConfig(Config("c", missing), "test.json");
  ASSERT_TRUE(config.ok());
  auto refused = Install(conn_, *config, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("capture \"c\": the server cannot load " + missing), std::string::npos)
      << refused.status().message();
  EXPECT_EQ(Language("kinds"), "plpgsql");  // the failed install changed nothing

  // Under $libdir a missing module is found missing without loading it.
  config = ParseConfig(Config("auto", "$libdir/kck_capture_missing"), "test.json");
  ASSERT_TRUE(config.ok());
  report = Install(conn_, *config, false);
  ASSERT_TRUE(report.ok()) << report.status().message();
  lines.clear();
  for (const auto& l : report->lines) lines += l + "\n";
  EXPECT_NE(lines.find("the C capture is not available (no file /"), std::string::npos) << lines;
  EXPECT_NE(lines.find("/kck_capture_missing.so on the database server)"), std::string::npos) << lines;
  // And a file that is there is found: plpgsql.so, which has no kck_capture.
  config = ParseConfig(Config("c", "$libdir/plpgsql"), "test.json");
  ASSERT_TRUE(config.ok());
  refused = Install(conn_, *config, false);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("could not find function \"kck_capture\""), std::string::npos)
      << refused.status().message();
}

#endif  // KCK_CAPTURE_MODULE

}  // namespace
}  // namespace kck::testing
