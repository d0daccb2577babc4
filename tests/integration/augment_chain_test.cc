// Several changes of one key in one batch are augmented by one statement
// (primers/augment_chain.h): each augment reads the value the one before
// produced, and a failure anywhere in the chain falls back to one recompute.
#include "daemon_helpers.h"

namespace kck::testing {
namespace {

// shelf/<author_id>: the count and titles of the author's books, augmented
// on insert and delete; the augments read :value twice, :old or :new, and
// the key's parameter. A title 'boom' makes the insert augment fail. The
// insert augment ends with a comment.
const char* kShelfConfig = R"json({"primers": [
  {"name": "shelf", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('n', count(*), 'titles', coalesce(jsonb_agg(title ORDER BY id), '[]'), 'author', :author_id) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {
     "insert": "SELECT jsonb_build_object('n', (:value->>'n')::int + 1, 'titles', (:value->'titles') || to_jsonb(:new->>'title'), 'author', :author_id + 0 * (1 / (length(:new->>'title') - 4))) -- appends the title",
     "delete": "SELECT jsonb_build_object('n', (:value->>'n')::int - 1, 'titles', (SELECT coalesce(jsonb_agg(t ORDER BY o), '[]') FROM jsonb_array_elements(:value->'titles') WITH ORDINALITY AS e (t, o) WHERE t <> to_jsonb(:old->>'title')), 'author', :author_id)"}}}
]})json";

// counted/<author_id>: the author's books, augmented on insert by a
// statement that sleeps 20 ms, so that an augment costs more than a
// recompute.
const char* kDearAugmentConfig = R"json({"primers": [
  {"name": "counted", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT count(*) FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
   "augment": {"store_book": {"insert": "SELECT to_jsonb((:value)::int + 1 + 0 * (SELECT count(*) FROM pg_sleep(0.02)))"}}}
]})json";

class AugmentChainTest : public BookstoreTest {
 protected:
  void SetUp() override {
    BookstoreTest::SetUp();
    InstallConfig(conn_, kShelfConfig);
    Prime(conn_, {"shelf/1", "shelf/2"});
  }
  std::string Field(const std::string& key, const std::string& column) {
    auto r = conn_.Exec("SELECT " + column + "::text FROM kck.cache WHERE key = $1", {key});
    return r.ok() && r->rows() == 1 && !r->is_null(0, 0) ? std::string(r->get(0, 0)) : "<null>";
  }
  // With a daemon running kDearAugmentConfig: an augment of one change, a
  // chain of two (one transaction) and, for an UPDATE, a recompute, each
  // applied before the next; with a debug `log`, the batches are checked.
  void TimeCountedAugments(const std::string& log = "") {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'one')");
    ASSERT_TRUE(WaitDrained(conn_));
    if (!log.empty()) {
      EXPECT_TRUE(WaitForLog(log, "batch: 1 changes, 1 products written (1 augmented)")) << FileText(log);
    }
    MustExec(conn_, "BEGIN; "
                    "INSERT INTO store_book (author_id, title) VALUES (1, 'two'); "
                    "INSERT INTO store_book (author_id, title) VALUES (1, 'three'); "
                    "COMMIT");
    ASSERT_TRUE(WaitDrained(conn_));
    if (!log.empty()) {
      EXPECT_TRUE(WaitForLog(log, "batch: 2 changes, 1 products written (1 augmented)")) << FileText(log);
    }
    MustExec(conn_, "UPDATE store_book SET title = 'renamed' WHERE title = 'one'");
    ASSERT_TRUE(WaitDrained(conn_));
  }
  // Authors up to 130, and counted/<first..last> stored.
  void PrimeCounted(int first, int last) {
    MustExec(conn_, "INSERT INTO store_author (name) SELECT 'more ' || i FROM generate_series(21, 130) i");
    std::vector<std::string> keys;
    for (int a = first; a <= last; ++a) keys.push_back("counted/" + std::to_string(a));
    Prime(conn_, keys);
  }
};

// Two single-row inserts for each of the authors 2-121, in one transaction
// (a statement of a DO block).
constexpr const char* kTwoBooksEach =
    "FOR a IN 2..121 LOOP "
    "INSERT INTO store_book (author_id, title) VALUES (a, 'x'); "
    "INSERT INTO store_book (author_id, title) VALUES (a, 'y'); "
    "END LOOP;";

TEST_F(AugmentChainTest, ManyChangesOfOneKeyInOneBatchAreAppliedInOrder) {
  const std::string snapshot = Field("shelf/1", "snapshot");
  // One transaction: the daemon claims its changes together.
  MustExec(conn_, "BEGIN; "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'first'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'second'); "
                  "DELETE FROM store_book WHERE title = 'first'; "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'third'); "
                  "INSERT INTO store_book (author_id, title) VALUES (2, 'other'); "
                  "COMMIT");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_NE(Stored(conn_, "shelf/1").find(R"("n": 12)"), std::string::npos) << Stored(conn_, "shelf/1");
  // Augmented, not recomputed: it keeps the snapshot of its last compute.
  EXPECT_EQ(Field("shelf/1", "snapshot"), snapshot);
  EXPECT_EQ(Field("shelf/1", "version"), "2");
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.primer_stats WHERE augment_fallbacks > 0"), "0");
}

TEST_F(AugmentChainTest, ASingleChangeIsAugmentedThoughItsSqlEndsWithAComment) {
  const std::string snapshot = Field("shelf/1", "snapshot");
  DaemonProcess daemon(conninfo_);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'alone')");
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Field("shelf/1", "snapshot"), snapshot)
      << Scalar(conn_, "SELECT last_fallback FROM kck.primer_stats WHERE primer = 'shelf'");
}

TEST_F(AugmentChainTest, AFailureInTheChainRecomputesTheKeyOnce) {
  const std::string snapshot = Field("shelf/1", "snapshot");
  MustExec(conn_, "BEGIN; "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'fine'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'boom'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'after'); "
                  "COMMIT");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_NE(Field("shelf/1", "snapshot"), snapshot);  // recomputed
  EXPECT_EQ(Scalar(conn_, "SELECT augment_fallbacks FROM kck.primer_stats WHERE primer = 'shelf'"), "1");
  EXPECT_NE(Scalar(conn_, "SELECT last_fallback FROM kck.primer_stats WHERE primer = 'shelf'").find("division by zero"),
            std::string::npos);
}

// Keys augmented by one change each go in one round trip with the batch's
// recomputes (SqlEngine::ComputeAhead); one that fails there is augmented
// again alone, which records its fallback and recomputes it, and the
// others keep their augments.
TEST_F(AugmentChainTest, KeysAugmentedTogetherFailAlone) {
  Prime(conn_, {"shelf/3"});
  const std::string snapshot1 = Field("shelf/1", "snapshot"), snapshot2 = Field("shelf/2", "snapshot"),
                    snapshot3 = Field("shelf/3", "snapshot");
  MustExec(conn_, "BEGIN; "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'boom'); "
                  "INSERT INTO store_book (author_id, title) VALUES (2, 'good one'); "
                  "DELETE FROM store_book WHERE id = (SELECT min(id) FROM store_book WHERE author_id = 3); "
                  "COMMIT");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_NE(Field("shelf/1", "snapshot"), snapshot1);  // recomputed
  EXPECT_EQ(Field("shelf/2", "snapshot"), snapshot2);  // augmented
  EXPECT_EQ(Field("shelf/3", "snapshot"), snapshot3);
  EXPECT_EQ(Field("shelf/2", "version"), "2");
  EXPECT_EQ(Field("shelf/3", "version"), "2");
  EXPECT_EQ(Scalar(conn_, "SELECT augment_fallbacks FROM kck.primer_stats WHERE primer = 'shelf'"), "1")
      << Scalar(conn_, "SELECT last_fallback FROM kck.primer_stats WHERE primer = 'shelf'");
}

TEST_F(AugmentChainTest, AChainLongerThanOneStatementTakesIsSplit) {
  // 150 changes for one key, with augment_max_changes raised above them:
  // applied by two statements (SqlEngine::kMaxChain is 100).
  std::string config = kShelfConfig;
  config.insert(config.find(R"("compute")"), R"("augment_max_changes": 1000, )");
  InstallConfig(conn_, config);
  const std::string snapshot = Field("shelf/1", "snapshot");
  std::string tx = "BEGIN; ";
  for (int i = 0; i < 150; ++i) tx += "INSERT INTO store_book (author_id, title) VALUES (1, 'chained " + std::to_string(i) + "'); ";
  MustExec(conn_, tx + "COMMIT");
  DaemonProcess daemon(conninfo_);
  ASSERT_TRUE(WaitDrained(conn_));
  ExpectCacheMatchesRecompute(conn_);
  EXPECT_EQ(Field("shelf/1", "snapshot"), snapshot)
      << Scalar(conn_, "SELECT last_fallback FROM kck.primer_stats WHERE primer = 'shelf'");
}

// Once the daemon has timed the primer's augments (of one change and of a
// chain) and its recompute, a key whose changes would cost more to augment
// than to recompute is recomputed (Executor::RecomputeWhereCheaper).
TEST_F(AugmentChainTest, ChangesDearerToAugmentThanARecomputeAreRecomputed) {
  InstallConfig(conn_, kDearAugmentConfig);
  Prime(conn_, {"counted/1"});
  const std::string log = LogPath("augment_dearer");
  DaemonProcess daemon(conninfo_, {}, log, "debug");
  // One insert, then a chain of two, then a recompute: timed.
  TimeCountedAugments(log);
  if (HasFatalFailure()) return;
  // Five inserts, claimed together: 5 x 20 ms of augments against a recompute.
  MustExec(conn_, "BEGIN; "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'a'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'b'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'c'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'd'); "
                  "INSERT INTO store_book (author_id, title) VALUES (1, 'e'); "
                  "COMMIT");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_TRUE(WaitForLog(log, "batch: 5 changes, 1 products written (0 augmented)")) << FileText(log);
  EXPECT_EQ(Stored(conn_, "counted/1"), Scalar(conn_, "SELECT count(*) FROM store_book WHERE author_id = 1"));
  // 120 keys with two single-row inserts each, in one transaction: all
  // recomputed, each once.
  PrimeCounted(2, 121);
  MustExec(conn_, std::string("DO $$ BEGIN ") + kTwoBooksEach + " END $$");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_TRUE(WaitForLog(log, "batch: 240 changes, 120 products written (0 augmented)")) << FileText(log);
  ExpectCacheMatchesRecompute(conn_);
}

// A daemon that stops publishes what it timed (kck.primer_stats), and the
// next one begins with it: a backlog of five changes to a key whose
// augments cost more than its recompute, and of two changes to each of 120
// keys, is recomputed in its first batch. Once the primer's definition
// changes, what was timed is not taken: a new daemon augments.
TEST_F(AugmentChainTest, ADaemonThatStartsBeginsWithWhatTheOneBeforeTimed) {
  InstallConfig(conn_, kDearAugmentConfig);
  PrimeCounted(1, 121);
  {
    DaemonProcess first(conninfo_);
    TimeCountedAugments();
    if (HasFatalFailure()) return;
    first.Kill(SIGTERM);
  }
  EXPECT_EQ(Scalar(conn_, "SELECT (timings->>'short_n') || ' ' || (timings->>'long_n') || ' ' || "
                          "(timings ? 'compute_ms') FROM kck.primer_stats WHERE primer = 'counted'"),
            "1 2 true");
  MustExec(conn_, std::string("DO $$ BEGIN ") +
                      "FOR i IN 1..5 LOOP INSERT INTO store_book (author_id, title) VALUES (1, 'b' || i); END LOOP; " +
                      kTwoBooksEach + " END $$");
  const std::string log = LogPath("augment_restarted");
  {
    DaemonProcess second(conninfo_, {}, log, "debug");
    ASSERT_TRUE(WaitDrained(conn_));
    EXPECT_TRUE(WaitForLog(log, "batch: 245 changes, 121 products written (0 augmented)")) << FileText(log);
    second.Kill(SIGTERM);
  }
  ExpectCacheMatchesRecompute(conn_);
  // The same primer, defined otherwise.
  std::string changed = kDearAugmentConfig;
  changed.replace(changed.find("SELECT count(*) FROM"), 20, "SELECT count(*) + 0 FROM");
  InstallConfig(conn_, changed);
  const std::string log2 = LogPath("augment_redefined");
  DaemonProcess third(conninfo_, {}, log2, "debug");
  ASSERT_TRUE(WaitDrained(conn_));  // the redefined primer's products, recomputed
  MustExec(conn_, "DO $$ BEGIN "
                  "FOR i IN 1..5 LOOP INSERT INTO store_book (author_id, title) VALUES (1, 'c' || i); END LOOP; "
                  "END $$");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_TRUE(WaitForLog(log2, "batch: 5 changes, 1 products written (1 augmented)")) << FileText(log2);
  ExpectCacheMatchesRecompute(conn_);
}

// Against a schema without kck.primer_stats.timings (older than 18) a
// daemon neither reads nor publishes timings, and applies changes as before.
TEST_F(AugmentChainTest, ADaemonOnASchemaWithoutTimingsAppliesChangesAsBefore) {
  MustExec(conn_, "ALTER TABLE kck.primer_stats DROP COLUMN timings");
  const std::string log = LogPath("augment_no_timings");
  DaemonProcess daemon(conninfo_, {}, log, "debug");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'one')");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 2, 'bulk ' || i FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn_));
  daemon.Kill(SIGTERM);
  const std::string text = FileText(log);
  EXPECT_NE(text.find("reading the primers' published timings"), std::string::npos) << text;
  EXPECT_NE(text.find("publishing the primers' timings"), std::string::npos) << text;
  ExpectCacheMatchesRecompute(conn_);
}

// Four daemons apply single-row and 150-row inserts, then stop: each
// publishes what it timed to the same row of kck.primer_stats, none fails
// to, and a daemon that starts takes it.
TEST_F(AugmentChainTest, FourDaemonsPublishTheirTimingsToOneRow) {
  std::vector<std::string> logs;
  std::vector<std::unique_ptr<DaemonProcess>> daemons;
  for (int i = 0; i < 4; ++i) {
    logs.push_back(LogPath("augment_four_" + std::to_string(i)));
    daemons.push_back(std::make_unique<DaemonProcess>(conninfo_, std::vector<std::string>{}, logs.back(), "debug"));
  }
  for (int i = 0; i < 150; ++i) {
    MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (" + std::to_string(1 + i % 2) + ", 'n" +
                        std::to_string(i) + "')");
  }
  MustExec(conn_, "INSERT INTO store_book (author_id, title) SELECT 1 + i % 2, 'bulk ' || i FROM generate_series(1, 150) i");
  ASSERT_TRUE(WaitDrained(conn_));
  for (auto& d : daemons) EXPECT_EQ(WEXITSTATUS(d->Kill(SIGTERM)), 0);
  for (const auto& log : logs) {
    EXPECT_EQ(FileText(log).find("publishing the primers' timings:"), std::string::npos) << FileText(log);
  }
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.primer_stats WHERE primer = 'shelf' AND timings ? 'spec'"), "1");
  const std::string log = LogPath("augment_four_next");
  DaemonProcess next(conninfo_, {}, log, "debug");
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (1, 'after')");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(FileText(log).find("published timings are not in a form"), std::string::npos) << FileText(log);
  ExpectCacheMatchesRecompute(conn_);
}

// A daemon whose listening connection is lost as it publishes its timings
// (the first publish, ten seconds after it starts) connects again, keeps
// what it timed with the same primers, and publishes it as it stops.
TEST_F(AugmentChainTest, TimingsWhosePublishFailedArePublishedNextTime) {
  InstallConfig(conn_, kDearAugmentConfig);
  PrimeCounted(1, 1);
  ScopedEnv env({{"KCK_FAULT_CUT", "publish_timings:1"}});
  const std::string log = LogPath("augment_publish_cut");
  DaemonProcess daemon(conninfo_, {}, log, "debug");
  TimeCountedAugments();
  if (HasFatalFailure()) return;
  ASSERT_TRUE(WaitForLog(log, "cutting the connection at step publish_timings", std::chrono::seconds(20)))
      << FileText(log);
  ASSERT_TRUE(WaitForLog(log, "reconnecting")) << FileText(log);
  MustExec(conn_, "INSERT INTO store_book (author_id, title) VALUES (2, 'after')");
  ASSERT_TRUE(WaitDrained(conn_));
  EXPECT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.primer_stats WHERE timings IS NOT NULL"), "0");
  EXPECT_EQ(WEXITSTATUS(daemon.Kill(SIGTERM)), 0);
  EXPECT_EQ(Scalar(conn_, "SELECT (timings->>'short_n') || ' ' || (timings->>'long_n') || ' ' || "
                          "(timings ? 'compute_ms') FROM kck.primer_stats WHERE primer = 'counted'"),
            "1 2 true")
      << FileText(log);
  ExpectCacheMatchesRecompute(conn_);
}

}  // namespace
}  // namespace kck::testing
