#include "triggers/capture.h"

#include <gtest/gtest.h>

#include <set>

#include "triggers/installer.h"

namespace kck {
namespace {

// The same rules as libpq's escaping, for tests without a connection.
Quoter TestQuoter() {
  auto quote = [](std::string_view s, char q) {
    std::string out(1, q);
    for (char c : s) {
      if (c == q) out += q;
      out += c;
    }
    return out + q;
  };
  return {[=](std::string_view s) { return quote(s, '"'); }, [=](std::string_view s) { return quote(s, '\''); }};
}

TEST(Capture, StatementLevelTriggersForEveryOperation) {
  CaptureSpec spec{"public", "store_book", {"id"}, {"author_id"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  EXPECT_EQ(sql.function, "kck.\"capture:public.store_book\"");
  for (const char* t : {"kck_capture_ins AFTER INSERT", "kck_capture_upd AFTER UPDATE", "kck_capture_del AFTER DELETE",
                        "kck_capture_trunc AFTER TRUNCATE"}) {
    EXPECT_NE(sql.install.find(t), std::string::npos) << t;
  }
  EXPECT_EQ(sql.install.find("FOR EACH ROW"), std::string::npos);
  // Only the captured columns and the key, never whole rows.
  EXPECT_EQ(sql.install.find("to_jsonb(kck_n)"), std::string::npos);
  EXPECT_NE(sql.install.find("jsonb_build_object('id', kck_n.\"id\", 'author_id', kck_n.\"author_id\")"),
            std::string::npos);
  // Bulk statements: distinct images of the captured columns, no key.
  EXPECT_NE(sql.install.find("OFFSET " + std::to_string(kBulkRows)), std::string::npos);
  // Distinct by jsonb values, which every type has (tests/integration/capture_c_test.cc's json column).
  EXPECT_NE(sql.install.find("SELECT DISTINCT to_jsonb(kck_x.\"author_id\") AS \"author_id\" FROM kck_new kck_x"),
            std::string::npos);
  // At most one wake-up per statement, only when a daemon waits.
  // A function call, which plpgsql evaluates without an executor.
  EXPECT_NE(sql.install.find("IF FOUND AND pg_sequence_last_value('kck.daemon_waiting') = 1 THEN"), std::string::npos);
  size_t notifies = 0;
  for (size_t p = sql.install.find("pg_notify"); p != std::string::npos; p = sql.install.find("pg_notify", p + 1)) {
    ++notifies;
  }
  EXPECT_EQ(notifies, 1u);
  EXPECT_NE(sql.uninstall.find("DROP TRIGGER IF EXISTS kck_capture_upd ON \"public\".\"store_book\""),
            std::string::npos);
}

TEST(Capture, KeyColumnsARuleReadsAreInBulkImagesToo) {
  CaptureSpec spec{"public", "store_book", {"id"}, {"author_id", "id"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  EXPECT_NE(sql.install.find("SELECT DISTINCT to_jsonb(kck_x.\"author_id\") AS \"author_id\", "
                             "to_jsonb(kck_x.\"id\") AS \"id\" FROM kck_new kck_x"),
            std::string::npos);
  EXPECT_NE(sql.install.find("SELECT DISTINCT to_jsonb(kck_x.\"author_id\") AS \"author_id\", "
                             "to_jsonb(kck_x.\"id\") AS \"id\" FROM kck_old kck_x"),
            std::string::npos);
  EXPECT_EQ(sql.install.find("kck_y.version"), std::string::npos);  // only kck.cache filters on versions
  // The row image names the key once.
  EXPECT_NE(sql.install.find("jsonb_build_object('id', kck_n.\"id\", 'author_id', kck_n.\"author_id\")"),
            std::string::npos);
  EXPECT_EQ(spec.row_columns(), (std::vector<std::string>{"id", "author_id"}));
}

// A renamed or dropped column must not fail the user's statement: the
// captured columns are checked first in an exception block that only reads
// (no XID for its subtransaction), and a failed check records one
// TRUNCATE-like change outside it.
TEST(Capture, ColumnsAreCheckedInAReadOnlyExceptionBlock) {
  CaptureSpec spec{"public", "store_book", {"id"}, {"author_id"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  size_t begin = sql.body.find("  BEGIN\n");
  size_t handler = sql.body.find("EXCEPTION WHEN OTHERS THEN");
  size_t end = sql.body.find("  END;\n", handler);
  ASSERT_NE(begin, std::string::npos) << sql.body;
  ASSERT_NE(handler, std::string::npos) << sql.body;
  ASSERT_NE(end, std::string::npos) << sql.body;
  std::string block = sql.body.substr(begin, end - begin);
  EXPECT_NE(block.find("PERFORM kck_n.\"id\", kck_n.\"author_id\" FROM kck_new kck_n LIMIT 0"), std::string::npos)
      << block;
  EXPECT_NE(block.find("PERFORM kck_o.\"id\", kck_o.\"author_id\" FROM kck_old kck_o LIMIT 0"), std::string::npos)
      << block;
  for (const char* writes : {"INSERT INTO", "UPDATE kck", "DELETE FROM", "pg_notify"}) {
    EXPECT_EQ(block.find(writes), std::string::npos) << writes << " in\n" << block;
  }
  // The degraded change, after the block: the table, op T, the error, no column.
  size_t degraded = sql.body.find(
      "INSERT INTO kck.changes_0 (tbl, op, new) VALUES ('public.store_book', 'T', jsonb_build_object('error', "
      "kck_degraded))");
  EXPECT_GT(degraded, end) << sql.body;
  EXPECT_NE(degraded, std::string::npos) << sql.body;
  EXPECT_EQ(sql.install.find("FOR EACH ROW"), std::string::npos);
}

TEST(Capture, IdentifiersAndLiteralsAreQuoted) {
  CaptureSpec spec{"we\"ird", "ta'ble", {"i\"d"}, {"co'l"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  EXPECT_NE(sql.install.find("\"we\"\"ird\".\"ta'ble\""), std::string::npos);
  EXPECT_NE(sql.install.find("'we\"ird.ta''ble'"), std::string::npos);
  EXPECT_NE(sql.install.find("'co''l', kck_n.\"co'l\""), std::string::npos);
}

TEST(Capture, TablesWithoutPrimaryKeyAlwaysUseBulkForm) {
  CaptureSpec spec{"public", "log", {}, {"a"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  // No row images at all: only the distinct images of the columns rules read.
  EXPECT_EQ(sql.install.find("ARRAY(SELECT"), std::string::npos) << sql.install;
  EXPECT_EQ(sql.install.find("FULL JOIN"), std::string::npos) << sql.install;
  EXPECT_NE(sql.install.find("SELECT DISTINCT to_jsonb(kck_x.\"a\") AS \"a\" FROM kck_new kck_x"), std::string::npos);
  EXPECT_NE(sql.install.find("SELECT DISTINCT to_jsonb(kck_x.\"a\") AS \"a\" FROM kck_old kck_x"), std::string::npos);
}

// An UPDATE's rows are paired by their position in the transition tables,
// in one statement that also tells a bulk statement (LIMIT kBulkRows + 1);
// uneven tables take the bulk form, never a join on the key (its type's
// equality may fail the statement).
TEST(Capture, UpdatesArePairedByPositionElseInBulkForm) {
  CaptureSpec spec{"public", "store_book", {"id"}, {"author_id"}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  const std::string limit = " LIMIT " + std::to_string(kBulkRows + 1) + ")";
  size_t zip = sql.body.find(
      "FROM (SELECT ARRAY(SELECT jsonb_build_object('id', kck_o.\"id\", 'author_id', kck_o.\"author_id\") FROM "
      "kck_old kck_o" + limit + " AS kck_os, ARRAY(SELECT jsonb_build_object('id', kck_n.\"id\", 'author_id', "
      "kck_n.\"author_id\") FROM kck_new kck_n" + limit + " AS kck_ns OFFSET 0) kck_p, unnest(kck_p.kck_os, "
      "kck_p.kck_ns)");
  ASSERT_NE(zip, std::string::npos) << sql.body;
  EXPECT_NE(sql.body.find("WHERE cardinality(kck_p.kck_os) = cardinality(kck_p.kck_ns) AND "
                          "cardinality(kck_p.kck_ns) <= " + std::to_string(kBulkRows), zip),
            std::string::npos);
  size_t fallback = sql.body.find("IF NOT FOUND AND EXISTS (SELECT FROM kck_old) THEN", zip);
  ASSERT_NE(fallback, std::string::npos) << sql.body;
  EXPECT_NE(sql.body.find("INSERT INTO", fallback), std::string::npos);
  EXPECT_EQ(sql.body.find("FULL JOIN"), std::string::npos) << sql.body;
  // Products of products keep pairing by key: their pairs filter on the version.
  CaptureSpec cache{"kck", "cache", {"key"}, {"key"}, false};
  CaptureSql cached = GenerateCapture(cache, TestQuoter());
  EXPECT_EQ(cached.body.find("unnest(kck_p.kck_os"), std::string::npos);
  EXPECT_NE(cached.body.find("WHERE kck_o.version IS DISTINCT FROM kck_n.version"), std::string::npos);
}

TEST(Capture, LongNamesStayWithinIdentifierLimit) {
  CaptureSpec spec{"public", std::string(60, 'x'), {"id"}, {}, false};
  CaptureSql sql = GenerateCapture(spec, TestQuoter());
  std::string name = sql.function.substr(5);  // strip kck.
  EXPECT_LE(name.size(), 63u + 2);
  EXPECT_EQ(GenerateCapture(spec, TestQuoter()).install, sql.install);  // deterministic
}

TEST(Capture, AugmentColumnsAreFoundInTheSql) {
  std::set<std::string> cols;
  bool whole = false;
  AugmentColumns("SELECT :value || jsonb_build_array(:new->>'title', :new -> 'price', :old->>'title')", &cols, &whole);
  EXPECT_EQ(cols, (std::set<std::string>{"title", "price"}));
  EXPECT_FALSE(whole);
  AugmentColumns("SELECT :value || :new", &cols, &whole);
  EXPECT_TRUE(whole);
}

}  // namespace
}  // namespace kck
