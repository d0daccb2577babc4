// kck_bench: end-to-end benchmarks of kck on a private PostgreSQL cluster.
//
//   build/bench/kck_bench [--quick] [--kck PATH] [--only 1,2,3,4]
//
// Every number is measured against a baseline taken in the same run on the
// same cluster, and printed next to its target. See bench/README.md for what
// each number means.
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"
#include "pg/cluster.h"
#include "pg/connection.h"
#include "primers/config.h"
#include "primers/products.h"
#include "triggers/installer.h"

namespace kck::bench {
namespace {

constexpr int kAuthors = 20;
constexpr int kBooksPerAuthor = 500;
constexpr int kBooks = kAuthors * kBooksPerAuthor;
constexpr int kBigRows = 100000;
constexpr int kBigGroups = 20;
constexpr int kSmallKeys = 1000;  // book/<id> keys of section 1's small-product row
const char* kDb = "kck_bench";

// store_book as bench/README.md describes it, plus the index Django creates
// for a ForeignKey (author_id), which title_list's compute uses. `big` is the
// 100k-row table of the bulk test; big_sum/<grp> are its products. The
// numbers here must match kAuthors, kBooks, kBigRows and kBigGroups.
const char* kSchema = R"sql(
CREATE TABLE store_book (id bigserial PRIMARY KEY, author_id bigint, title text, price numeric);
CREATE INDEX store_book_author_id_idx ON store_book (author_id);
INSERT INTO store_book (author_id, title, price)
  SELECT 1 + (i - 1) % 20, 'book ' || i, 10 FROM generate_series(1, 10000) i;
CREATE TABLE big (id bigserial PRIMARY KEY, grp int NOT NULL, price numeric NOT NULL);
CREATE INDEX big_grp_idx ON big (grp);
INSERT INTO big (grp, price) SELECT 1 + (i - 1) % 20, 10 FROM generate_series(1, 100000) i;
CREATE TABLE bench_probe (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO bench_probe VALUES (1, 0);
)sql";

const char* kTitleListPrimer = R"json(
  {"name": "title_list", "parameters": [{"name": "author_id", "type": "int"}],
   "compute": "SELECT coalesce(jsonb_agg(jsonb_build_object('title', title) ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
   "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}]})json";
const char* kBigSumPrimer = R"json(
  {"name": "big_sum", "parameters": [{"name": "grp", "type": "int"}],
   "compute": "SELECT jsonb_build_object('rows', count(*), 'price', sum(price)) FROM big WHERE grp = :grp",
   "depends_on": [{"table": "big", "params": {"grp": "grp"}}]})json";
const char* kBookPrimer = R"json(
  {"name": "book", "parameters": [{"name": "id", "type": "int"}],
   "compute": "SELECT jsonb_build_object('title', title, 'price', price) FROM store_book WHERE id = :id",
   "depends_on": [{"table": "store_book", "params": {"id": "id"}}]})json";

// title_list's value recomputed in SQL, to check what the daemon stored.
const char* kTitleListStale =
    "SELECT count(*) FROM kck.cache c WHERE c.primer = 'title_list' AND c.value IS DISTINCT FROM "
    "(SELECT coalesce(jsonb_agg(jsonb_build_object('title', title) ORDER BY id), '[]') FROM store_book "
    "WHERE author_id = split_part(c.key, '/', 2)::bigint)";
const char* kBookStale =
    "SELECT count(*) FROM kck.cache c JOIN store_book b ON c.key = 'book/' || b.id "
    "WHERE c.value IS DISTINCT FROM jsonb_build_object('title', b.title, 'price', b.price)";
const char* kBigSumStale =
    "SELECT count(*) FROM kck.cache c WHERE c.primer = 'big_sum' AND c.value IS DISTINCT FROM "
    "(SELECT jsonb_build_object('rows', count(*), 'price', sum(price)) FROM big WHERE grp = split_part(c.key, '/', 2)::int)";

// Bench-only: a row trigger on kck.cache that tells a listener which key was
// just rewritten. The notification is sent when the daemon's batch commits.
const char* kFreshTrigger = R"sql(
CREATE FUNCTION public.bench_fresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_fresh', NEW.key);
  RETURN NULL;
END $$;
CREATE TRIGGER bench_fresh AFTER UPDATE ON kck.cache FOR EACH ROW EXECUTE FUNCTION public.bench_fresh();
)sql";

struct Options {
  bool quick = false;
  std::string kck;
  std::string pgbin;
  std::string daemon_log_level = "debug";
  bool keep = false;
  std::vector<std::string> pg_settings;  // extra server settings (diagnosis only)
  std::set<int> only = {1, 2, 3, 4};
  int iterations = 2000;
  int warmup = 200;
  int pgbench_secs = 8;
  int pgbench_rounds = 2;  // off/on pairs per setting
  int drain_changes = 50000;
  int book_keys = 5000;
};

// One line of the final summary.
struct Verdict {
  std::string what, measured, target;
  bool pass;
  bool info = false;  // no target: shown for context
};

std::string Fmt(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

std::string Quote(const std::string& s) {  // for /bin/sh
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)) {}
  int Run();

 private:
  void Setup();
  void Section1();
  void Section2();
  void Section3();
  void Section4();
  void PrintSummary();

  void SetCapture(bool on, const Config& config);
  void FreshTrigger(bool on);
  void Prime(const std::vector<std::string>& keys, bool sync_off);
  std::unique_ptr<Daemon> StartDaemon(const std::string& level, const std::string& conninfo = "",
                                      const std::vector<std::string>& extra = {});
  void WaitLive(Daemon& d);
  // The bench_fresh listener, connected on first use. Section 2 closes it:
  // every commit that notifies signals every listening backend of the
  // database, whatever its channel, so an idle listener costs the writer.
  Listener& Fresh();
  void CheckNoneStale(const char* sql, const std::string& what);
  double TimeExec(pg::Connection& c, const std::string& sql);
  PgbenchResult Pgbench(int secs, bool sync_off);
  void Prepare(const std::string& table);
  // p50 of 50 single-row UPDATE commits of a table without triggers: the
  // disk's current WAL flush latency, which on a VM can change by 10x.
  double CommitProbe();
  static std::string ProbeList(const std::vector<double>& probes);

  struct Latency {
    Samples fresh;  // t0 = the write acknowledged -> notification read
    Samples rtt;    // t = before the write is sent -> notification read
    Samples commit; // the write's own round trip
    Samples batch;  // the daemon's batch times (its debug log)
    int timeouts = 0;
  };
  Latency MeasureNotify();
  // `small`: the book/<id> primer (config B) over books 1..kSmallKeys
  // instead of title_list.
  Latency MeasureFresh(const std::string& writer_setup, const std::string& daemon_conninfo, bool small = false);
  void PrintLatency(const char* name, Samples& s, Latency& l, Samples* base);

  Options o_;
  std::unique_ptr<pg::TempCluster> cluster_;
  std::string conninfo_;  // for the daemon (application_name=kck)
  std::string bench_conninfo_;
  std::string work_;  // logs and the pgbench script
  std::string daemon_log_;
  std::optional<pg::Connection> admin_;
  std::unique_ptr<Listener> fresh_;
  Config config_a_, config_b_;
  std::vector<Verdict> verdicts_;
  std::mt19937_64 rng_{42};
};

int Bench::Run() {
  char tmpl[] = "/tmp/kck_bench.XXXXXX";
  if (mkdtemp(tmpl) == nullptr) Die("mkdtemp failed");
  work_ = tmpl;
  daemon_log_ = work_ + "/daemon.log";
  int rc = 0;
  try {
    Setup();
    if (o_.only.count(1)) Section1();
    if (o_.only.count(2)) Section2();
    if (o_.only.count(3)) Section3();
    if (o_.only.count(4)) Section4();
    PrintSummary();
  } catch (const BenchError& e) {
    std::fprintf(stderr, "\nkck_bench: %s\n", e.what());
    std::fprintf(stderr, "kck_bench: daemon log: %s\n", daemon_log_.c_str());
    o_.keep = true;
    rc = 1;
  }
  fresh_.reset();
  admin_.reset();
  cluster_.reset();
  if (o_.keep) {
    std::printf("\nlogs kept in %s\n", work_.c_str());
  } else {
    std::error_code ec;
    std::filesystem::remove_all(work_, ec);
  }
  return rc;
}

void Bench::Setup() {
  auto t0 = Clock::now();
  pg::TempCluster::Options co;
  co.bindir = o_.pgbin;
  co.settings = o_.pg_settings;
  cluster_ = Must(pg::TempCluster::Start(co), "starting the PostgreSQL cluster");
  Must(cluster_->CreateDatabase(kDb), "creating the database");
  conninfo_ = cluster_->ConnInfo(kDb);
  bench_conninfo_ = conninfo_ + " application_name=kck_bench";
  admin_.emplace(Connect(bench_conninfo_));
  pg::Connection& c = *admin_;
  Script(c, kSchema);
  Exec(c, "VACUUM ANALYZE");

  config_a_ = Must(ParseConfig(std::string("{\"primers\": [") + kTitleListPrimer + "," + kBigSumPrimer + "]}", "a.json"),
                   "config A");
  config_b_ = Must(ParseConfig(std::string("{\"primers\": [") + kBookPrimer + "," + kBigSumPrimer + "]}", "b.json"),
                   "config B");
  Must(Install(c, config_a_, false), "kck install (title_list, big_sum)");
  Script(c, kFreshTrigger);
  std::vector<std::string> keys;
  for (int a = 1; a <= kAuthors; ++a) keys.push_back("title_list/" + std::to_string(a));
  for (int g = 1; g <= kBigGroups; ++g) keys.push_back("big_sum/" + std::to_string(g));
  Prime(keys, false);

  // The environment, for the record.
  char date[64];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", std::localtime(&now));
  utsname u{};
  uname(&u);
  auto setting = [&](const char* name) {
    return std::string(Exec(c, std::string("SELECT current_setting('") + name + "')").get(0, 0));
  };
  std::string cpu = Capture("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'");
  std::printf("kck_bench %s%s\n", KCK_VERSION, o_.quick ? " --quick" : "");
  std::printf("  date        %s\n", date);
  std::printf("  machine     %s %s, %ld CPUs (%s)\n", u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN),
              cpu.c_str());
  std::printf("  postgres    %s\n", std::string(Exec(c, "SHOW server_version").get(0, 0)).c_str());
  std::printf("  settings    fsync=%s synchronous_commit=%s wal_sync_method=%s shared_buffers=%s (TempCluster defaults)\n",
              setting("fsync").c_str(), setting("synchronous_commit").c_str(), setting("wal_sync_method").c_str(),
              setting("shared_buffers").c_str());
  std::printf("  kck         %s (bench built %s)\n", o_.kck.c_str(), KCK_BENCH_BUILD_TYPE);
  std::printf("  disk        single-row commit p50 %.2f ms now (fsync probe; repeated before timed runs)\n",
              CommitProbe());
  std::printf("  data        store_book: %d authors x %d books; big: %d rows in %d groups; setup %.1f s\n\n", kAuthors,
              kBooksPerAuthor, kBigRows, kBigGroups, MsSince(t0) / 1000);
  std::fflush(stdout);
}

void Bench::SetCapture(bool on, const Config& config) {
  if (on) {
    Must(Install(*admin_, config, false), "kck install");
  } else {
    Must(Uninstall(*admin_, false, false), "kck uninstall");
  }
}

void Bench::FreshTrigger(bool on) {
  Script(*admin_, std::string("ALTER TABLE kck.cache ") + (on ? "ENABLE" : "DISABLE") + " TRIGGER bench_fresh");
}

void Bench::Prime(const std::vector<std::string>& keys, bool sync_off) {
  pg::Connection c = Connect(bench_conninfo_);
  if (sync_off) Script(c, "SET synchronous_commit = off");
  auto registry = Must(LoadRegistry(c), "loading primers");
  Products products(c, registry);
  for (const auto& k : keys) Must(products.Get(k), "priming " + k);
}

std::unique_ptr<Daemon> Bench::StartDaemon(const std::string& level, const std::string& conninfo,
                                           const std::vector<std::string>& extra) {
  return std::make_unique<Daemon>(o_.kck, conninfo.empty() ? conninfo_ : conninfo, daemon_log_, level, extra);
}

// Waits until the daemon has connected and applies changes: a no-op UPDATE
// of a book whose title_list (or book) product is stored.
void Bench::WaitLive(Daemon& d) {
  auto end = Clock::now() + std::chrono::seconds(20);
  while (Clock::now() < end) {
    if (!d.running()) Die("kck listen exited at start; see " + daemon_log_);
    Fresh().Drain();
    Exec(*admin_, "UPDATE store_book SET title = title WHERE id = 1");
    if (Fresh().Wait([](std::string_view) { return true; }, Clock::now() + std::chrono::seconds(2))) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // its log line lands before any offset
      Fresh().Drain();
      return;
    }
  }
  Die("kck listen did not apply a change within 20 s; see " + daemon_log_);
}

Listener& Bench::Fresh() {
  if (!fresh_) fresh_ = std::make_unique<Listener>(bench_conninfo_, "bench_fresh");
  return *fresh_;
}

void Bench::CheckNoneStale(const char* sql, const std::string& what) {
  long long stale = QueryInt(*admin_, sql);
  if (stale != 0) Die(what + ": " + std::to_string(stale) + " stored products differ from a recompute");
}

double Bench::TimeExec(pg::Connection& c, const std::string& sql) {
  auto t0 = Clock::now();
  Exec(c, sql);
  return MsSince(t0);
}

double Bench::CommitProbe() {
  Samples s;
  for (int i = 0; i < 50; ++i) s.Add(TimeExec(*admin_, "UPDATE bench_probe SET n = n + 1 WHERE id = 1"));
  return s.Pct(50);
}

std::string Bench::ProbeList(const std::vector<double>& probes) {
  std::string out;
  double lo = 1e18, hi = 0;
  for (double p : probes) {
    out += (out.empty() ? "" : " ") + Fmt("%.2f", p);
    lo = std::min(lo, p);
    hi = std::max(hi, p);
  }
  out += " ms";
  if (hi > 2 * lo && hi > 0.5) out += "  WARNING: the disk's flush latency changed during these runs; compare with care";
  return out;
}

void Bench::Prepare(const std::string& table) {
  Exec(*admin_, "TRUNCATE kck.changes");
  Exec(*admin_, "VACUUM " + table);
  Exec(*admin_, "CHECKPOINT");
}

// ---------------------------------------------------------------------------
// 1. Commit -> fresh latency.

Bench::Latency Bench::MeasureNotify() {
  Latency l;
  Listener ping(bench_conninfo_, "bench_ping");
  pg::Connection writer = Connect(bench_conninfo_);
  for (int i = 0; i < o_.warmup + o_.iterations; ++i) {
    std::string payload = std::to_string(i);
    ping.Drain();
    auto ts = Clock::now();
    Exec(writer, "NOTIFY bench_ping, '" + payload + "'");
    auto t0 = Clock::now();
    auto t1 = ping.Wait([&](std::string_view p) { return p == payload; }, t0 + std::chrono::seconds(5));
    if (!t1) {
      ++l.timeouts;
      continue;
    }
    if (i < o_.warmup) continue;
    l.fresh.Add(Ms(*t1 - t0));
    l.rtt.Add(Ms(*t1 - ts));
    l.commit.Add(Ms(t0 - ts));
  }
  return l;
}

Bench::Latency Bench::MeasureFresh(const std::string& writer_setup, const std::string& daemon_conninfo, bool small) {
  Latency l;
  auto daemon = StartDaemon(o_.daemon_log_level, daemon_conninfo);
  WaitLive(*daemon);
  long long offset = 0;
  pg::Connection writer = Connect(bench_conninfo_);
  if (!writer_setup.empty()) Script(writer, writer_setup);
  std::uniform_int_distribution<int> pick(1, small ? kSmallKeys : kBooks);
  for (int i = 0; i < o_.warmup + o_.iterations; ++i) {
    int id = pick(rng_);
    std::string key = small ? "book/" + std::to_string(id) : "title_list/" + std::to_string(1 + (id - 1) % kAuthors);
    Fresh().Drain();
    auto ts = Clock::now();
    Exec(writer, "UPDATE store_book SET title = $2 WHERE id = $1",
         {std::to_string(id), "book " + std::to_string(id) + " rev " + std::to_string(i)});
    auto t0 = Clock::now();
    auto t1 = Fresh().Wait([&](std::string_view k) { return k == key; }, t0 + std::chrono::seconds(5));
    if (!t1) {
      if (!daemon->running()) Die("kck listen died; see " + daemon_log_);
      ++l.timeouts;
      continue;
    }
    if (i == o_.warmup - 1) offset = FileSize(daemon_log_);
    if (i < o_.warmup) continue;
    l.fresh.Add(Ms(*t1 - t0));
    l.rtt.Add(Ms(*t1 - ts));
    l.commit.Add(Ms(t0 - ts));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  int rc = daemon->Stop();
  l.batch = ReadBatchLines(daemon_log_, offset).each_ms;
  if (rc != 0) Die("kck listen exited with " + std::to_string(rc) + "; see " + daemon_log_);
  CheckNoneStale(small ? kBookStale : kTitleListStale, "after the latency run");
  return l;
}

void Bench::PrintLatency(const char* name, Samples& s, Latency& l, Samples* base) {
  std::printf("  %-46s %8.3f %8.3f %8.3f %8.3f   %8.3f", name, s.Pct(50), s.Pct(90), s.Pct(99), s.Max(),
              l.commit.Pct(50));
  if (l.batch.size()) std::printf(" %8.3f", l.batch.Pct(50));
  if (l.timeouts) std::printf("   (%d timeouts)", l.timeouts);
  std::printf("\n");
  if (base) {
    std::printf("  %-46s %7.1fx %8s %7.1fx\n", "    ratio vs NOTIFY round trip", s.Pct(50) / base->Pct(50), "",
                s.Pct(99) / base->Pct(99));
  }
  std::fflush(stdout);
}

void Bench::Section1() {
  std::printf("1. Commit -> fresh latency: single-row UPDATE of store_book.title, t0 = UPDATE acknowledged\n");
  std::printf("   (autocommit), t1 = notification from kck.cache received; %d iterations after %d warm-up.\n",
              o_.iterations, o_.warmup);
  std::printf("   Times in ms. commit = p50 of the writer's own UPDATE round trip; batch = p50 of the daemon's\n");
  std::printf("   batch time (claim .. COMMIT, from its debug log). Ratios are vs the NOTIFY round trip.\n\n");
  std::printf("  %-46s %8s %8s %8s %8s   %8s %8s\n", "", "p50", "p90", "p99", "max", "commit", "batch");
  Latency base = MeasureNotify();
  PrintLatency("baseline: bare NOTIFY, t0 = ack (as kck)", base.fresh, base, nullptr);
  PrintLatency("baseline: bare NOTIFY, t0 = send (round trip)", base.rtt, base, nullptr);
  Latency on = MeasureFresh("", "");
  PrintLatency("kck commit->fresh (writer sync commit on)", on.fresh, on, &base.rtt);
  Latency off = MeasureFresh("SET synchronous_commit = off", "");
  PrintLatency("kck commit->fresh (writer sync commit off)", off.fresh, off, &base.rtt);
  // Not a target: shows how much of the latency is the daemon's own WAL
  // flush (its batch commit), via libpq options in the daemon's conninfo.
  Latency dmn = MeasureFresh("", conninfo_ + " options='-c synchronous_commit=off'");
  PrintLatency("(info) same, daemon session sync commit off", dmn.fresh, dmn, &base.rtt);
  // Not a target: the same pipeline for a tiny product (one book's title
  // and price), to separate the daemon's fixed cost from title_list's
  // compute and write (a 500-element, ~12 KB array).
  SetCapture(true, config_b_);
  std::vector<std::string> keys;
  for (int i = 1; i <= kSmallKeys; ++i) keys.push_back("book/" + std::to_string(i));
  Prime(keys, true);
  Latency small = MeasureFresh("", "", true);
  Exec(*admin_, "DELETE FROM kck.cache WHERE primer = 'book'");
  SetCapture(true, config_a_);
  PrintLatency("(info) small product book/<id>, writer sync on", small.fresh, small, &base.rtt);
  std::printf("  targets: p50 <= 1 ms, p99 <= 5 ms (writer sync commit on and off)\n\n");
  std::fflush(stdout);

  auto add = [&](const std::string& what, double v, double target) {
    verdicts_.push_back({what, Fmt("%.3f ms", v), "<= " + Fmt("%g", target) + " ms", v <= target});
  };
  add("commit->fresh p50 (writer sync on)", on.fresh.Pct(50), 1);
  add("commit->fresh p99 (writer sync on)", on.fresh.Pct(99), 5);
  add("commit->fresh p50 (writer sync off)", off.fresh.Pct(50), 1);
  add("commit->fresh p99 (writer sync off)", off.fresh.Pct(99), 5);
  verdicts_.push_back({"  commit->fresh p50 (daemon sync off)", Fmt("%.3f ms", dmn.fresh.Pct(50)), "", true, true});
  verdicts_.push_back({"  commit->fresh p50 (small product book/<id>)", Fmt("%.3f ms", small.fresh.Pct(50)), "", true, true});
  verdicts_.push_back({"  commit->fresh p99 (small product book/<id>)", Fmt("%.3f ms", small.fresh.Pct(99)), "", true, true});
}

// ---------------------------------------------------------------------------
// 2. Source-write throughput with pgbench.

PgbenchResult Bench::Pgbench(int secs, bool sync_off) {
  std::string script = work_ + "/update.sql";
  {
    std::ofstream f(script);
    f << "\\set id random(1, " << kBooks << ")\n"
      << "UPDATE store_book SET price = price + 1 WHERE id = :id;\n";
  }
  std::string cmd = std::string(sync_off ? "PGOPTIONS='-c synchronous_commit=off' " : "") + Quote(o_.pgbin + "/pgbench") +
                    " -n -c 1 -T " + std::to_string(secs) + " -f " + Quote(script) + " -h " + Quote(cluster_->dir()) +
                    " -p " + std::to_string(cluster_->port()) + " -U postgres " + kDb;
  return ParsePgbench(RunCommand(cmd), cmd);
}

void Bench::Section2() {
  std::printf("2. Source-write throughput: pgbench -c 1 -T %d, UPDATE store_book SET price = price + 1 WHERE id = :id\n",
              o_.pgbench_secs);
  std::printf("   (random id). Runs alternate without/with the capture trigger (kck uninstall / kck install);\n");
  std::printf("   daemon stopped (the outbox fills), TRUNCATE kck.changes + VACUUM + CHECKPOINT before each run.\n\n");
  std::printf("  %-24s", "settings");
  for (int i = 0; i < 2 * o_.pgbench_rounds; ++i) std::printf(" %7s%-2d", i % 2 ? "on #" : "off #", i / 2 + 1);
  std::printf(" %9s %9s\n", "mean off", "mean on");
  struct Mode {
    const char* name;
    bool sync_off;
    double target;
  };
  for (const Mode& m : {Mode{"default", false, 5}, Mode{"synchronous_commit=off", true, 25}}) {
    fresh_.reset();
    std::vector<double> tps, probes;
    long long captured = 0, txns = 0;
    for (int i = 0; i < 2 * o_.pgbench_rounds; ++i) {
      bool trig = i % 2 == 1;
      SetCapture(trig, config_a_);
      Prepare("store_book");
      probes.push_back(CommitProbe());
      PgbenchResult r = Pgbench(o_.pgbench_secs, m.sync_off);
      tps.push_back(r.tps);
      if (trig) {
        captured += QueryInt(*admin_, "SELECT count(*) FROM kck.changes");
        txns += r.transactions;
      }
    }
    if (captured != txns) {
      Die("the trigger recorded " + std::to_string(captured) + " changes for " + std::to_string(txns) + " updates");
    }
    double off = 0, on = 0;
    for (size_t i = 0; i < tps.size(); ++i) (i % 2 ? on : off) += tps[i] / o_.pgbench_rounds;
    double overhead = (off - on) / off * 100;
    std::printf("  %-24s", m.name);
    for (double t : tps) std::printf(" %9.0f", t);
    std::printf(" %9.0f %9.0f   overhead %5.1f %%  (target <= %g %%)\n", off, on, overhead, m.target);
    std::printf("  %-24s fsync probe before each run: %s\n", "", ProbeList(probes).c_str());

    // The same load with the daemon draining concurrently.
    Exec(*admin_, "TRUNCATE kck.changes");
    auto daemon = StartDaemon("debug");
    WaitLive(*daemon);
    fresh_.reset();
    Exec(*admin_, "VACUUM store_book");
    Exec(*admin_, "CHECKPOINT");
    double probe = CommitProbe();
    long long offset = FileSize(daemon_log_);
    PgbenchResult r = Pgbench(o_.pgbench_secs, m.sync_off);
    long long left = QueryInt(*admin_, "SELECT count(*) FROM kck.changes");
    auto t0 = Clock::now();
    while (QueryInt(*admin_, "SELECT count(*) FROM kck.changes") > 0) {
      if (MsSince(t0) > 60000) Die("the outbox did not drain within 60 s after pgbench");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    double drain_ms = MsSince(t0);
    daemon->Stop();
    BatchTotals b = ReadBatchLines(daemon_log_, offset);
    double dover = (off - r.tps) / off * 100;
    std::printf("  %-24s %9.0f TPS with the daemon draining: overhead %5.1f %% vs mean off; outbox at end %lld,\n",
                "", r.tps, dover, left);
    std::printf("  %-24s %9s drained %.0f ms later; %lld batches, %.1f changes/batch, %.2f ms/batch; probe %.2f ms\n",
                "", "", drain_ms, b.batches, b.batches ? double(b.changes) / b.batches : 0.0,
                b.batches ? b.ms / b.batches : 0.0, probe);
    CheckNoneStale(kTitleListStale, "after pgbench with the daemon");
    verdicts_.push_back({std::string("trigger overhead, pgbench TPS (") + m.name + ")", Fmt("%.1f %%", overhead),
                         "<= " + Fmt("%g", m.target) + " %", overhead <= m.target});
    verdicts_.push_back({std::string("  same, daemon draining concurrently (") + m.name + ")", Fmt("%.1f %%", dover), "",
                         true, true});
    std::fflush(stdout);
  }
  SetCapture(true, config_a_);
  std::printf("\n");
}

// ---------------------------------------------------------------------------
// 3. 100k-row bulk UPDATE.

void Bench::Section3() {
  std::printf("3. Bulk: UPDATE big SET price = price + 1 (all %d rows, one statement), best of 3,\n", kBigRows);
  std::printf("   alternating without/with the capture trigger, VACUUM + CHECKPOINT before each.\n\n");
  double best[2] = {1e18, 1e18};
  std::vector<double> all[2], probes;
  for (int i = 0; i < 6; ++i) {
    bool trig = i % 2 == 1;
    SetCapture(trig, config_a_);
    Prepare("big");
    probes.push_back(CommitProbe());
    double ms = TimeExec(*admin_, "UPDATE big SET price = price + 1");
    all[trig].push_back(ms);
    best[trig] = std::min(best[trig], ms);
    if (trig && QueryInt(*admin_, "SELECT count(*) FROM kck.changes") != 1) {
      Die("the bulk UPDATE did not record exactly one change");
    }
  }
  double ratio = best[1] / best[0];
  auto runs = [](const std::vector<double>& v) {
    std::string s;
    for (double x : v) s += (s.empty() ? "" : ", ") + Fmt("%.0f", x);
    return s;
  };
  std::printf("  %-34s %9.1f ms   (runs: %s)\n", "without trigger, best", best[0], runs(all[0]).c_str());
  std::printf("  %-34s %9.1f ms   (runs: %s)\n", "with capture trigger, best", best[1], runs(all[1]).c_str());
  std::printf("  %-34s %9.2fx      (target <= 1.5x)\n", "ratio", ratio);
  std::printf("  %-34s %s\n", "fsync probe before each run", ProbeList(probes).c_str());
  verdicts_.push_back({"bulk 100k-row UPDATE, with/without trigger", Fmt("%.2fx", ratio), "<= 1.5x", ratio <= 1.5});

  // The daemon turns the one bulk change into the 20 big_sum products.
  Prepare("big");
  auto daemon = StartDaemon("debug");
  WaitLive(*daemon);
  long long offset = FileSize(daemon_log_);
  Fresh().Drain();
  std::set<std::string> waiting;
  for (int g = 1; g <= kBigGroups; ++g) waiting.insert("big_sum/" + std::to_string(g));
  double update_ms = TimeExec(*admin_, "UPDATE big SET price = price + 1");
  auto t0 = Clock::now();
  std::optional<Clock::time_point> t1;
  while (!waiting.empty()) {
    t1 = Fresh().Wait([&](std::string_view k) { return waiting.erase(std::string(k)) > 0 && waiting.empty(); },
                      t0 + std::chrono::seconds(60));
    if (!t1) Die("the bulk change was not applied within 60 s");
  }
  double fresh_ms = Ms(*t1 - t0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the batch's log line land
  daemon->Stop();
  BatchTotals b = ReadBatchLines(daemon_log_, offset);
  CheckNoneStale(kBigSumStale, "after the bulk drain");
  std::printf("  %-34s %9.1f ms   (UPDATE itself %.0f ms; daemon: %lld batch(es), %lld products, %.1f ms)\n\n",
              "commit -> all 20 big_sum fresh", fresh_ms, update_ms, b.batches, b.keys, b.ms);
  verdicts_.push_back({"  bulk change: commit -> 20 products fresh", Fmt("%.1f ms", fresh_ms), "", true, true});
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------
// 4. Sustained drain.

void Bench::Section4() {
  std::printf("4. Sustained drain: the daemon stopped, N single-row UPDATE statements (a plpgsql loop, one\n");
  std::printf("   statement = one change), then `kck listen` starts; time from spawn until kck.changes is empty.\n\n");
  FreshTrigger(false);  // its pg_notify per written row is not part of kck
  auto drain = [&](const char* name, int n, const std::string& loop, const char* stale_sql,
                   const std::vector<std::string>& extra = {}) {
    Prepare("store_book");
    double load_ms = TimeExec(*admin_, loop);
    long long queued = QueryInt(*admin_, "SELECT count(*) FROM kck.changes");
    if (queued != n) Die(std::string(name) + ": expected " + std::to_string(n) + " changes, found " + std::to_string(queued));
    long long offset = FileSize(daemon_log_);
    auto t0 = Clock::now();
    auto daemon = StartDaemon("debug", "", extra);
    while (QueryInt(*admin_, "SELECT count(*) FROM (SELECT 1 FROM kck.changes ORDER BY id LIMIT 1) s") > 0) {
      if (!daemon->running()) Die("kck listen exited; see " + daemon_log_);
      if (MsSince(t0) > 120000) Die(std::string(name) + ": not drained within 120 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    double ms = MsSince(t0);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    daemon->Stop();
    BatchTotals b = ReadBatchLines(daemon_log_, offset);
    CheckNoneStale(stale_sql, name);
    double rate = n / (ms / 1000);
    std::printf("  %-38s %7d changes  %8.0f ms  %9.0f changes/s\n", name, n, ms, rate);
    std::printf("  %-38s daemon: %lld batches, %lld products written, %.0f ms in batches (%.0f changes/s),\n", "",
                b.batches, b.keys, b.ms, b.ms > 0 ? b.changes / (b.ms / 1000) : 0.0);
    std::printf("  %-38s %.3f ms per product written; %.2f ms/batch, max %.1f ms; queued in %.0f ms (%.0f stmt/s)\n",
                "", b.keys ? b.ms / b.keys : 0.0, b.batches ? b.ms / b.batches : 0.0, b.max_ms, load_ms,
                n / (load_ms / 1000));
    std::fflush(stdout);
    return rate;
  };

  SetCapture(true, config_a_);
  std::string loop_a = "DO $$ BEGIN FOR i IN 1.." + std::to_string(o_.drain_changes) +
                       " LOOP UPDATE store_book SET price = price + 1 WHERE id = 1 + (i - 1) % " +
                       std::to_string(kBooks) + "; END LOOP; END $$";
  double rate_a = drain("20 title_list keys", o_.drain_changes, loop_a, kTitleListStale);
  verdicts_.push_back({"drain, changes -> 20 title_list keys", Fmt("%.0f /s", rate_a), ">= 20000 /s", rate_a >= 20000});
  // Not a target: the same with a larger claim, so more changes coalesce
  // into each recompute of the 20 products.
  double rate_a10 = drain("same, kck listen --batch 10000", o_.drain_changes, loop_a, kTitleListStale, {"--batch", "10000"});
  verdicts_.push_back({"  same, kck listen --batch 10000", Fmt("%.0f /s", rate_a10), "", true, true});

  // Each change maps to a distinct stored product: book/<id>.
  SetCapture(true, config_b_);
  std::vector<std::string> keys;
  for (int i = 1; i <= o_.book_keys; ++i) keys.push_back("book/" + std::to_string(i));
  auto tp = Clock::now();
  Prime(keys, true);
  double prime_ms = MsSince(tp);
  std::string loop_b = "DO $$ BEGIN FOR i IN 1.." + std::to_string(o_.book_keys) +
                       " LOOP UPDATE store_book SET price = price + 1 WHERE id = i; END LOOP; END $$";
  std::string name = "one book/<id> key per change";
  double rate_b = drain(name.c_str(), o_.book_keys, loop_b, kBookStale);
  std::printf("  %-38s (primed %d book keys in %.0f ms through kck::Products)\n\n", "", o_.book_keys, prime_ms);
  verdicts_.push_back({"  drain, one distinct book/<id> key per change", Fmt("%.0f /s", rate_b), "", true, true});
  SetCapture(true, config_a_);
  FreshTrigger(true);
}

void Bench::PrintSummary() {
  std::printf("Summary\n");
  std::printf("  %-60s %12s %12s  %s\n", "metric", "measured", "target", "verdict");
  int miss = 0;
  for (const auto& v : verdicts_) {
    const char* verdict = v.info ? "(info)" : (v.pass ? "ok" : "MISS");
    if (!v.info && !v.pass) ++miss;
    std::printf("  %-60s %12s %12s  %s\n", v.what.c_str(), v.measured.c_str(), v.target.c_str(), verdict);
  }
  std::printf("  %d target(s) missed\n", miss);
}

std::string DefaultKck() {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) return "kck";
  std::filesystem::path p(std::string(self, static_cast<size_t>(n)));
  return (p.parent_path().parent_path() / "kck").string();
}

int Usage(const char* argv0, int rc) {
  std::fprintf(rc ? stderr : stdout,
               "usage: %s [--quick] [--kck PATH] [--pgbin DIR] [--only 1,2,3,4] [--iterations N]\n"
               "          [--pgbench-rounds N] [--pgbench-seconds S]\n"
               "          [--daemon-log-level LEVEL] [--pg-setting NAME=VALUE]... [--keep]\n"
               "  --quick       fewer iterations, shorter pgbench runs, smaller drains (~1 minute)\n"
               "  --kck PATH    the kck binary (default: ../kck next to this binary's directory)\n"
               "  --pgbin DIR   PostgreSQL binaries (default: pg_config --bindir)\n"
               "  --only LIST   run only these sections\n"
               "  --pgbench-rounds N    off/on pairs of pgbench runs per setting (default 2)\n"
               "  --pgbench-seconds S   length of each pgbench run (default 8, 3 with --quick)\n"
               "  --daemon-log-level LEVEL   kck listen's log level in section 1 (default debug)\n"
               "  --pg-setting NAME=VALUE    extra postgresql.conf setting, for diagnosis (e.g.\n"
               "                log_min_duration_statement=0; with KCK_KEEP_CLUSTER=1 the log is kept)\n"
               "  --keep        keep the work directory (daemon log) at the end\n",
               argv0);
  return rc;
}

}  // namespace
}  // namespace kck::bench

int main(int argc, char** argv) {
  using namespace kck::bench;
  Options o;
  bool iterations_set = false, secs_set = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) std::exit(Usage(argv[0], 2));
      return argv[++i];
    };
    if (a == "--quick") {
      o.quick = true;
    } else if (a == "--kck") {
      o.kck = value();
    } else if (a == "--pgbin") {
      o.pgbin = value();
    } else if (a == "--daemon-log-level") {
      o.daemon_log_level = value();
    } else if (a == "--pg-setting") {
      o.pg_settings.push_back(value());
    } else if (a == "--keep") {
      o.keep = true;
    } else if (a == "--iterations") {
      o.iterations = std::atoi(value().c_str());
      iterations_set = true;
    } else if (a == "--pgbench-rounds") {
      o.pgbench_rounds = std::max(1, std::atoi(value().c_str()));
    } else if (a == "--pgbench-seconds") {
      o.pgbench_secs = std::max(1, std::atoi(value().c_str()));
      secs_set = true;
    } else if (a == "--only") {
      o.only.clear();
      std::string list = value();
      for (char c : list) {
        if (c >= '1' && c <= '4') o.only.insert(c - '0');
      }
    } else if (a == "-h" || a == "--help") {
      return Usage(argv[0], 0);
    } else {
      std::fprintf(stderr, "kck_bench: unknown argument %s\n", a.c_str());
      return Usage(argv[0], 2);
    }
  }
  if (o.quick) {
    if (!iterations_set) o.iterations = 500;
    o.warmup = 50;
    if (!secs_set) o.pgbench_secs = 3;
    o.drain_changes = 20000;
    o.book_keys = 2000;
  }
  if (o.iterations < 1) return Usage(argv[0], 2);
  if (o.kck.empty()) o.kck = DefaultKck();
  if (access(o.kck.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "kck_bench: no kck binary at %s (build the kck target or pass --kck PATH)\n", o.kck.c_str());
    return 2;
  }
  if (o.pgbin.empty()) o.pgbin = Capture("pg_config --bindir");
  if (o.pgbin.empty() || access((o.pgbin + "/pgbench").c_str(), X_OK) != 0) o.pgbin = "/usr/lib/postgresql/15/bin";
  if (access((o.pgbin + "/pgbench").c_str(), X_OK) != 0) {
    std::fprintf(stderr, "kck_bench: no pgbench in %s (pass --pgbin DIR)\n", o.pgbin.c_str());
    return 2;
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return Bench(std::move(o)).Run();
}
