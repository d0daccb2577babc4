// Torture runs: a writer streams changes while the daemon is killed, the
// server restarted, the daemon's backends terminated, or four daemons share
// the work with one killed at random. After each round the outbox is
// drained and the cache must equal a recompute from scratch, with the
// counts kept by augment exact.
#include <cstdio>
#include <memory>

#include "tests/torture/torture_helpers.h"
#include "tests/torture/writer.h"

namespace kck::torture {
namespace {

// How much torture: the short form runs with ctest, the long one with
// KCK_TORTURE_LONG=1.
struct Sizes {
  int authors;        // per-author products stored up front: 4 x authors
  int rounds;         // drains + oracle checks per phase
  int kills;          // phase (a): SIGKILLs of the daemon
  int pg_restarts;    // phase (b): server restarts
  int terminations;   // phase (c): pg_terminate_backend of daemon backends
  int multi_kills;    // phase (d): kills among four daemons
  std::chrono::seconds drain_limit;
};

Sizes CurrentSizes() {
  if (LongForm()) return {400, 10, 200, 24, 200, 200, 300s};
  return {120, 2, 30, 4, 20, 12, 90s};
}

// Counts reported at the end of each phase.
struct Counts {
  int trials = 0, kills = 0, restarts = 0, terminations = 0, daemons_started = 0;
};

class TortureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    sizes_ = CurrentSizes();
    rng_ = TestRng();
    conninfo_ = kck::testing::FreshDatabase();
    conn_ = kck::testing::Connect(TestConnInfo(conninfo_));
    MustExec(conn_, TortureSchema(sizes_.authors));
    kck::testing::InstallConfig(conn_, kTortureConfig);
    PrimeKeys(conn_, TortureKeys(sizes_.authors));
    PrimeSomeThroughTheCli();
    first_change_ = ChangeSequence();
  }

  // A few products stored by `kck refresh` and `kck get`, as a user would.
  void PrimeSomeThroughTheCli() {
    CommandResult refreshed = RunKck(conninfo_, {"refresh", "title_list/1", "book_count/1", "book_total"});
    EXPECT_EQ(refreshed.exit_code, 0) << refreshed.output;
    CommandResult got = RunKck(conninfo_, {"get", "stars/2"});
    EXPECT_EQ(got.exit_code, 0) << got.output;
  }

  long long ChangeSequence() { return std::stoll(Scalar(conn_, "SELECT last_value FROM kck.changes_id_seq")); }

  std::unique_ptr<Daemon> StartDaemon(int slot) {
    static const char* const kBatches[] = {"10", "100", "5000"};
    const char* batch = kBatches[Uniform(rng_, 0, 2)];
    ++counts_.daemons_started;
    std::string log = LogDir() + "/" + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-d" +
                      std::to_string(slot) + ".log";
    return std::make_unique<Daemon>(conninfo_, log, std::vector<std::string>{"--batch", batch});
  }

  std::unique_ptr<Writer> StartWriter() {
    auto writer = std::make_unique<Writer>(TestConnInfo(conninfo_), sizes_.authors, rng_());
    writer->Start();
    return writer;
  }

  void SleepRandom(int lo_ms, int hi_ms) { std::this_thread::sleep_for(std::chrono::milliseconds(Uniform(rng_, lo_ms, hi_ms))); }

  // Waits for the outbox to drain and the daemons to idle, then checks the
  // oracle. Fails the test (fatally) when the drain does not finish.
  void DrainAndCheck(const std::string& what, const std::vector<const Daemon*>& daemons) {
    auto start = std::chrono::steady_clock::now();
    bool quiet = WaitQuiet(conn_, TestConnInfo(conninfo_), sizes_.drain_limit);
    std::printf("kck torture: %s: drained in %.1f s\n", what.c_str(),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::fflush(stdout);
    std::string logs;
    for (const Daemon* d : daemons) logs += "\n--- " + d->log_path() + " (tail)\n" + Tail(d->log(), 15);
    ASSERT_TRUE(quiet) << what << ": not drained after " << sizes_.drain_limit.count() << " s: " << OutboxReport(conn_)
                       << logs;
    ExpectConsistent(conn_, what);
  }

  void Report(const std::string& phase, const Writer& writer) {
    std::printf("kck torture [%s] seed=%llu trials=%d kills=%d restarts=%d terminations=%d daemons_started=%d "
                "writer_statements=%ld writer_failures=%ld changes_streamed=%lld\n",
                phase.c_str(), static_cast<unsigned long long>(Seed()), counts_.trials, counts_.kills,
                counts_.restarts, counts_.terminations, counts_.daemons_started, writer.statements(),
                writer.failures(), ChangeSequence() - first_change_);
    std::fflush(stdout);
  }

  Sizes sizes_;
  std::mt19937_64 rng_;
  std::string conninfo_;  // for daemons and kck commands (application_name kck)
  pg::Connection conn_;   // the test's own (application_name kck_torture)
  Counts counts_;
  long long first_change_ = 0;
};

// (a) SIGKILL at random points, including right after start.
TEST_F(TortureTest, DaemonKilledAtRandomPoints) {
  auto writer = StartWriter();
  auto daemon = StartDaemon(0);
  const int kills_per_round = sizes_.kills / sizes_.rounds;
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int k = 0; k < kills_per_round; ++k, ++counts_.trials) {
      SleepRandom(0, 400);
      daemon->Kill(SIGKILL);
      ++counts_.kills;
      daemon = StartDaemon(0);
    }
    writer->Stop();
    DrainAndCheck("after kill round " + std::to_string(round), {daemon.get()});
    if (round < sizes_.rounds) writer->Start();
  }
  Report("kill", *writer);
}

// (b) pg_ctl restart -m fast and -m immediate under a running daemon,
// which must reconnect and stay up.
TEST_F(TortureTest, PostgresRestartedUnderTheDaemon) {
  auto daemon = StartDaemon(0);
  ASSERT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), sizes_.drain_limit)) << OutboxReport(conn_);
  long rss_before = daemon->RssKb();
  auto writer = StartWriter();
  const int restarts_per_round = std::max(1, sizes_.pg_restarts / sizes_.rounds);
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int r = 0; r < restarts_per_round; ++r, ++counts_.trials) {
      SleepRandom(100, 1500);
      std::string mode = Uniform(rng_, 0, 1) == 0 ? "fast" : "immediate";
      ASSERT_TRUE(Cluster().Stop(mode).ok()) << "pg_ctl stop -m " << mode;
      SleepRandom(0, 300);
      Status restarted = Cluster().Restart();
      ASSERT_TRUE(restarted.ok()) << restarted.message();
      ++counts_.restarts;
    }
    writer->Stop();
    DrainAndCheck("after server restart round " + std::to_string(round), {daemon.get()});
    if (round < sizes_.rounds) writer->Start();
  }
  EXPECT_TRUE(daemon->running()) << "the daemon exited across server restarts:\n" << Tail(daemon->log(), 20);
  std::printf("kck torture [restart] daemon RSS before %ld kB, after %ld kB\n", rss_before, daemon->RssKb());
  Report("restart", *writer);
}

// (c) pg_terminate_backend of one of the daemon's backends at random.
TEST_F(TortureTest, DaemonBackendsTerminated) {
  auto daemon = StartDaemon(0);
  ASSERT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), sizes_.drain_limit)) << OutboxReport(conn_);
  long rss_before = daemon->RssKb();
  auto writer = StartWriter();
  const int per_round = sizes_.terminations / sizes_.rounds;
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int t = 0; t < per_round; ++t, ++counts_.trials) {
      SleepRandom(20, 400);
      auto pids = conn_.Exec(kDaemonBackendsSql);
      ASSERT_TRUE(pids.ok()) << pids.status().message();
      if (pids->rows() == 0) continue;  // reconnecting right now
      std::string pid(pids->get(Uniform(rng_, 0, pids->rows() - 1), 0));
      if (Scalar(conn_, "SELECT pg_terminate_backend($1::int)", {pid}) == "t") ++counts_.terminations;
    }
    writer->Stop();
    DrainAndCheck("after termination round " + std::to_string(round), {daemon.get()});
    if (round < sizes_.rounds) writer->Start();
  }
  EXPECT_TRUE(daemon->running()) << "the daemon exited after its backends were terminated:\n" << Tail(daemon->log(), 20);
  std::printf("kck torture [terminate] daemon RSS before %ld kB, after %ld kB\n", rss_before, daemon->RssKb());
  Report("terminate", *writer);
}

// (d) Four daemons share the outbox; one at random is killed and restarted.
TEST_F(TortureTest, FourDaemonsOneKilledAtRandom) {
  std::vector<std::unique_ptr<Daemon>> daemons;
  for (int slot = 0; slot < 4; ++slot) daemons.push_back(StartDaemon(slot));
  auto writer = StartWriter();
  const int per_round = sizes_.multi_kills / sizes_.rounds;
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int k = 0; k < per_round; ++k, ++counts_.trials) {
      SleepRandom(0, 500);
      int slot = Uniform(rng_, 0, 3);
      daemons[slot]->Kill(SIGKILL);
      ++counts_.kills;
      daemons[slot] = StartDaemon(slot);
    }
    writer->Stop();
    std::vector<const Daemon*> all;
    for (auto& d : daemons) all.push_back(d.get());
    DrainAndCheck("after four-daemon round " + std::to_string(round), all);
    if (round < sizes_.rounds) writer->Start();
  }
  Report("four daemons", *writer);
}

}  // namespace
}  // namespace kck::torture
