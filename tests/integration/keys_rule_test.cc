// Keys rules (depends_on with "keys": SQL that maps a row pair to keys):
// the row pairs of one rule in a batch are mapped by one statement
// (Primer::keys_many), single-row and bulk; a rule that fails for some row
// pairs falls back to one statement each, and a pair whose rule fails
// recomputes every stored product of its primer.
#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// reviews/<author_id>: the count of reviews of the author's books; a review
// names its book, so the key needs a lookup. A rating of 0 makes the rule
// divide by zero.
const char* kReviewsConfig = R"json({"primers": [
  {"name": "reviews", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_review r JOIN store_book b ON b.id = r.book_id WHERE b.author_id = :author_id",
   "depends_on": [{"table": "store_review",
                   "keys": "SELECT 'reviews/' || b.author_id FROM store_book b WHERE b.id IN ((:old->>'book_id')::bigint, (:new->>'book_id')::bigint) AND 1 / coalesce((:new->>'rating')::int, 1) >= 0;",
                   "columns": ["book_id", "rating"]}]}
]})json";

class KeysRuleTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    MustExec(conn_, "CREATE TABLE store_review (id bigserial PRIMARY KEY, book_id bigint NOT NULL, rating int NOT NULL)");
    InstallConfig(conn_, kReviewsConfig);
    std::vector<std::string> keys;
    for (int a = 1; a <= 20; ++a) keys.push_back("reviews/" + std::to_string(a));
    Prime(conn_, keys);
  }
  // Book b belongs to author 1 + b % 20 (kBookstoreSchema).
  std::string Reviews(int author) { return Stored(conn_, "reviews/" + std::to_string(author)); }
};

TEST_F(KeysRuleTest, ASingleRowMapsThroughItsRule) {
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_review (book_id, rating) VALUES (4, 5)");  // author 5
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Reviews(5), "1");
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(KeysRuleTest, ManyRowsOfOneBatchMapThroughOneStatement) {
  // 150 single-row statements in one transaction, then one bulk statement
  // of 150 rows: both reach every author's product.
  std::string many = "BEGIN; ";
  for (int i = 0; i < 150; ++i) many += "INSERT INTO store_review (book_id, rating) VALUES (" + std::to_string(1 + i) + ", 4); ";
  MustExec(conn_, many + "COMMIT");
  MustExec(conn_, "INSERT INTO store_review (book_id, rating) SELECT 1 + i % 200, 3 FROM generate_series(1, 150) i");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Scalar(conn_, "SELECT sum(value::text::int) FROM kck.cache WHERE key LIKE 'reviews/%'"), "300");
  // An update moving reviews between authors reaches both sides.
  MustExec(conn_, "UPDATE store_review SET book_id = book_id + 1 WHERE id <= 120");
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(KeysRuleTest, ARuleFailingForSomeRowsRecomputesItsPrimerAndMapsTheOthers) {
  // Rating 0 divides by zero in the rule; the statement itself succeeds.
  MustExec(conn_, "BEGIN; "
                  "INSERT INTO store_review (book_id, rating) VALUES (4, 5); "
                  "INSERT INTO store_review (book_id, rating) VALUES (5, 0); "
                  "INSERT INTO store_review (book_id, rating) SELECT 1 + i % 200, 2 FROM generate_series(1, 120) i; "
                  "COMMIT");
  auto [code, log] = RunKckShell("--db '" + conninfo_ + "' listen --until-idle", "2>&1");
  ASSERT_EQ(code, 0) << log;
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Scalar(conn_, "SELECT sum(value::text::int) FROM kck.cache WHERE key LIKE 'reviews/%'"), "122");
  EXPECT_NE(log.find("depends_on[0] failed, recomputing all its stored products: "), std::string::npos) << log;
  EXPECT_NE(log.find("division by zero"), std::string::npos) << log;
}

}  // namespace
}  // namespace kck::testing
