// Torture runs: a writer streams changes while the daemon is killed, the
// server restarted, the daemon's backends terminated, or four daemons share
// the work with one killed at random. After each round the outbox is
// drained and the cache must equal a recompute from scratch, with the
// counts kept by augment exact. Besides the SQL primers, every daemon runs
// the real Django worker for two Python primers (tests/torture/django):
// py_titles (recomputed), py_book_count and py_review_total (augmented).
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
  int python_authors; // Python products stored up front: 2 x python_authors + 1
  std::chrono::seconds drain_limit;
};

Sizes CurrentSizes() {
  if (LongForm()) return {400, 10, 200, 24, 200, 200, 100, 300s};
  return {120, 2, 30, 4, 20, 12, 16, 90s};
}

// Counts reported at the end of each phase.
struct Counts {
  int trials = 0, kills = 0, restarts = 0, terminations = 0, daemons_started = 0;
  int worker_terminations = 0;  // of the terminations: a Python worker's backend
  int workers_left_behind = 0;  // workers still running 5 s after their daemon's SIGKILL
};

// How long a Python worker may outlive its SIGKILLed daemon: it exits at
// the end of its input, after the request in hand.
constexpr auto kWorkerGrace = 5s;

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
    SyncPythonPrimers();
    if (HasFatalFailure()) return;
    PrimePythonThroughDjango();
    first_change_ = ChangeSequence();
  }

  // Daemons are gone by now (the test body owned them); their workers exit
  // at the end of their input. Whatever of this process's tagged children
  // is still there after the grace period is killed.
  void TearDown() override {
    auto end = std::chrono::steady_clock::now() + kWorkerGrace;
    while (!PidsWithEnv(TagPrefix()).empty() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(50ms);
    for (pid_t pid : PidsWithEnv(TagPrefix())) {
      std::printf("kck torture: killing leftover pid %d (%s)\n", pid, CommandLine(pid).c_str());
      kill(pid, SIGKILL);
    }
  }

  // The Python primers registered as a Django deploy does: `manage.py kck_sync`.
  void SyncPythonPrimers() {
    CommandResult synced = RunManagePy(conninfo_, {"kck_sync"});
    ASSERT_EQ(synced.exit_code, 0) << "manage.py kck_sync: " << synced.output;
    ASSERT_EQ(Scalar(conn_, "SELECT string_agg(name || ':' || engine, ',' ORDER BY name) FROM kck.primers WHERE name LIKE 'py\\_%'"),
              "py_book_count:python,py_review_total:python,py_titles:python");
  }

  // The Python products stored up front, read through Django's Cache (a
  // miss computes and stores, under the reader's locks).
  void PrimePythonThroughDjango() {
    const std::string n = std::to_string(sizes_.python_authors);
    CommandResult primed = RunManagePy(conninfo_, {"shell", "-c",
        "from kck import Cache\nc = Cache.get_instance()\nfor a in range(1, " + n + " + 1):\n"
        "    c.get('py_titles/%d' % a)\n    c.get('py_book_count/%d' % a)\nc.get('py_review_total')\n"});
    ASSERT_EQ(primed.exit_code, 0) << "manage.py shell (priming Python products): " << primed.output;
    ASSERT_EQ(Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE primer LIKE 'py\\_%' AND error IS NULL"),
              std::to_string(2 * sizes_.python_authors + 1));
  }

  // KCK_TORTURE_TAG of this process's daemons: each daemon's entry, which
  // its Python worker inherits, is this prefix, its number and a dot.
  static std::string TagPrefix() { return "KCK_TORTURE_TAG=" + std::to_string(getpid()) + "-"; }

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
    std::string tag = TagPrefix() + std::to_string(counts_.daemons_started) + ".";
    std::vector<std::string> env = DjangoEnv(conninfo_);
    env.push_back(tag);
    auto daemon = std::make_unique<Daemon>(conninfo_, log,
                                           std::vector<std::string>{"--batch", batch, "--python-worker", PythonWorkerCommand()}, env);
    tags_[daemon->pid()] = {tag, "daemon #" + std::to_string(counts_.daemons_started) + " (" + log + ")"};
    return daemon;
  }

  // SIGKILLs `daemon`; its Python worker is checked for at the next drain.
  void KillDaemon(std::unique_ptr<Daemon>& daemon) {
    auto tag = tags_.extract(daemon->pid());
    daemon->Kill(SIGKILL);
    ++counts_.kills;
    if (!tag.empty()) killed_.push_back({tag.mapped().first, tag.mapped().second, std::chrono::steady_clock::now()});
  }

  // Every SIGKILLed daemon's worker must be gone kWorkerGrace after the
  // kill (the daemon runs it in a process group of its own, so the kill
  // does not take it along; it must exit at the end of its input). One
  // still running is reported and killed.
  void ExpectNoWorkerLeftBehind(const std::string& what) {
    std::vector<std::string> left;
    for (const auto& k : killed_) {
      std::this_thread::sleep_until(k.at + kWorkerGrace);
      for (pid_t pid : PidsWithEnv(k.tag)) {
        left.push_back("pid " + std::to_string(pid) + " (" + CommandLine(pid) + ") of " + k.daemon + " still running " +
                       std::to_string(std::chrono::duration_cast<std::chrono::seconds>(kWorkerGrace).count()) +
                       " s after that daemon was SIGKILLed");
        kill(pid, SIGKILL);
      }
    }
    killed_.clear();
    counts_.workers_left_behind += static_cast<int>(left.size());
    EXPECT_TRUE(left.empty()) << what << ": " << left.size() << " Python worker(s) left behind (seed " << Seed()
                              << "):" << JoinFirst(left, 8);
  }

  std::unique_ptr<Writer> StartWriter() {
    auto writer = std::make_unique<Writer>(TestConnInfo(conninfo_), sizes_.authors, rng_());
    writer->Start();
    return writer;
  }

  // The last third of a round's faults run with row changes only (see
  // Writer::RowsOnly()).
  static void RowsOnlyNearEnd(Writer& writer, int trial, int per_round) {
    if (trial >= per_round - std::max(1, per_round / 3)) writer.RowsOnly();
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
    ASSERT_TRUE(quiet) << what << ": not drained after " << sizes_.drain_limit.count() << " s (seed " << Seed()
                       << "): " << OutboxReport(conn_) << logs;
    ExpectConsistent(conn_, what + " (seed " + std::to_string(Seed()) + ")", conninfo_);
    ExpectNoWorkerLeftBehind(what);
  }

  void Report(const std::string& phase, const Writer& writer) {
    std::printf("kck torture [%s] seed=%llu trials=%d kills=%d restarts=%d terminations=%d daemons_started=%d "
                "writer_statements=%ld writer_failures=%ld changes_streamed=%lld python_products=%s "
                "worker_terminations=%d workers_left_behind=%d python_augment_fallbacks=%s\n",
                phase.c_str(), static_cast<unsigned long long>(Seed()), counts_.trials, counts_.kills,
                counts_.restarts, counts_.terminations, counts_.daemons_started, writer.statements(),
                writer.failures(), ChangeSequence() - first_change_,
                Scalar(conn_, "SELECT count(*) FROM kck.cache WHERE primer LIKE 'py\\_%'").c_str(),
                counts_.worker_terminations, counts_.workers_left_behind,
                Scalar(conn_, "SELECT coalesce(sum(augment_fallbacks), 0) FROM kck.primer_stats WHERE primer LIKE 'py\\_%'").c_str());
    std::fflush(stdout);
  }

  Sizes sizes_;
  std::mt19937_64 rng_;
  std::string conninfo_;  // for daemons and kck commands (application_name kck)
  pg::Connection conn_;   // the test's own (application_name kck_torture)
  Counts counts_;
  long long first_change_ = 0;
  struct Killed {
    std::string tag, daemon;
    std::chrono::steady_clock::time_point at;
  };
  std::map<pid_t, std::pair<std::string, std::string>> tags_;  // running daemon pid -> (tag, description)
  std::vector<Killed> killed_;  // SIGKILLed since the last drain
};

// (a) SIGKILL at random points, including right after start.
TEST_F(TortureTest, DaemonKilledAtRandomPoints) {
  auto writer = StartWriter();
  auto daemon = StartDaemon(0);
  const int kills_per_round = sizes_.kills / sizes_.rounds;
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int k = 0; k < kills_per_round; ++k, ++counts_.trials) {
      RowsOnlyNearEnd(*writer, k, kills_per_round);
      SleepRandom(0, 400);
      KillDaemon(daemon);
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
      RowsOnlyNearEnd(*writer, r, restarts_per_round);
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

// (c) pg_terminate_backend of one of the daemon's backends, or of its
// Python worker's, at random.
TEST_F(TortureTest, DaemonBackendsTerminated) {
  auto daemon = StartDaemon(0);
  ASSERT_TRUE(WaitQuiet(conn_, TestConnInfo(conninfo_), sizes_.drain_limit)) << OutboxReport(conn_);
  long rss_before = daemon->RssKb();
  auto writer = StartWriter();
  const int per_round = sizes_.terminations / sizes_.rounds;
  for (int round = 1; round <= sizes_.rounds; ++round) {
    for (int t = 0; t < per_round; ++t, ++counts_.trials) {
      RowsOnlyNearEnd(*writer, t, per_round);
      SleepRandom(20, 400);
      auto pids = conn_.Exec(kDaemonAndWorkerBackendsSql);
      ASSERT_TRUE(pids.ok()) << pids.status().message();
      if (pids->rows() == 0) continue;  // reconnecting right now
      int row = Uniform(rng_, 0, pids->rows() - 1);
      std::string pid(pids->get(row, 0));
      if (Scalar(conn_, "SELECT pg_terminate_backend($1::int)", {pid}) == "t") {
        ++counts_.terminations;
        if (std::string(pids->get(row, 1)) != "kck") ++counts_.worker_terminations;
      }
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
      RowsOnlyNearEnd(*writer, k, per_round);
      SleepRandom(0, 500);
      int slot = Uniform(rng_, 0, 3);
      KillDaemon(daemons[slot]);
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
