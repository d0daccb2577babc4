#!/usr/bin/python3
"""kck write-path benchmark (issue 8): what capture costs a writer, how soon a change is in
the cache, what a reader's miss costs during a drain, and how the outbox and the daemon hold
up under sustained load while a snapshot pins the xmin horizon.

    /usr/bin/python3 bench/write_path.py [--kck PATH] [--quick] [--json OUT]
                                         [--sustain-minutes N] [--only 1,2,3,4,5] [--keep]

Method. One throwaway cluster (initdb into a temp dir as the postgres user -- through runuser
when run as root --, unix socket only, PostgreSQL's default settings: fsync and
synchronous_commit on), one database. Table t(id bigserial primary key, grp int, v int,
note text): 200,000 rows in 1000 groups, an index on grp. One SQL primer, grp_sum/<grp> =
{"n": count(*), "sum": sum(v)} of a group, depending on t with params {grp: grp}. kck
capture is switched on and off with `kck install --config F` / `kck uninstall` (which keeps
kck's schema, primers and products; the products are refreshed with `kck refresh` before
every daemon run, since writes made without capture leave them stale).

1. Single-row UPDATE throughput: pgbench `UPDATE t SET v = v + 1 WHERE id = :id` (random
   id), 2 and 16 clients, server defaults and synchronous_commit=off (PGOPTIONS), under
   (a) no capture, (b) kck capture with no daemon (the outbox fills), (c) kck capture with
   `kck listen` draining and 100 products stored, (d) PgQ's C trigger pgq.logutriga into a
   queue (no consumer and no ticker: the queue fills, like (b)), and, when (b) captures in C
   (kck_capture.so beside the kck binary), (e) kck's generated plpgsql capture with no daemon
   (KCK_CAPTURE=plpgsql: what kck installs where the server cannot load the module). Each round runs every
   configuration once per (clients, setting) cell, in an order rotated by round and cell,
   each run after VACUUM t + CHECKPOINT. A configuration's figure is the median over rounds
   of (its TPS / the same round's no-capture TPS), with min-max: pairing within a round
   cancels most of this machine's drift (fsync latency that swings for minutes, builds).
2. Bulk: one UPDATE of 100,000 rows without / with kck capture, 8 pairs, the order alternating
   by pair; the median of the pairs' ratios, with min-max. Before each timed run the same UPDATE
   runs untimed with no trigger firing, then VACUUM t: each run moves the rows into the space the
   one before freed, so consecutive runs would find alternate layouts (bench/bulk_layout.py).
3. Commit -> fresh, idle system: the daemon running, a single-row UPDATE (autocommit) of a
   row whose group's product is stored; t0 = the UPDATE acknowledged, t1 = a LISTEN
   connection (select() on its socket, no polling) receives pg_notify from a bench-only
   AFTER UPDATE trigger on kck.cache, i.e. at the daemon's COMMIT. Interleaved with it, the
   bare NOTIFY round trip (t0 before sending, t1 received by the other connection) and the
   primer's compute (its SQL as a prepared statement timed by the client; EXPLAIN ANALYZE's
   execution time for a sample).
4. Cache.get misses during a drain: with the daemon stopped, single-row UPDATEs in a plpgsql
   loop queue changes for 300 stored products; the daemon starts and meanwhile this process
   reads keys that are not stored through Django's kck.Cache.get (Django configured in
   process; a Python primer with the same name and SQL is registered in this process only,
   so Cache.get takes its real miss path: kck.lock_key_session, REPEATABLE READ, compute,
   kck.store). Baseline: the same kind of misses with the daemon stopped and nothing queued.
5. Sustained load: pgbench -R (fixed rate), the daemon draining, for N minutes; during the
   middle half another connection holds a REPEATABLE READ snapshot, so VACUUM cannot remove
   kck.changes' dead rows. Samples the outbox's size, dead tuples and rows, a claim probe
   (the daemon's kind of SELECT ... FOR UPDATE SKIP LOCKED, rolled back) and the daemon's RSS.

After every daemon run the stored products are compared with a recompute. Exit status 1 when
a step fails, 0 otherwise (also when a target is missed).
"""

import argparse
import collections
import datetime
import json
import math
import os
import platform
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = "/usr/bin/python3"
# Debian's psycopg2 and Django live in /usr/bin/python3; a pyenv python3 first on PATH has neither.
if os.path.exists(PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(PYTHON) \
        and not os.environ.get("KCK_BENCH_REEXEC"):
    os.environ["KCK_BENCH_REEXEC"] = "1"
    os.execv(PYTHON, [PYTHON] + sys.argv)

import psycopg2  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AS_ROOT = os.geteuid() == 0
DB = "kck_write"
ROWS, GROUPS, STORED = 200000, 1000, 100
BULK_ROWS = 100000
BULK_PAIRS = 8
CELLS = [(2, False), (16, False), (2, True), (16, True)]  # (clients, synchronous_commit=off)
CONFIG_NAMES = {
    "a": "(a) no capture",
    "b": "(b) kck capture, no daemon",
    "c": "(c) kck capture + daemon draining",
    "d": "(d) PgQ pgq.logutriga",
    "e": "(e) kck plpgsql capture, no daemon",
}

TARGET_CAPTURE_2C = 0.95   # (b) / (a) at 2 clients
TARGET_DRAINING_16C = 0.60  # (c) / (a) at 16 clients
TARGET_BULK = 1.2
TARGET_FRESH_P50_OVER_COMPUTE_MS = 0.5
TARGET_FRESH_P99_MS = 5.0
TARGET_MISS_P99_MS = 10.0
TARGET_RSS_MB = 50.0

SCHEMA = """
CREATE TABLE t (id bigserial PRIMARY KEY, grp int NOT NULL, v int NOT NULL, note text);
INSERT INTO t (grp, v, note)
  SELECT 1 + (i - 1) %% %(groups)d, 0, 'row ' || i || ' ' || md5(i::text) FROM generate_series(1, %(rows)d) i;
CREATE INDEX t_grp_idx ON t (grp);
CREATE TABLE bench_probe (id int PRIMARY KEY, n int NOT NULL);
INSERT INTO bench_probe VALUES (1, 0);
ANALYZE;
""" % {"groups": GROUPS, "rows": ROWS}

# grp_sum's compute without its parameter; the config, the Python primer, the prepared
# statement and the staleness check append theirs.
COMPUTE_HEAD = "SELECT jsonb_build_object('n', count(*), 'sum', sum(v)) FROM t WHERE grp = "
CONFIG = {"primers": [{
    "name": "grp_sum",
    "parameters": [{"name": "grp", "type": "int"}],
    "compute": COMPUTE_HEAD + ":grp",
    "depends_on": [{"table": "t", "params": {"grp": "grp"}}],
}]}
STALE_SQL = ("SELECT count(*) FROM kck.cache c WHERE c.primer = 'grp_sum' AND (c.error IS NOT NULL OR "
             "c.value IS DISTINCT FROM (" + COMPUTE_HEAD + "split_part(c.key, '/', 2)::int))")

# Bench-only (section 3): tells a listener which product was just rewritten, at the daemon's COMMIT.
FRESH_TRIGGER = """
CREATE FUNCTION public.bench_fresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_fresh', NEW.key || ' ' || coalesce(NEW.compute_ms::text, ''));
  RETURN NULL;
END $$;
CREATE TRIGGER bench_fresh AFTER UPDATE ON kck.cache FOR EACH ROW EXECUTE FUNCTION public.bench_fresh();
"""
DROP_FRESH_TRIGGER = "DROP TRIGGER bench_fresh ON kck.cache; DROP FUNCTION public.bench_fresh()"

# The outbox is kck.changes and its parts (sql/005_outbox_parts.sql).
OUTBOX_RELS = ("SELECT 'kck.changes'::regclass AS rel UNION ALL "
               "SELECT inhrelid FROM pg_inherits WHERE inhparent = 'kck.changes'::regclass")
OUTBOX_SIZE = "SELECT sum(pg_total_relation_size(rel))::bigint FROM (%s) r" % OUTBOX_RELS
OUTBOX_DEAD = "SELECT coalesce(sum(n_dead_tup), 0)::bigint FROM pg_stat_user_tables WHERE relid IN (%s)" % OUTBOX_RELS
CLAIM_PROBE = "SELECT id FROM kck.changes ORDER BY id LIMIT 1000 FOR UPDATE SKIP LOCKED"


# --------------------------------------------------------------------------- helpers

class BenchError(Exception):
    """A step failed: main() prints it and exits 1."""


def die(msg):
    raise BenchError(msg)


def run(argv, timeout=300, env=None):
    """Runs a command; its stdout+stderr, or BenchError when it fails."""
    argv = [str(a) for a in argv]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout, env=env)
    if p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(argv), p.returncode, p.stdout[-3000:]))
    return p.stdout


def as_postgres(argv):
    return ["runuser", "-u", "postgres", "--"] + list(argv) if AS_ROOT else list(argv)


def ms_since(t0):
    return (time.perf_counter() - t0) * 1000.0


def median(values):
    v = sorted(values)
    n = len(v)
    if not n:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def rotated(items, k):
    k %= len(items)
    return items[k:] + items[:k]


def pg_bindir():
    for cmd in (["pg_config", "--bindir"], ["/usr/lib/postgresql/15/bin/pg_config", "--bindir"]):
        try:
            d = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.strip()
        except OSError:
            continue
        if d and os.access(os.path.join(d, "pgbench"), os.X_OK):
            return Path(d)
    return Path("/usr/lib/postgresql/15/bin")


def run_bench(bench):
    """Runs bench.main(); its cluster is stopped whatever happens. The exit code: 1 after a
    BenchError (printed), else 0."""
    try:
        bench.main()
    except BenchError as e:
        print("error: %s" % e, file=sys.stderr)
        return 1
    finally:
        bench.cluster.stop()
    return 0


class Stats:
    """Latency samples in ms; nearest-rank percentiles."""

    def __init__(self, values):
        self.v = sorted(values)

    def __len__(self):
        return len(self.v)

    def pct(self, p):
        if not self.v:
            return float("nan")
        return self.v[min(len(self.v) - 1, max(0, math.ceil(p / 100.0 * len(self.v)) - 1))]

    @property
    def max(self):
        return self.v[-1] if self.v else float("nan")

    def summary(self):
        return {"n": len(self.v), "p50": self.pct(50), "p90": self.pct(90), "p99": self.pct(99), "max": self.max}


class Cluster:
    """initdb + pg_ctl in a temp dir, unix socket in that dir only; stop() removes it unless kept."""

    def __init__(self, bindir):
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="kck-writebench-"))
        self.data = self.dir / "data"
        self.started = False
        self.conninfo = "host=%s port=5432 dbname=%s user=postgres" % (self.dir, DB)

    def start(self):
        if AS_ROOT:
            shutil.chown(str(self.dir), "postgres", "postgres")
        run(as_postgres([self.bin / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale=C", "--no-sync", "--no-instructions"]))
        with open(str(self.data / "postgresql.conf"), "a") as f:
            f.write("\n# bench/write_path.py: unix socket only; otherwise PostgreSQL's defaults\n"
                    "listen_addresses = ''\nport = 5432\nunix_socket_directories = '%s'\n"
                    "max_connections = 100\n" % self.dir)
        self.started = True
        run(as_postgres([self.bin / "pg_ctl", "-D", self.data, "-l", self.dir / "postgres.log", "-w", "-t", "60",
                         "start"]))
        run([self.bin / "createdb", "-h", self.dir, "-U", "postgres", DB])

    def stop(self, keep=False):
        if self.started:
            subprocess.run(as_postgres([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                        "-t", "60", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = False
        if not keep:
            shutil.rmtree(str(self.dir), ignore_errors=True)


class ClusterBench:
    """Base of the benches that compare kck binaries on a throwaway cluster (augment_daemons.py,
    daemon_cost.py): the cluster, an autocommit connection and what they ask it."""

    def __init__(self, a):
        self.a = a
        self.cluster = Cluster(pg_bindir())
        self.db = None

    def start(self):
        """Starts the cluster and opens self.db (autocommit)."""
        self.cluster.start()
        self.db = psycopg2.connect(self.cluster.conninfo)
        self.db.autocommit = True

    def q1(self, sql):
        """The first column of the first row, or None for a statement without rows."""
        with self.db.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()[0] if cur.description else None

    def wait_drained(self, timeout=120):
        """Waits for an empty outbox; BenchError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.q1("SELECT EXISTS (SELECT 1 FROM kck.changes)"):
            if time.monotonic() > deadline:
                raise BenchError("the outbox did not drain in %d s" % timeout)
            time.sleep(0.01)


class Daemon:
    """`kck listen` as a child process, its output appended to a log file."""

    def __init__(self, kck, conninfo, log_path, level="info", extra=()):
        self.log_path = Path(log_path)
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(str(log_path), "ab")
        argv = [kck, "--db", conninfo, "--log-level", level, "listen"] + list(extra)
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def rss_mb(self):
        """Resident set size from /proc/PID/status (VmRSS), in MB."""
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        return float("nan")

    def stop(self):
        """SIGTERM (finishes the batch in flight), SIGKILL after 15 s; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def log_tail(self):
        return self.log_path.read_text(errors="replace")[-3000:]

    def batches(self):
        """Times (ms) and change counts of the debug 'batch:' lines written by this daemon."""
        pattern = re.compile(r"batch: (\d+) changes, (\d+) products written .* in ([0-9.]+) ms")
        out = []
        with open(str(self.log_path), "rb") as f:
            f.seek(self.offset)
            for line in f.read().decode("utf-8", "replace").splitlines():
                m = pattern.search(line)
                if m:
                    out.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
        return out


class Listener:
    """A connection that LISTENs on one channel and waits in select() on its socket."""

    def __init__(self, conninfo, channel):
        self.conn = psycopg2.connect(conninfo)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("LISTEN " + channel)
        self.pending = collections.deque()

    def drain(self):
        self.conn.poll()
        del self.conn.notifies[:]
        self.pending.clear()

    def wait(self, match, timeout):
        """(perf_counter when read, payload) of the first notification whose payload matches, or None."""
        deadline = time.perf_counter() + timeout
        while True:
            while self.pending:
                t, payload = self.pending.popleft()
                if match(payload):
                    return t, payload
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.conn], [], [], left)
            now = time.perf_counter()
            if ready:
                self.conn.poll()
                self.pending.extend((now, n.payload) for n in self.conn.notifies)
                del self.conn.notifies[:]

    def close(self):
        self.conn.close()


def fresh_probe(kck, conninfo, log):
    """A debug-level daemon, a connection listening on bench_fresh (FRESH_TRIGGER: a product's row
    rewritten) and an autocommit writer, for benches that time commit -> fresh."""
    daemon = Daemon(kck, conninfo, log, level="debug")
    fresh = Listener(conninfo, "bench_fresh")
    writer = psycopg2.connect(conninfo)
    writer.autocommit = True
    return daemon, fresh, writer


def parse_pgbench(out):
    """tps, transactions and, under -R, latency and schedule lag from pgbench's summary."""
    def num(pattern):
        m = re.search(pattern, out)
        return float(m.group(1)) if m else None

    tps = num(r"tps = ([0-9.]+) \(without initial connection time\)")
    tx = num(r"number of transactions actually processed: (\d+)")
    if tps is None or tx is None:
        die("cannot read pgbench's output:\n" + out[-2000:])
    return {"tps": tps, "tx": int(tx), "latency_ms": num(r"latency average = ([0-9.]+) ms"),
            "lag_ms": num(r"rate limit schedule lag: avg ([0-9.]+)"),
            "lag_max_ms": num(r"rate limit schedule lag: avg [0-9.]+ \(max ([0-9.]+)\)")}


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.a = args
        self.t_start = time.perf_counter()
        self.bin = pg_bindir()
        self.cluster = Cluster(self.bin)
        self.db = None            # autocommit admin connection
        self.daemon = None
        self.log_path = None
        self.kck_on = None        # kck capture installed: None, "kck" (C where it loads) or "kck_plpgsql"
        self.pgq_on = False       # pgq trigger on t
        self.pgq_reason = None    # why column (d) is skipped, or None
        self.pgq_table = None     # the queue's event table (parent of its rotated tables)
        self.django_cache = None
        self.verdicts = []        # (what, measured, target, ok: True/False/None for info)
        self.stale_checks = []    # (where, stale count)
        self.results = {}
        self.rng = random.Random(8)

    # -- database helpers ------------------------------------------------------

    def connect(self):
        c = psycopg2.connect(self.cluster.conninfo + " application_name=kck_bench")
        c.autocommit = True
        return c

    def ex(self, sql, args=None, conn=None):
        with (conn or self.db).cursor() as cur:
            cur.execute(sql, args)

    def q1(self, sql, args=None, conn=None):
        with (conn or self.db).cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchone()[0]

    def q_all(self, sql, args=None, conn=None):
        with (conn or self.db).cursor() as cur:
            cur.execute(sql, args)
            return cur.fetchall()

    def timed_ms(self, sql, args=None, conn=None):
        t = time.perf_counter()
        self.ex(sql, args, conn)
        return ms_since(t)

    def fsync_probe(self):
        """p50 of 50 single-row autocommit UPDATEs of a trigger-less table: the disk's flush latency now."""
        return median([self.timed_ms("UPDATE bench_probe SET n = n + 1 WHERE id = 1") for _ in range(50)])

    def kck(self, *argv, env=None):
        return run([self.a.kck, "--db", self.cluster.conninfo] + list(argv), env=env)

    def capture_env(self, plpgsql):
        """kck install's environment: the C capture built beside the kck binary (the cluster's
        $libdir has one only where scripts/setup.sh installed it), or plpgsql."""
        env = dict(os.environ)
        module = Path(self.a.kck).resolve().parent / "kck_capture.so"
        if plpgsql:
            env["KCK_CAPTURE"] = "plpgsql"
        elif module.exists():
            env["KCK_CAPTURE_LIBRARY"] = str(module)
        return env

    def capture_language(self):
        return self.q1("SELECT l.lanname FROM kck.triggers t JOIN pg_proc p ON p.oid = to_regprocedure(t.function "
                       "|| '()') JOIN pg_language l ON l.oid = p.prolang WHERE t.tbl = 'public.t'")

    # -- set-up ----------------------------------------------------------------

    def setup(self):
        if not os.access(self.a.kck, os.X_OK):
            die("no kck binary at %s (build it: ninja -C build kck, or pass --kck PATH)" % self.a.kck)
        if not os.access(str(self.bin / "pgbench"), os.X_OK):
            die("no pgbench in %s" % self.bin)
        self.cluster.start()
        self.log_path = self.cluster.dir / "kck-listen.log"
        self.db = self.connect()
        self.ex(SCHEMA)
        self.config_path = self.cluster.dir / "write_path.json"
        self.config_path.write_text(json.dumps(CONFIG, indent=1))
        self.set_capture("kck")
        self.kck_language = self.capture_language()
        for key in self.stored_keys():
            self.kck("get", key)
        self.pgq_reason = self.setup_pgq()
        self.setup_s = time.perf_counter() - self.t_start

    @staticmethod
    def stored_keys():
        return ["grp_sum/%d" % g for g in range(1, STORED + 1)]

    def setup_pgq(self):
        """Creates extension pgq and queue 'bench'; installs postgresql-15-pgq3 as root when it is
        missing. Returns why column (d) must be skipped, or None."""
        sharedir = run([self.bin / "pg_config", "--sharedir"]).strip() if (self.bin / "pg_config").exists() \
            else "/usr/share/postgresql/15"
        if not Path(sharedir, "extension", "pgq.control").exists():
            if not AS_ROOT:
                return "extension pgq is not installed (Debian package postgresql-15-pgq3) and this is not root"
            reason = self.apt_install_pgq()
            if reason:
                return reason
        self.ex("CREATE EXTENSION pgq")
        self.q1("SELECT pgq.create_queue('bench')")
        self.pgq_table = self.q1("SELECT queue_data_pfx FROM pgq.queue WHERE queue_name = 'bench'")
        return None

    def apt_install_pgq(self):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        print("installing postgresql-15-pgq3 (apt-get install -y) ...", flush=True)
        for attempt in (1, 2):
            p = subprocess.run(["apt-get", "install", "-y", "postgresql-15-pgq3"], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, env=env)
            if p.returncode == 0:
                return None
            if attempt == 1:
                subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return "apt-get install postgresql-15-pgq3 failed: " + (p.stdout.strip().splitlines() or ["?"])[-1]

    def header(self):
        import django

        setting = lambda name: self.q1("SELECT current_setting(%s)", [name])  # noqa: E731
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        built = datetime.datetime.fromtimestamp(os.stat(self.a.kck).st_mtime).astimezone()
        self.env = {
            "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "machine": "%s %s, %d CPUs (%s)" % (platform.system(), platform.release(), os.cpu_count(), cpu),
            "load": "%.2f %.2f %.2f" % os.getloadavg(),
            "postgres": setting("server_version"),
            "settings": " ".join("%s=%s" % (n, setting(n)) for n in (
                "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers", "max_wal_size",
                "checkpoint_timeout", "autovacuum")),
            "python": "%s %s, psycopg2 %s, Django %s" % (sys.executable, platform.python_version(),
                                                         psycopg2.__version__.split()[0], django.get_version()),
            "kck": "%s (built %s)" % (self.a.kck, built.strftime("%Y-%m-%d %H:%M")),
            "commit": git_commit(),
            "pgq": self.pgq_description(),
            "capture": "kck's capture of t in %s%s" % (self.kck_language, "" if self.kck_language == "c" else
                                                       " (no kck_capture.so beside the kck binary)"),
        }
        e = self.env
        print("kck write-path bench (bench/write_path.py)%s" % (" --quick" if self.a.quick else ""))
        for label, key in (("date", "date"), ("machine", "machine"), ("load", "load"), ("postgres", "postgres"),
                           ("settings", "settings"), ("python", "python"), ("kck", "kck"), ("commit", "commit"),
                           ("capture", "capture"), ("pgq", "pgq")):
            print("  %-10s %s" % (label, e[key]))
        print("  %-10s t: %d rows in %d groups (index on grp); primer grp_sum/<grp>, %d products stored; "
              "set-up %.1f s" % ("data", ROWS, GROUPS, STORED, self.setup_s))
        print("  %-10s single-row commit p50 %.2f ms (fsync probe; repeated before each round)"
              % ("disk", self.fsync_probe()))
        print(flush=True)

    def pgq_description(self):
        if self.pgq_reason:
            return "skipped: " + self.pgq_reason
        version = self.q1("SELECT pgq.version()")
        lang = self.q1("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                       "WHERE p.oid = 'pgq.logutriga'::regproc")
        return "pgq %s, pgq.logutriga in %s, queue 'bench' (no consumer, no ticker)" % (version, lang)

    # -- configurations ----------------------------------------------------------

    def set_capture(self, mode):
        """mode: 'none', 'kck' (kck install: the C capture where the server loads it),
        'kck_plpgsql' (kck install with KCK_CAPTURE=plpgsql) or 'pgq' (a logutriga trigger on t)."""
        want_kck = mode if mode.startswith("kck") else None
        want_pgq = mode == "pgq"
        if want_kck != self.kck_on:
            if want_kck:
                self.kck("install", "--config", self.config_path, env=self.capture_env(want_kck == "kck_plpgsql"))
            else:
                self.kck("uninstall")
            self.kck_on = want_kck
        if want_pgq != self.pgq_on:
            if want_pgq:
                self.ex("CREATE TRIGGER bench_pgq AFTER INSERT OR UPDATE OR DELETE ON t "
                        "FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('bench')")
            else:
                self.ex("DROP TRIGGER bench_pgq ON t")
            self.pgq_on = want_pgq

    def prepare_run(self):
        """Empty outboxes, VACUUM t, CHECKPOINT: every timed run starts from the same state."""
        self.ex("TRUNCATE kck.changes")
        if self.pgq_table:
            self.ex("TRUNCATE " + self.pgq_table)
        self.ex("VACUUM t")
        self.ex("CHECKPOINT")

    def outbox_rows(self):
        return self.q1("SELECT count(*) FROM kck.changes")

    # -- the daemon ----------------------------------------------------------------

    def start_daemon(self, level="info", extra=()):
        self.daemon = Daemon(self.a.kck, self.cluster.conninfo, self.log_path, level, extra)
        return self.daemon

    def stop_daemon(self):
        d, self.daemon = self.daemon, None
        rc = d.stop()
        if rc != 0:
            die("kck listen exited with %s; log:\n%s" % (rc, d.log_tail()))

    def wait_drained(self, timeout=120):
        """Polls until kck.changes is empty; ms waited."""
        t0 = time.perf_counter()
        while self.q1("SELECT EXISTS (SELECT 1 FROM kck.changes)"):
            if self.daemon is not None and not self.daemon.running():
                die("kck listen exited; log:\n" + self.daemon.log_tail())
            if ms_since(t0) > timeout * 1000:
                die("the outbox did not drain within %d s" % timeout)
            time.sleep(0.01)
        return ms_since(t0)

    def wait_live(self):
        """Until the daemon has applied a change: an UPDATE in group 1 (stored), then the outbox empties."""
        self.ex("UPDATE t SET v = v WHERE id = 1")
        self.wait_drained(30)

    def refresh_products(self):
        """Recomputes the stored products: writes made without capture left them stale."""
        self.kck("refresh", *self.stored_keys())

    def check_products(self, where):
        """Records how many stored products differ from a recompute (the outbox must be empty)."""
        stale = self.q1(STALE_SQL)
        self.stale_checks.append((where, stale))
        if stale:
            print("  !! %d stored products differ from a recompute %s" % (stale, where), flush=True)

    # -- 1. single-row UPDATE throughput ------------------------------------------

    def pgbench(self, clients, sync_off, secs, rate=None, background=False):
        script = self.cluster.dir / "update.sql"
        script.write_text("\\set id random(1, %d)\nUPDATE t SET v = v + 1 WHERE id = :id;\n" % ROWS)
        argv = [str(self.bin / "pgbench"), "-n", "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(secs),
                "-f", str(script), "-h", str(self.cluster.dir), "-p", "5432", "-U", "postgres", DB]
        if rate:
            argv[1:1] = ["-R", str(rate)]
        env = dict(os.environ)
        env.pop("PGOPTIONS", None)
        if sync_off:
            env["PGOPTIONS"] = "-c synchronous_commit=off"
        if background:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, universal_newlines=True, env=env)
        return parse_pgbench(run(argv, timeout=secs + 120, env=env))

    def throughput_run(self, cfg, clients, sync_off):
        """One timed pgbench run under configuration cfg; returns its TPS."""
        if cfg == "c":
            return self.draining_run(clients, sync_off)
        self.set_capture({"a": "none", "b": "kck", "d": "pgq", "e": "kck_plpgsql"}[cfg])
        self.prepare_run()
        r = self.pgbench(clients, sync_off, self.a.seconds)
        if cfg in ("b", "d", "e"):
            table = self.pgq_table if cfg == "d" else "kck.changes"
            captured = self.q1("SELECT count(*) FROM " + table)
            if not r["tx"] <= captured <= r["tx"] + clients:
                die("%s recorded %d events for %d updates" % (CONFIG_NAMES[cfg], captured, r["tx"]))
        return r["tps"]

    def draining_run(self, clients, sync_off):
        self.set_capture("kck")
        self.refresh_products()
        self.ex("TRUNCATE kck.changes")
        self.start_daemon()
        self.wait_live()
        self.ex("VACUUM t")
        self.ex("CHECKPOINT")
        r = self.pgbench(clients, sync_off, self.a.seconds)
        left = self.outbox_rows()
        drain_ms = self.wait_drained()
        self.stop_daemon()
        self.check_products("after (c), %d clients%s" % (clients, ", sync off" if sync_off else ""))
        self.drain_info[(clients, sync_off)].append((left, drain_ms))
        return r["tps"]

    def section1(self):
        a = self.a
        configs = ["a", "b", "c"] + ([] if self.pgq_reason else ["d"]) + (["e"] if self.kck_language == "c" else [])
        print("1. Single-row UPDATE throughput: pgbench -T %d, UPDATE t SET v = v + 1 WHERE id = :id (random id)."
              % a.seconds)
        print("   %d rounds; each round runs every configuration once per cell, order rotated by round and cell;"
              % a.rounds)
        print("   VACUUM t + CHECKPOINT before each run. ratio = TPS / same round's (a) TPS; median (min-max).")
        if self.pgq_reason:
            print("   column (d) skipped: " + self.pgq_reason)
        print(flush=True)
        tps = {cell: {c: [] for c in configs} for cell in CELLS}
        self.drain_info = {cell: [] for cell in CELLS}
        for r in range(a.rounds):
            print("  round %d/%d: fsync probe %.2f ms, load %.2f" % (r + 1, a.rounds, self.fsync_probe(),
                                                                   os.getloadavg()[0]), flush=True)
            for ci, (clients, sync_off) in enumerate(CELLS):
                order = rotated(configs, r + ci)
                got = {c: self.throughput_run(c, clients, sync_off) for c in order}
                for c in configs:
                    tps[(clients, sync_off)][c].append(got[c])
                print("    %-22s %s" % (cell_name(clients, sync_off), "  ".join(
                    "%s %6.0f%s" % (c, got[c], "" if c == "a" else " (%.2f)" % (got[c] / got["a"]))
                    for c in order)), flush=True)
        self.set_capture("kck")
        self.report_throughput(configs, tps)

    def report_throughput(self, configs, tps):
        print()
        print("  %-22s %-36s %6s  %-13s %8s   %s" % ("cell", "configuration", "ratio", "(min-max)", "TPS p50",
                                                    "TPS per round"))
        out = {}
        for cell in CELLS:
            name = cell_name(*cell)
            base = tps[cell]["a"]
            out[name] = {}
            for c in configs:
                ratios = [x / b for x, b in zip(tps[cell][c], base)]
                out[name][c] = {"ratio_median": median(ratios), "ratio_min": min(ratios),
                                "ratio_max": max(ratios), "tps": tps[cell][c], "ratios": ratios}
                ratio = "" if c == "a" else "%5.2fx" % median(ratios)
                spread = "" if c == "a" else "(%.2f-%.2f)" % (min(ratios), max(ratios))
                print("  %-22s %-36s %6s  %-13s %8.0f   %s" % (name if c == "a" else "", CONFIG_NAMES[c], ratio,
                                                             spread, median(tps[cell][c]),
                                                             " ".join("%.0f" % x for x in tps[cell][c])))
            info = self.drain_info[cell]
            print("  %-22s %-36s outbox at end of run %s; drained %s ms later" % (
                "", "    (c) daemon", "/".join(str(x[0]) for x in info), "/".join("%.0f" % x[1] for x in info)))
        print("  targets: (b) >= %.2fx at 2 clients; (b) >= (d) at 16 clients and with sync off; "
              "(c) >= %.2fx at 16 clients" % (TARGET_CAPTURE_2C, TARGET_DRAINING_16C))
        print(flush=True)
        self.results["throughput"] = out
        self.throughput_verdicts(out)

    def throughput_verdicts(self, out):
        for clients, sync_off in CELLS:
            r = out[cell_name(clients, sync_off)]
            where = cell_name(clients, sync_off)
            b = r["b"]["ratio_median"]
            if clients == 2:
                self.verdicts.append(("(b) kck capture / no capture, " + where, "%.3fx" % b,
                                      ">= %.2fx" % TARGET_CAPTURE_2C, b >= TARGET_CAPTURE_2C))
            if clients == 16 or sync_off:
                if "d" in r:
                    d = r["d"]["ratio_median"]
                    self.verdicts.append(("(b) kck capture vs (d) PgQ, " + where, "%.3fx vs %.3fx" % (b, d),
                                          ">= PgQ", b >= d))
                else:
                    self.verdicts.append(("(b) kck capture vs (d) PgQ, " + where, "%.3fx vs (skipped)" % b,
                                          ">= PgQ", None))
            if clients == 16:
                c = r["c"]["ratio_median"]
                self.verdicts.append(("(c) kck + daemon draining / no capture, " + where, "%.3fx" % c,
                                      ">= %.2fx" % TARGET_DRAINING_16C, c >= TARGET_DRAINING_16C))

    # -- 2. bulk UPDATE --------------------------------------------------------------

    def section2(self):
        print("2. Bulk: UPDATE t SET v = v + 1 WHERE id <= %d (one statement, %d rows), without/with kck capture"
              % (BULK_ROWS, BULK_ROWS))
        print("   %d pairs, no daemon, the order alternating by pair; before each timed run the same UPDATE"
              % BULK_PAIRS)
        print("   untimed without triggers, then VACUUM t + CHECKPOINT, so that every timed run finds the same layout;")
        print("   ratio = with / without of the same pair, median (min-max). fsync probe %.2f ms." % self.fsync_probe())
        times = {False: [], True: []}
        for pair in range(BULK_PAIRS):
            for on in (False, True) if pair % 2 == 0 else (True, False):
                self.set_capture("kck" if on else "none")
                self.same_layout()
                self.prepare_run()
                times[on].append(self.timed_ms("UPDATE t SET v = v + 1 WHERE id <= %s", [BULK_ROWS]))
                if on and self.outbox_rows() != 1:
                    die("the bulk UPDATE recorded %d changes, expected one" % self.outbox_rows())
        self.set_capture("kck")
        ratios = [w / wo for wo, w in zip(times[False], times[True])]
        ratio = median(ratios)
        print()
        for on in (False, True):
            print("  %-32s median %7.1f ms   (runs: %s)" % ("with kck capture" if on else "without capture",
                                                             median(times[on]),
                                                             ", ".join("%.0f" % x for x in times[on])))
        print("  %-32s %7.2fx (%.2f-%.2f)   (target <= %.1fx)" % ("ratio, median of pairs", ratio, min(ratios),
                                                                  max(ratios), TARGET_BULK))
        print(flush=True)
        self.results["bulk"] = {"off_ms": times[False], "on_ms": times[True], "ratios": ratios, "ratio": ratio}
        self.verdicts.append(("bulk 100k-row UPDATE, capture / none", "%.3fx" % ratio, "<= %.1fx" % TARGET_BULK,
                              ratio <= TARGET_BULK))

    def same_layout(self):
        """An untimed run of the bulk UPDATE with no trigger firing, then VACUUM.

        Each run moves its 100k rows into the space the run before it freed, so the table's layout
        alternates between two states from run to run. Timed runs that alternate too (without, with,
        without...) would each always find the same one of them, and the ratio would move with the
        order of the pairs (bench/bulk_layout.py). One run in between makes every timed run find
        the same state."""
        self.ex("SET session_replication_role = replica")
        self.ex("UPDATE t SET v = v + 1 WHERE id <= %s", [BULK_ROWS])
        self.ex("RESET session_replication_role")
        self.ex("VACUUM t")

    # -- 3. commit -> fresh ------------------------------------------------------------

    def section3(self):
        a = self.a
        self.set_capture("kck")
        self.refresh_products()
        self.ex(FRESH_TRIGGER)
        fresh = Listener(self.cluster.conninfo, "bench_fresh")
        ping = Listener(self.cluster.conninfo, "bench_ping")
        writer, computer = self.connect(), self.connect()
        self.ex("PREPARE grp_sum(int) AS " + COMPUTE_HEAD + "$1", conn=computer)
        self.start_daemon("debug")  # one log line per batch: its time, claim .. COMMIT
        self.wait_live()
        probe = self.fsync_probe()
        s = {"fresh": [], "notify": [], "update": [], "compute": [], "explain": [], "daemon_compute": []}
        timeouts = 0
        for i in range(a.warmup + a.iterations):
            keep = i >= a.warmup
            n = self.notify_round_trip(ping, writer, i)
            f = self.commit_to_fresh(fresh, writer)
            c = self.timed_ms("EXECUTE grp_sum(%s)", [self.rng.randint(1, STORED)], computer)
            if f is None:
                timeouts += keep
                if not self.daemon.running():
                    die("kck listen died; log:\n" + self.daemon.log_tail())
            if keep and f is not None and n is not None:
                s["notify"].append(n)
                s["fresh"].append(f[0])
                s["update"].append(f[1])
                if f[2] is not None:
                    s["daemon_compute"].append(f[2])
                s["compute"].append(c)
                if i % 10 == 0:
                    s["explain"].append(self.explain_ms(computer))
        s["batch"] = [b[2] for b in self.daemon.batches() if b[0]]
        self.stop_daemon()
        self.check_products("after the commit -> fresh run")
        self.ex(DROP_FRESH_TRIGGER)
        for conn in (writer, computer):
            conn.close()
        fresh.close()
        ping.close()
        self.report_fresh({k: Stats(v) for k, v in s.items()}, timeouts, probe)

    def notify_round_trip(self, ping, writer, i):
        """ms from before sending NOTIFY to its receipt on the other connection, or None."""
        payload = str(i)
        ping.drain()
        t = time.perf_counter()
        self.ex("NOTIFY bench_ping, '%s'" % payload, conn=writer)
        got = ping.wait(lambda p: p == payload, 5.0)
        return None if got is None else (got[0] - t) * 1000.0

    def commit_to_fresh(self, fresh, writer):
        """(commit -> fresh ms, the UPDATE's own ms, the daemon's compute_ms) of one update, or None."""
        grp = self.rng.randint(1, STORED)
        row = grp + GROUPS * self.rng.randrange(ROWS // GROUPS)
        key = "grp_sum/%d" % grp
        fresh.drain()
        ts = time.perf_counter()
        self.ex("UPDATE t SET v = v + 1 WHERE id = %s", [row], writer)
        t0 = time.perf_counter()
        got = fresh.wait(lambda p: p.split(" ")[0] == key, 5.0)
        if got is None:
            return None
        ms = got[1].split(" ")[1]
        return (got[0] - t0) * 1000.0, (t0 - ts) * 1000.0, float(ms) if ms else None

    def explain_ms(self, conn):
        with conn.cursor() as cur:
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE grp_sum(%s)", [self.rng.randint(1, STORED)])
            plan = cur.fetchone()[0]
        return plan[0]["Execution Time"]

    def report_fresh(self, s, timeouts, probe):
        a = self.a
        print("3. Commit -> fresh, idle system, daemon running: single-row UPDATE t (autocommit) of a row whose")
        print("   grp_sum product is stored; t0 = UPDATE acknowledged, t1 = LISTEN connection received pg_notify")
        print("   from an AFTER UPDATE trigger on kck.cache (the daemon's COMMIT). %d iterations after %d warm-up,"
              % (a.iterations, a.warmup))
        print("   each also timing a bare NOTIFY round trip and the primer's SQL (prepared, client-timed).")
        print("   fsync probe %.2f ms. Times in ms.%s" % (probe, "  (%d timeouts)" % timeouts if timeouts else ""))
        print()
        print("  %-50s %7s %7s %7s %7s" % ("", "p50", "p90", "p99", "max"))
        rows = [("commit -> fresh (t0 = UPDATE acknowledged)", "fresh"),
                ("  the UPDATE's own round trip", "update"),
                ("bare NOTIFY round trip (t0 = before sending)", "notify"),
                ("primer compute, prepared SQL timed by the client", "compute"),
                ("primer compute, EXPLAIN ANALYZE execution", "explain"),
                ("primer compute in the daemon (kck.cache.compute_ms)", "daemon_compute"),
                ("daemon batch, claim .. COMMIT (its debug log)", "batch")]
        for label, k in rows:
            st = s[k]
            print("  %-50s %7.3f %7.3f %7.3f %7.3f" % (label, st.pct(50), st.pct(90), st.pct(99), st.max))
        fresh, compute = s["fresh"], s["compute"]
        limit = compute.pct(50) + TARGET_FRESH_P50_OVER_COMPUTE_MS
        print("  targets: p50 <= compute p50 + %.1f ms (= %.3f ms), p99 <= %.0f ms"
              % (TARGET_FRESH_P50_OVER_COMPUTE_MS, limit, TARGET_FRESH_P99_MS))
        print(flush=True)
        self.results["fresh"] = {k: v.summary() for k, v in s.items()}
        self.results["fresh"]["timeouts"] = timeouts
        self.verdicts.append(("commit -> fresh p50", "%.3f ms (compute %.3f)" % (fresh.pct(50), compute.pct(50)),
                              "<= %.3f ms" % limit, round(fresh.pct(50), 3) <= round(limit, 3) and not timeouts))
        self.verdicts.append(("commit -> fresh p99", "%.3f ms" % fresh.pct(99), "<= %.0f ms" % TARGET_FRESH_P99_MS,
                              fresh.pct(99) <= TARGET_FRESH_P99_MS and not timeouts))
        self.verdicts.append(("  bare NOTIFY round trip p50 / p99", "%.3f / %.3f ms" % (
            s["notify"].pct(50), s["notify"].pct(99)), "(info)", None))

    # -- 4. Cache.get misses during a drain -----------------------------------------

    def setup_django(self):
        """Django configured in this process, with a Python primer grp_sum registered here only."""
        if self.django_cache is not None:
            return self.django_cache
        sys.path.insert(0, str(ROOT / "django"))
        import django
        from django.conf import settings

        settings.configure(
            INSTALLED_APPS=["kck"], USE_TZ=True, TIME_ZONE="UTC",
            DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": DB, "USER": "postgres",
                                   "HOST": str(self.cluster.dir), "PORT": "5432"}},
            KCK={"SYNC_ON_MIGRATE": False, "BINARY": self.a.kck})
        django.setup()
        from django.db import connection

        from kck import Cache, Primer

        class GrpSumPrimer(Primer):
            # The same name and SQL as the config's SQL primer: Cache.get only computes
            # Python primers, and kck.store does not care which engine computed a value.
            key = "grp_sum"
            parameters = [{"name": "grp", "from_str": int}]

            def compute(self, key):
                with connection.cursor() as cur:
                    cur.execute(COMPUTE_HEAD + "%s", [self.key_to_param_dict(key)["grp"]])
                    value = cur.fetchone()[0]
                # Django's backend hands jsonb over as text.
                return json.loads(value) if isinstance(value, str) else value

        self.django_cache = Cache.get_instance()
        return self.django_cache

    def timed_misses(self, cache, keys):
        """ms of Cache.get for each key (each must be a miss)."""
        out = []
        for key in keys:
            t = time.perf_counter()
            cache.get(key)
            out.append(ms_since(t))
        return out

    def queue_changes(self, n, groups):
        """n single-row UPDATEs (one change each) of random rows of groups 1..groups, daemon stopped."""
        self.ex("TRUNCATE kck.changes")
        self.ex("DO $$ DECLARE r bigint; BEGIN FOR i IN 1..%d LOOP "
                "r := (1 + floor(random() * %d))::bigint + %d * floor(random() * %d)::bigint; "
                "UPDATE t SET v = v + 1 WHERE id = r; END LOOP; END $$" % (n, groups, GROUPS, ROWS // GROUPS))
        return self.outbox_rows()

    def section4(self):
        a = self.a
        stored_groups = 300
        self.set_capture("kck")
        self.refresh_products()
        cache = self.setup_django()
        self.ex("DELETE FROM kck.cache WHERE primer = 'grp_sum' AND split_part(key, '/', 2)::int > %s", [STORED])
        self.ex("TRUNCATE kck.changes")
        probe = self.fsync_probe()
        idle = self.timed_misses(cache, ["grp_sum/%d" % g for g in range(STORED + 1, stored_groups + 1)])
        reads, drains, next_grp = [], [], stored_groups
        for i in range(a.drains):
            queued = self.queue_changes(a.changes, stored_groups)
            got, drain_ms = self.misses_while_draining(cache, next_grp)
            next_grp += len(got)
            reads += got
            drains.append({"queued": queued, "drain_ms": drain_ms, "reads": len(got),
                           "batches": [b for b in self.daemon.batches() if b[0]]})
            self.stop_daemon()
            self.check_products("after drain %d of section 4" % (i + 1))
        self.report_misses(Stats(idle), reads, drains, stored_groups, probe)

    def misses_while_draining(self, cache, grp):
        """Starts the daemon and reads unstored keys (grp_sum/<grp+1>, ...) one after another until
        the outbox is empty; returns ([(key, ms)], ms from spawn to empty)."""
        reads = []
        t0 = time.perf_counter()
        self.start_daemon("debug")
        while self.q1("SELECT EXISTS (SELECT 1 FROM kck.changes)"):
            if not self.daemon.running():
                die("kck listen exited; log:\n" + self.daemon.log_tail())
            if ms_since(t0) > 120000:
                die("the outbox did not drain within 120 s")
            grp += 1
            key = "grp_sum/%d" % grp
            reads.append((key, self.timed_misses(cache, [key])[0]))
        return reads, ms_since(t0)

    def split_by_bucket(self, reads, stored_groups):
        """Reads whose key shares one of the 1024 key-lock buckets with the batch's keys, and the others."""
        batch = {r[0] for r in self.q_all("SELECT DISTINCT kck.bucket('grp_sum/' || g) "
                                           "FROM generate_series(1, %s) g", [stored_groups])}
        bucket = dict(self.q_all("SELECT k, kck.bucket(k) FROM unnest(%s::text[]) k", [[k for k, _ in reads]]))
        shared = [ms for k, ms in reads if bucket[k] in batch]
        other = [ms for k, ms in reads if bucket[k] not in batch]
        return Stats(shared), Stats(other), len(batch)

    def report_misses(self, idle, reads, drains, stored_groups, probe):
        a = self.a
        busy = Stats([ms for _, ms in reads])
        shared, other, nbuckets = self.split_by_bucket(reads, stored_groups)
        print("4. Cache.get miss (django kck.Cache, in process: lock_key_session, REPEATABLE READ, compute,")
        print("   kck.store) of keys that are not stored. Idle: daemon stopped, outbox empty. Draining, %d times:"
              % a.drains)
        print("   the daemon stopped, %d single-row UPDATEs (plpgsql loop) queued for the %d stored products,"
              % (a.changes, stored_groups))
        print("   then `kck listen` started (batches of 5000) and reads ran back to back until the outbox was")
        print("   empty. fsync probe %.2f ms. Times in ms." % probe)
        print()
        print("  %-52s %6s %7s %7s %7s %7s" % ("", "reads", "p50", "p90", "p99", "max"))
        rows = [("miss, idle", idle), ("miss, daemon draining", busy),
                ("  key's lock bucket is one of the batch's %d" % nbuckets, shared),
                ("  other keys", other)]
        for label, st in rows:
            print("  %-52s %6d %7.3f %7.3f %7.3f %7.3f" % (label, len(st), st.pct(50), st.pct(90), st.pct(99),
                                                           st.max))
        for i, d in enumerate(drains):
            b = d["batches"]
            print("  drain %d: spawn -> outbox empty %.0f ms, %d reads; batches: %s" % (
                i + 1, d["drain_ms"], d["reads"],
                ", ".join("%d changes -> %d products in %.0f ms" % x for x in b)))
        print("  target: p99 while draining <= %.0f ms" % TARGET_MISS_P99_MS)
        print(flush=True)
        self.results["miss"] = {"idle": idle.summary(), "draining": busy.summary(),
                                "draining_shared_bucket": shared.summary(), "draining_other": other.summary(),
                                "drains": drains}
        self.verdicts.append(("Cache.get miss p99 during 5000-change batches",
                              "%.3f ms (p50 %.3f, max %.1f)" % (busy.pct(99), busy.pct(50), busy.max),
                              "<= %.0f ms" % TARGET_MISS_P99_MS, busy.pct(99) <= TARGET_MISS_P99_MS))

    # -- 5. sustained load with a held snapshot ------------------------------------------

    def section5(self):
        a = self.a
        total = int(a.sustain_minutes * 60)
        every = 10 if a.quick else 30
        self.set_capture("kck")
        self.ex("DELETE FROM kck.cache WHERE primer = 'grp_sum' AND split_part(key, '/', 2)::int > %s", [STORED])
        self.refresh_products()
        self.prepare_run()
        self.start_daemon()
        self.wait_live()
        print("5. Sustained load: pgbench -R %d -c 2 -T %d, UPDATE t SET v = v + 1 WHERE id = :id with"
              % (a.rate, total))
        print("   synchronous_commit=off (with fsync-bound commits 2 clients cannot hold the rate on this disk),")
        print("   the daemon draining, %d products stored. From %ds to %ds another connection holds BEGIN"
              % (STORED, total // 4, 3 * total // 4))
        print("   ISOLATION LEVEL REPEATABLE READ; SELECT 1. Sample every %d s: outbox rows, kck.changes size and"
              % every)
        print("   dead tuples, a claim probe (%s," % CLAIM_PROBE)
        print("   rolled back) and the daemon's RSS. fsync probe %.2f ms." % self.fsync_probe())
        print()
        print("  %6s %9s %8s %11s %10s %11s %9s" % ("t (s)", "snapshot", "outbox", "size (kB)", "dead tup",
                                                  "claim (ms)", "RSS (MB)"))
        bench = self.pgbench(2, True, total, rate=a.rate, background=True)
        samples = self.sample_sustained(bench, total, every)
        out = bench.communicate()[0]
        if bench.returncode != 0:
            die("pgbench failed (exit %d):\n%s" % (bench.returncode, out[-2000:]))
        r = parse_pgbench(out)
        drain_ms = self.wait_drained()
        self.stop_daemon()
        self.check_products("after the sustained run")
        self.report_sustained(samples, r, drain_ms)

    def sample_sustained(self, bench, total, every):
        """Samples until pgbench exits; opens the snapshot at total/4 and releases it at 3*total/4."""
        holder, samples, t0 = self.connect(), [], time.monotonic()
        held, released, next_sample = False, False, 0.0
        prober = self.connect()
        while True:
            now = time.monotonic() - t0
            if not held and not released and now >= total / 4:
                self.ex("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1", conn=holder)
                held = True
            if held and now >= 3 * total / 4:
                self.ex("ROLLBACK", conn=holder)
                held, released = False, True
            finished = bench.poll() is not None
            if now >= next_sample or finished:
                samples.append(self.sample(now, held, prober))
                next_sample += every
            if finished:
                break
            if not self.daemon.running():
                die("kck listen exited; log:\n" + self.daemon.log_tail())
            time.sleep(min(0.5, max(0.0, next_sample - (time.monotonic() - t0))))
        holder.close()
        prober.close()
        return samples

    def sample(self, now, held, prober):
        size = self.q1(OUTBOX_SIZE)
        dead = self.q1(OUTBOX_DEAD)
        rows = self.outbox_rows()
        self.ex("BEGIN", conn=prober)
        claim = self.timed_ms(CLAIM_PROBE, conn=prober)
        self.ex("ROLLBACK", conn=prober)
        s = {"t": now, "snapshot": held, "outbox": rows, "size_kb": size / 1024.0, "dead": dead,
             "claim_ms": claim, "rss_mb": self.daemon.rss_mb()}
        print("  %6.0f %9s %8d %11.0f %10d %11.3f %9.1f" % (s["t"], "held" if held else "-", rows, s["size_kb"],
                                                           dead, claim, s["rss_mb"]), flush=True)
        return s

    def report_sustained(self, samples, r, drain_ms):
        rss = max(s["rss_mb"] for s in samples)
        print("  pgbench: %.0f tps, latency average %.3f ms, schedule lag avg %.3f ms (max %.1f); outbox drained "
              "%.0f ms after the end" % (r["tps"], r["latency_ms"] or float("nan"), r["lag_ms"] or float("nan"),
                                         r["lag_max_ms"] or float("nan"), drain_ms))
        if r["tps"] < 0.95 * self.a.rate:
            print("  WARNING: pgbench did not hold the rate of %d tps (the machine was too busy)" % self.a.rate)
        print("  target: daemon RSS <= %.0f MB (max %.1f MB)" % (TARGET_RSS_MB, rss))
        print(flush=True)
        self.results["sustained"] = {"samples": samples, "pgbench": r, "drain_ms": drain_ms}
        self.verdicts.append(("daemon RSS, sustained load (max)", "%.1f MB" % rss, "<= %.0f MB" % TARGET_RSS_MB,
                              rss <= TARGET_RSS_MB))
        held = [s["claim_ms"] for s in samples if s["snapshot"]]
        free = [s["claim_ms"] for s in samples if not s["snapshot"]]
        self.verdicts.append(("  claim probe, snapshot held / not (max)", "%.2f / %.2f ms" % (
            max(held) if held else float("nan"), max(free) if free else float("nan")), "(info)", None))
        self.verdicts.append(("  kck.changes size at end (max)", "%.0f kB (%.0f kB)" % (
            samples[-1]["size_kb"], max(s["size_kb"] for s in samples)), "(info)", None))

    # -- summary --------------------------------------------------------------------

    def summary(self):
        stale = [(w, n) for w, n in self.stale_checks if n]
        if self.stale_checks:
            self.verdicts.append(("products equal a recompute after every daemon run (%d checks)"
                                  % len(self.stale_checks),
                                  "yes" if not stale else "NO: " + "; ".join("%d %s" % (n, w) for w, n in stale),
                                  "yes", not stale))
        print("Summary")
        print("  %-62s %-28s %-12s %s" % ("", "measured", "target", ""))
        for what, value, target, ok in self.verdicts:
            mark = "info" if ok is None else ("ok" if ok else "MISS")
            print("  %-62s %-28s %-12s %s" % (what, value, target, mark))
        print("  total %.0f s" % (time.perf_counter() - self.t_start))
        sys.stdout.flush()

    def write_json(self, path):
        doc = {"env": getattr(self, "env", {}), "options": vars(self.a), "results": self.results,
               "stale_checks": self.stale_checks,
               "verdicts": [{"what": w.strip(), "measured": m, "target": t, "ok": ok}
                            for w, m, t, ok in self.verdicts],
               "total_s": time.perf_counter() - self.t_start}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1, default=str)

    def cleanup(self):
        if self.daemon is not None:
            self.daemon.stop()
            self.daemon = None
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self.db is not None:
            self.db.close()
        self.cluster.stop(keep=self.a.keep)
        if self.a.keep:
            print("cluster and daemon log kept in %s" % self.cluster.dir)


def cell_name(clients, sync_off):
    return "%d clients, %s" % (clients, "sync off" if sync_off else "default")


def git_commit():
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               universal_newlines=True).stdout.strip()
    except OSError:
        return "?"
    return (head or "?") + (" (with uncommitted changes)" if dirty else "")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kck", default=str(ROOT / "build" / "kck"), help="the kck binary (default: build/kck)")
    ap.add_argument("--quick", action="store_true", help="3 rounds x 3 s, fewer iterations, 2-minute section 5")
    ap.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    ap.add_argument("--sustain-minutes", type=float, help="length of section 5 (default 10, --quick 2)")
    ap.add_argument("--rate", type=int, default=1000, help="section 5's pgbench -R (default 1000 tps)")
    ap.add_argument("--only", default="1,2,3,4,5", help="run only these sections, e.g. 1,3")
    ap.add_argument("--keep", action="store_true", help="keep the cluster directory (and daemon log)")
    a = ap.parse_args()
    a.rounds = 3 if a.quick else 5
    a.seconds = 3 if a.quick else 8
    a.iterations, a.warmup = (500, 50) if a.quick else (2000, 200)
    a.changes = 10000 if a.quick else 20000
    a.drains = 2 if a.quick else 5
    if a.sustain_minutes is None:
        a.sustain_minutes = 2 if a.quick else 10
    a.only = {int(x) for x in a.only.split(",") if x.strip()}
    a.kck = os.path.abspath(a.kck)
    return a


def main():
    args = parse_args()
    bench = Bench(args)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    rc = 0
    try:
        bench.setup()
        bench.header()
        for n, section in ((1, bench.section1), (2, bench.section2), (3, bench.section3), (4, bench.section4),
                           (5, bench.section5)):
            if n in args.only:
                section()
        bench.summary()
    except BenchError as e:
        print("\nwrite_path: %s" % e, file=sys.stderr, flush=True)
        rc = 1
    finally:
        if args.json:
            bench.write_json(args.json)
        bench.cleanup()
    return rc


if __name__ == "__main__":
    sys.exit(main())
