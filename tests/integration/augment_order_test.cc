// Augments with several daemons: a key is augmented unless an older change
// for it is still in the outbox (another daemon holds it), so several
// daemons augment as one does, and a key's changes still apply in order.
#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// book_count augments inserts; total (params {}) is a partial match of
// every change, which must not keep book_count from augmenting.
constexpr const char* kConfig = R"json({"primers": [
  {"name": "book_count", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1)"}}},
  {"name": "total", "parameters": [], "compute": "SELECT count(*) FROM store_book",
   "depends_on": [{"table": "store_book", "params": {}}]}
]})json";

class AugmentOrderTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kConfig);
    Prime(conn_, {"book_count/1", "book_count/2", "total"});
  }
  // An augment keeps the snapshot of the last compute; a recompute takes a new one.
  std::string Snapshot(const std::string& key) {
    auto r = conn_.Exec("SELECT snapshot::text FROM kck.cache WHERE key = $1", {key});
    return r.ok() && r->rows() == 1 ? std::string(r->get(0, 0)) : "<none>";
  }
  void InsertBook(int author) {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (" + std::to_string(author) + ", 'new')");
  }
};

TEST_F(AugmentOrderTest, ASecondDaemonAugmentsKeysThatNoHeldChangeMapsTo) {
  const std::string count1 = Stored(conn_, "book_count/1"), count2 = Stored(conn_, "book_count/2");
  const std::string snap1 = Snapshot("book_count/1"), snap2 = Snapshot("book_count/2");
  // Daemon a claims an insert for author 1 and holds it (paused in its computes).
  PausedDaemon a(conninfo_, "compute");
  InsertBook(1);
  ASSERT_TRUE(a.WaitPaused());
  // Daemon b gets a newer insert for author 2: no held change maps to
  // book_count/2, so it is augmented (its snapshot stays).
  DaemonProcess b(conninfo_);
  InsertBook(2);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/2") == std::to_string(std::stoi(count2) + 1); }));
  EXPECT_EQ(Snapshot("book_count/2"), snap2) << "recomputed, not augmented";
  // A newer insert for author 1 while a holds the older one: recomputed
  // (it sees both inserts), never augmented out of order.
  InsertBook(1);
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(std::stoi(count1) + 2); }));
  EXPECT_NE(Snapshot("book_count/1"), snap1) << "augmented past a held older change";
  // a goes on: its change is already in b's recompute and is not applied twice.
  a.Release();
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Stored(conn_, "book_count/1"), std::to_string(std::stoi(count1) + 2));
  ExpectCacheMatchesRecompute(conn_);
}

// The older change is being computed by a daemon that claimed it first: the
// second daemon waits for that claim to be written and augments from the
// value it wrote, instead of recomputing (listener/augment_order.cc).
TEST_F(AugmentOrderTest, ALaterBatchWaitsForTheEarlierClaimAndAugmentsAfterIt) {
  const std::string count1 = Stored(conn_, "book_count/1");
  const std::string snap1 = Snapshot("book_count/1");
  const std::string log_a = LogPath("augment_order_a"), log_b = LogPath("augment_order_b");
  PausedDaemon a(conninfo_, "compute", {}, log_a, "debug");
  InsertBook(1);
  ASSERT_TRUE(a.WaitPaused());
  DaemonProcess b(conninfo_, {}, log_b, "debug");
  InsertBook(1);
  // b has claimed the newer insert and waits for a's claim. (Released
  // before b waits, a may write between b's read of the product and b's
  // look at the older changes: b then recomputes, since the value it read
  // moved.)
  ASSERT_TRUE(WaitForLog(log_b, "waiting for 1 earlier claim(s) to be written before augmenting 1 products"))
      << FileText(log_b);
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.claims"), "2");
  EXPECT_NE(FileText(log_b).find("fast write rolled back, computing the batch the usual way: changes older than the "
                                 "batch's first are still in the outbox"),
            std::string::npos)
      << FileText(log_b);
  a.Release();
  ASSERT_TRUE(WaitFor([&] { return Stored(conn_, "book_count/1") == std::to_string(std::stoi(count1) + 2); }));
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Snapshot("book_count/1"), snap1) << "recomputed instead of augmented after the earlier claim\na:\n"
                                             << FileText(log_a) << "\nb:\n" << FileText(log_b);
  ExpectCacheMatchesRecompute(conn_);
}

TEST_F(AugmentOrderTest, ManyKeysAugmentWithFourDaemons) {
  // 150 single-row inserts over 20 authors, and one bulk insert, applied by
  // four daemons: every count exact.
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) daemons.push_back(std::make_unique<DaemonProcess>(conninfo_));
  std::vector<std::string> keys;
  for (int author = 1; author <= 20; ++author) keys.push_back("book_count/" + std::to_string(author));
  Prime(conn_, keys);
  for (int i = 0; i < 150; ++i) InsertBook(1 + i % 20);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 20, 'bulk' FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
