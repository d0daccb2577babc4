#!/usr/bin/python3
"""kck against the usual alternatives on one bookstore workload (issue 10), on one throwaway cluster.

    /usr/bin/python3 bench/compare/compare.py [--kck PATH] [--seconds S] [--rate N] [--rounds R]
                                              [--quick] [--out DIR] [--read-rate N] [--only abcde]

Configurations, each serving title_list/<author> and author_stats/<author> (the compute SQL of
examples/bookstore/primers.json everywhere):
  (a) kck, SQL primers that recompute (the example's primers without "augment"), `kck listen`;
  (b) kck with augments (bookstore/products.py: title_list for every store_book change,
      author_stats for a new book), `kck listen`;
  (c) Django post_save/post_delete handlers that recompute the author's two products into Django's
      DatabaseCache after the commit;
  (d) post_save/post_delete handlers that run REFRESH MATERIALIZED VIEW CONCURRENTLY on two
      materialized views after the commit;
  (e) no cache: every read computes.
Every change goes through the Django ORM (save(), delete()), in every configuration; reads go through
each configuration's Django read path (kck's Cache.get, cache.get, a query of the view, the compute).

A run of one configuration: three processes (workload.py) start: the writer (a stream of book and
review inserts, updates and deletes at --rate a second over 8 threads), the reader (--read-rate reads a
second) and the prober (one change every 50 ms to authors nobody else writes, polled until a read
shows it: staleness). They run --seconds; then the daemon drains, CPU is sampled; then the writer
alone writes as fast as it can for a few seconds (max write TPS); then every product is compared
with a fresh compute. For kck, last, the writer runs as fast as it can with the daemon stopped,
with and without kck's capture triggers (what capture costs a writer). Rounds run every
configuration once, in an order rotated by round; figures are medians over rounds with min-max,
ratios are paired within a round. See README.md beside this file.
"""
import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE), str(ROOT / "bench")]

import psycopg2  # noqa: E402

from bookstore import products  # noqa: E402
from report import COSTS, METRICS, plot, print_report, summarize  # noqa: E402
from write_path import BenchError, Cluster, Daemon, median, pg_bindir, rotated, run  # noqa: E402

AUTHORS, BOOKS, REVIEWS = 200, 50, 4     # authors, books per author, reviews per book
PROBE_AUTHORS = "1-4"                    # written by the prober only
STREAM_AUTHORS = "5-%d" % AUTHORS
WRITER_THREADS = 8
WORKLOAD = HERE / "workload.py"


class Config:
    def __init__(self, tag, label, kck=None, handlers="none", read="compute"):
        self.tag, self.label, self.kck, self.handlers, self.read = tag, label, kck, handlers, read


CONFIGS = [
    Config("a", "(a) kck, SQL primers", kck="recompute", read="kck"),
    Config("b", "(b) kck, augment", kck="augment", read="kck"),
    Config("c", "(c) signals -> DatabaseCache", handlers="cache", read="cache"),
    Config("d", "(d) REFRESH MATVIEW CONCURRENTLY", handlers="matview", read="matview"),
    Config("e", "(e) no cache", read="compute"),
]

DATA_SQL = """
INSERT INTO store_author (name) SELECT 'author ' || i FROM generate_series(4, %(authors)d) i;
INSERT INTO store_book (author_id, title, published)
  SELECT a.id, 'book ' || a.id || '-' || j, date '2000-01-01' + j
  FROM store_author a, generate_series(1, %(books)d) j
  WHERE j > (SELECT count(*) FROM store_book b WHERE b.author_id = a.id);
INSERT INTO store_review (book_id, rating, body)
  SELECT b.id, 1 + (b.id * 7 + j) %% 5, 'review ' || j
  FROM store_book b, generate_series(1, %(reviews)d) j
  WHERE j > (SELECT count(*) FROM store_review r WHERE r.book_id = b.id);
CREATE TABLE bench_probe (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO bench_probe VALUES (1, 0);
""" % {"authors": AUTHORS, "books": BOOKS, "reviews": REVIEWS}

# (d)'s views: what a Django user would write for the two products; checked against the compute.
MATVIEW_SQL = """
CREATE MATERIALIZED VIEW mv_title_list AS
  SELECT a.id AS author_id, coalesce(jsonb_agg(jsonb_build_object('id', b.id, 'title', b.title) ORDER BY b.id)
                                     FILTER (WHERE b.id IS NOT NULL), '[]') AS value
  FROM store_author a LEFT JOIN store_book b ON b.author_id = a.id GROUP BY a.id;
CREATE UNIQUE INDEX ON mv_title_list (author_id);
CREATE MATERIALIZED VIEW mv_author_stats AS
  SELECT a.id AS author_id, jsonb_build_object('books', count(DISTINCT b.id), 'reviews', count(r.id),
                                               'avg_rating', round(avg(r.rating), 2)) AS value
  FROM store_author a LEFT JOIN store_book b ON b.author_id = a.id LEFT JOIN store_review r ON r.book_id = b.id
  GROUP BY a.id;
CREATE UNIQUE INDEX ON mv_author_stats (author_id);
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kck", default=str(ROOT / "build" / "kck"))
    p.add_argument("--seconds", type=float, help="length of each fixed-rate run (default 20, --quick 8)")
    p.add_argument("--rate", type=int, default=1000, help="changes a second the writer aims at")
    p.add_argument("--read-rate", type=int, default=200, help="reads a second")
    p.add_argument("--rounds", type=int, help="default 3, --quick 1")
    p.add_argument("--max-seconds", type=float, help="length of each as-fast-as-it-can run (default 4, --quick 2)")
    p.add_argument("--warmup", type=float, help="seconds of the same load before each fixed-rate run, not measured "
                   "(default 2, --quick 1; its first probe is reported as the cold start)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(HERE / "out"))
    p.add_argument("--only", default="abcde", help="configurations to run, e.g. abe")
    p.add_argument("--daemon-log-level", default="info", help="kck listen's --log-level (debug: one line a batch)")
    p.add_argument("--keep", action="store_true", help="keep the cluster's directory (daemon and server logs)")
    a = p.parse_args()
    a.seconds = a.seconds or (8 if a.quick else 20)
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.max_seconds = a.max_seconds or (2 if a.quick else 4)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 2)
    a.kck = os.path.abspath(a.kck)
    return a


# --------------------------------------------------------------------------- CPU

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_times(pid):
    """(own, reaped children) CPU seconds of a process, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def machine_busy():
    """CPU seconds all CPUs have been busy (not idle, not waiting for I/O), from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def children(ppid):
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == ppid:
                        out.append(int(entry))
            except OSError:
                pass
    return out


def server_cpu(postmaster, exclude):
    """CPU seconds the cluster has used: the postmaster, its exited children (reaped, so counted in
    its children's time) and its live children, except the backends in `exclude`."""
    own, reaped = proc_times(postmaster)
    live = 0.0
    for pid in children(postmaster):
        if pid not in exclude:
            try:
                live += proc_times(pid)[0]
            except OSError:
                pass
    return own + reaped + live


# --------------------------------------------------------------------------- roles

class Role:
    """A workload.py process: a JSON line when ready, then one JSON answer per command."""

    def __init__(self, bench, role, cfg, authors, seed):
        self.proc = subprocess.Popen(bench.workload_argv(role, cfg, authors, seed), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, universal_newlines=True, start_new_session=True)
        self.name = role
        self.info = None

    def wait_ready(self):
        self.info = self.answer()
        return self

    def send(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def answer(self):
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(60)
            raise BenchError("workload.py %s exited with %s" % (self.name, self.proc.returncode))
        return json.loads(line)

    def call(self, **cmd):
        self.send(**cmd)
        return self.answer()

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.send(cmd="exit")
                self.proc.wait(30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, a):
        self.a = a
        self.cluster = Cluster(pg_bindir())
        self.dbname = dict(kv.split("=", 1) for kv in self.cluster.conninfo.split())["dbname"]
        self.db = None
        self.daemon = None
        self.roles = []
        self.work = None
        self.kck_installed = None  # the kck config whose triggers are installed: "recompute", "augment" or None

    def q1(self, sql, args=None):
        with self.db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()[0] if cur.description else None

    def q_all(self, sql, args=None):
        with self.db.cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def kck(self, *argv):
        return run([self.a.kck, "--db", self.cluster.conninfo] + list(argv))

    # -- set-up ------------------------------------------------------------------

    def setup(self):
        if not os.access(self.a.kck, os.X_OK):
            raise BenchError("no kck binary at %s (pass --kck PATH)" % self.a.kck)
        self.cluster.start()
        self.work = self.cluster.dir
        self.db = psycopg2.connect(self.cluster.conninfo)
        self.db.autocommit = True
        # Every page is in shared_buffers: with the default random_page_cost (4) the planner flips
        # author_stats' join between an index nested loop (~1 ms) and a hash join over all of
        # store_review (~5 ms) from one ANALYZE to the next, for every configuration alike.
        self.q1("ALTER SYSTEM SET random_page_cost = 1.1")
        self.q1("SELECT pg_reload_conf()")
        self.q1((ROOT / "examples" / "bookstore" / "schema.sql").read_text())
        self.q1(DATA_SQL)
        self.q1(MATVIEW_SQL)
        self.q1("VACUUM ANALYZE")
        for augment in (False, True):
            self.config_path(augment).write_text(json.dumps(products.kck_config(augment), indent=1))
        run(self.workload_argv("setup", CONFIGS[2], "1-1", 0))  # createcachetable
        self.kck("install", "--config", self.config_path(False))
        self.kck_installed = "recompute"

    def workload_argv(self, role, cfg, authors, seed):
        return [sys.executable, str(WORKLOAD), role, "--host", str(self.cluster.dir), "--db", self.dbname,
                "--handlers", cfg.handlers, "--read", cfg.read, "--kck", self.a.kck, "--authors", authors,
                "--threads", str(WRITER_THREADS), "--seed", str(seed)]

    def config_path(self, augment):
        return self.work / ("primers-%s.json" % ("augment" if augment else "recompute"))

    def header(self):
        setting = lambda n: self.q1("SELECT current_setting(%s)", [n])  # noqa: E731
        env = {
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": "%s %s, %d CPUs" % (platform.system(), platform.release(), os.cpu_count()),
            "load": "%.2f %.2f %.2f" % os.getloadavg(),
            "postgres": "%s, fsync=%s synchronous_commit=%s shared_buffers=%s random_page_cost=%s" % (
                setting("server_version"), setting("fsync"), setting("synchronous_commit"),
                setting("shared_buffers"), setting("random_page_cost")),
            "kck": "%s (file dated %s)" % (self.a.kck, datetime.datetime.fromtimestamp(
                os.stat(self.a.kck).st_mtime).strftime("%Y-%m-%d %H:%M")),
            "checkout": git_commit() + " (the checkout's HEAD; the binary may be older)",
            "capture": "kck's capture of store_book and store_review in " + ", ".join(sorted(set(
                r[0] for r in self.q_all("SELECT coalesce(l.lanname, 'missing') FROM kck.triggers t "
                                         "LEFT JOIN pg_proc p ON p.oid = to_regprocedure(t.function || '()') "
                                         "LEFT JOIN pg_language l ON l.oid = p.prolang WHERE t.tbl <> 'kck.cache'")))) +
                       " (c: kck_capture.so in the server's $libdir, scripts/setup.sh installs it; "
                       "KCK_CAPTURE=plpgsql for the other)",
            "data": "%d authors x %d books x %d reviews (%d books, %d reviews)" % (
                AUTHORS, BOOKS, REVIEWS, self.q1("SELECT count(*) FROM store_book"),
                self.q1("SELECT count(*) FROM store_review")),
            "load_generator": "%d changes/s over %d writer threads (Django ORM), %d reads/s, probes every 50 ms; "
                              "%d rounds of %g s runs (after %g s of the same load, not measured) + %g s as fast as "
                              "possible" % (self.a.rate, WRITER_THREADS, self.a.read_rate, self.a.rounds,
                                            self.a.seconds, self.a.warmup, self.a.max_seconds),
        }
        env["compute"] = ", ".join("%s %.2f ms" % kv for kv in self.compute_costs().items()) + \
            " (p50 of one compute, client-timed, idle cluster: the floor of a recompute)"
        print("bench/compare: the bookstore workload through five ways of serving its products")
        for k, v in env.items():
            print("  %-15s %s" % (k, v))
        print(flush=True)
        return env

    def compute_costs(self, authors=50):
        """{product: p50 ms of its compute SQL over `authors` authors, timed by this client}."""
        out = {}
        with self.db.cursor() as cur:
            for name in products.NAMES:
                times = []
                for author in range(1, authors + 1):
                    t = time.perf_counter()
                    cur.execute(products.compute_sql(name), {"author_id": author})
                    cur.fetchone()
                    times.append((time.perf_counter() - t) * 1000)
                out[name] = median(times)
        return out

    # -- one configuration ---------------------------------------------------------

    def prepare(self, cfg):
        """The configuration's triggers, fresh products, VACUUM and CHECKPOINT."""
        self.set_triggers(cfg.kck)
        self.q1("VACUUM ANALYZE store_author, store_book, store_review")
        if cfg.kck:
            self.q1("DELETE FROM kck.cache")
            self.kck("refresh", *[products.key(n, x) for x in range(1, AUTHORS + 1) for n in products.NAMES])
        if cfg.handlers == "matview":
            self.q1("REFRESH MATERIALIZED VIEW mv_title_list; REFRESH MATERIALIZED VIEW mv_author_stats")
        self.q1("CHECKPOINT")

    def set_triggers(self, kck):
        """kck's capture triggers for config "recompute" or "augment" (kck install), or none (kck uninstall)."""
        if kck != self.kck_installed:
            if kck:
                self.kck("install", "--config", self.config_path(kck == "augment"))
            else:
                self.kck("uninstall")
            self.kck_installed = kck

    def fsync_probe(self):
        """p50 of 50 single-row autocommit UPDATEs of a trigger-less table: the disk's flush latency now."""
        times = []
        for _ in range(50):
            t = time.perf_counter()
            self.q1("UPDATE bench_probe SET n = n + 1 WHERE id = 1")
            times.append((time.perf_counter() - t) * 1000)
        return median(times)

    def start_daemon(self):
        self.daemon = Daemon(self.a.kck, self.cluster.conninfo, self.work / "kck-listen.log",
                             level=self.a.daemon_log_level)
        deadline = time.monotonic() + 20
        while not self.q1("SELECT count(*) FROM kck.listeners"):
            if not self.daemon.running() or time.monotonic() > deadline:
                raise BenchError("kck listen did not start; log:\n" + self.daemon.log_tail())
            time.sleep(0.05)

    def stop_daemon(self):
        d, self.daemon = self.daemon, None
        if d is not None and d.stop() != 0:
            raise BenchError("kck listen exited with %s; log:\n%s" % (d.proc.returncode, d.log_tail()))

    def wait_drained(self, timeout=120):
        """ms until kck.changes is empty (0 without a daemon)."""
        if self.daemon is None:
            return 0.0
        t0 = time.perf_counter()
        while self.q1("SELECT EXISTS (SELECT 1 FROM kck.changes)"):
            if not self.daemon.running():
                raise BenchError("kck listen exited; log:\n" + self.daemon.log_tail())
            if time.perf_counter() - t0 > timeout:
                raise BenchError("the outbox did not drain within %d s" % timeout)
            time.sleep(0.005)
        return (time.perf_counter() - t0) * 1000

    def start_roles(self, cfg, seed):
        self.roles = [Role(self, "writer", cfg, STREAM_AUTHORS, seed),
                      Role(self, "reader", cfg, STREAM_AUTHORS, seed),
                      Role(self, "prober", cfg, PROBE_AUTHORS, seed)]
        for r in self.roles:
            r.wait_ready()
        if cfg.handlers == "cache":
            self.roles[1].call(cmd="prime")
        return self.roles

    def stop_roles(self):
        for r in self.roles:
            r.stop()
        self.roles = []

    def cpu_sample(self, poll_pid):
        """CPU seconds so far: the server (without the prober's polling backend), the daemon, the
        writer process ("app"), the harness (reader and prober processes, this one) and the machine."""
        postmaster = int((self.cluster.data / "postmaster.pid").read_text().split()[0])
        writer, reader, prober = self.roles
        return {"server": server_cpu(postmaster, {poll_pid}),
                "daemon": sum(proc_times(self.daemon.pid)) if self.daemon else 0.0,
                "app": sum(proc_times(writer.proc.pid)),
                "harness": sum(proc_times(reader.proc.pid)) + sum(proc_times(prober.proc.pid))
                + sum(os.times()[:2]), "machine": machine_busy()}

    def one_run(self, cfg, rnd):
        t0 = time.monotonic()
        self.prepare(cfg)
        res = {"config": cfg.tag, "round": rnd, "fsync_ms": self.fsync_probe(), "compute_ms": self.compute_costs(20),
               "load": os.getloadavg()}
        if cfg.kck:
            self.start_daemon()
        writer, reader, _ = self.start_roles(cfg, seed=rnd + 1)
        res["warmup"] = self.warmup_phase()
        res.update(self.fixed_rate_phase())
        res["daemon_last_minute"] = self.daemon_minute() if cfg.kck else None
        res["max"] = writer.call(cmd="run", seconds=self.a.max_seconds, rate=0)
        self.wait_drained()
        res["check"] = reader.call(cmd="verify")
        if cfg.kck:
            res["capture"] = self.capture_phase(cfg, writer)  # leaves the products stale: prepare() refreshes them
        self.stop_roles()
        self.stop_daemon()
        res["run_s"] = time.monotonic() - t0
        return res

    def load(self, seconds):
        """Writer at --rate, reader and prober together for `seconds`: their answers."""
        writer, reader, prober = self.roles
        for role, rate in ((writer, self.a.rate), (reader, self.a.read_rate), (prober, 0)):
            role.send(cmd="run", seconds=seconds, rate=rate)
        return writer.answer(), reader.answer(), prober.answer()

    def warmup_phase(self):
        """The same load for --warmup seconds, right after the roles (and kck's daemon) started, not
        measured: its first probes are the cold start (a new daemon's first batches plan its
        statements; the writer's threads start together)."""
        if self.a.warmup <= 0:
            return None
        _, _, p = self.load(self.a.warmup)
        return {"seconds": self.a.warmup, "first_probes_ms": [e["staleness_ms"] for e in p["each"][:3]],
                "staleness_ms": p["staleness_ms"]}

    def fixed_rate_phase(self):
        """Writer at --rate, reader and prober together for --seconds; then the daemon drains.
        CPU is counted from the start to the drained outbox."""
        _, _, prober = self.roles
        poll_pid = prober.info["poll_backend_pid"]
        before, t0 = self.cpu_sample(poll_pid), time.perf_counter()
        w, r, p = self.load(self.a.seconds)
        drain_ms = self.wait_drained()
        after, window_s = self.cpu_sample(poll_pid), time.perf_counter() - t0
        cpu = {k: after[k] - before[k] for k in after}
        cpu["other"] = cpu["machine"] - sum(v for k, v in cpu.items() if k != "machine")
        return {"writer": w, "reader": r, "prober": p, "drain_ms": drain_ms, "cpu_s": cpu, "elapsed_s": window_s,
                "changes": w["changes"] + p["probes"]}

    def capture_phase(self, cfg, writer):
        """kck: what capture costs the writer, as fast as it can with the daemon stopped: bursts with
        kck's triggers and without (kck uninstall), ABBA so that drift cancels; then the daemon drains."""
        self.stop_daemon()
        bursts = {"on": [], "off": []}
        for state in ("on", "off", "off", "on"):
            self.set_triggers(cfg.kck if state == "on" else None)
            bursts[state].append(writer.call(cmd="run", seconds=self.a.max_seconds / 2, rate=0))
        self.start_daemon()
        drain_ms = self.wait_drained()
        tps = {k: sum(b["changes"] for b in v) / sum(b["elapsed_s"] for b in v) for k, v in bursts.items()}
        return {"tps_on": tps["on"], "tps_off": tps["off"], "ratio": tps["on"] / tps["off"], "drain_ms": drain_ms,
                "bursts": bursts}

    def daemon_minute(self):
        """The daemon's own account of the run (kck status --json, daemons.last_minute)."""
        time.sleep(1.2)  # the daemon publishes its minute at most once a second
        return json.loads(self.kck("status", "--json"))["daemons"]["last_minute"]

    # -- rounds ----------------------------------------------------------------------

    def main(self):
        self.setup()
        env = self.header()
        configs = [c for c in CONFIGS if c.tag in self.a.only]
        runs = []
        for rnd in range(self.a.rounds):
            for cfg in rotated(configs, rnd):
                res = self.one_run(cfg, rnd)
                runs.append(res)
                print_run(cfg, res)
        result = {"env": env, "args": vars(self.a), "configs": {c.tag: c.label for c in configs}, "runs": runs}
        result["summary"] = summarize(result)
        out = Path(self.a.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(result, indent=1))
        print_report(result)
        plot(result, out / "compare.png")
        print("\nwrote %s and %s" % (out / "results.json", out / "compare.png"))

    def cleanup(self):
        self.stop_roles()
        if self.daemon is not None:
            self.daemon.stop()
        if self.db is not None:
            self.db.close()
        self.cluster.stop(keep=self.a.keep)
        if self.a.keep:
            print("kept %s" % self.cluster.dir)


def print_run(cfg, res):
    w, r, p = res["writer"], res["reader"], res["prober"]
    print("  round %d %-34s %6.0f changes/s (max %5.0f)  read p50 %6.2f ms  stale p50/p99 %7.2f/%8.2f ms  "
          "CPU %5.2f s  other CPU %3.0f%%  fsync %.2f ms%s" % (
              res["round"] + 1, cfg.label, w["tps"], res["max"]["tps"], r["latency_ms"]["p50"],
              p["staleness_ms"]["p50"], p["staleness_ms"]["p99"], sum(res["cpu_s"][k] for k in COSTS),
              100 * METRICS["other_cpu_share"][1](res), res["fsync_ms"],
              "" if not res["check"]["wrong"] else "  WRONG %d" % res["check"]["wrong"]), flush=True)


def git_commit():
    try:
        return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
    except OSError:
        return "?"


def main():
    a = parse_args()
    bench = Bench(a)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t0 = time.monotonic()
    try:
        bench.main()
    except BenchError as e:
        print("\ncompare: %s" % e, file=sys.stderr, flush=True)
        return 1
    finally:
        bench.cleanup()
        print("total %.0f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
