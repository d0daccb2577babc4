#!/usr/bin/python3
"""Django benchmark for kck: cache-hit reads and save() -> fresh product latency.

    /usr/bin/python3 bench/django_bench.py [--quick]

Everything runs on a throwaway PostgreSQL cluster that this script starts (initdb into a
temporary directory as the postgres user -- through runuser when run as root -- unix
socket only, listen_addresses='') and removes at the end. The database is the bookstore
example (examples/bookstore_django): `migrate` (which runs kck_sync and installs the Python
primers), `bookstore_seed`, plus one SQL primer registered with `kck install --config`
under its own source ("bench"), so both coexist. Then, in one run:

1. Cache read on a hit: kck's Cache.get_instance().get(key) on a stored product against
   Django's own django.core.cache.backends.db.DatabaseCache.get of a value of the same
   content, on the same database and Django connection, in the same process, alternated
   call by call (order rotated every round) so that drift hits both alike. --breakdown
   adds rows that time parts of Cache.get and narrower what-if hit paths. Then 20 misses
   each (the row deleted before each) of the Python primer title_list, computed in process,
   of the SQL primer sql_titles, computed in process with its client_compute statement, and of
   sql_titles_bin, the same SQL without one, which Cache.get has `kck get` compute; rotated.
2. save() -> fresh: a Django Book.save() (autocommit) changes a title; t0 = save() returned,
   t1 = a bench-only AFTER INSERT OR UPDATE trigger on kck.cache has sent
   pg_notify('bench_fresh', key) for the product that depends on the book and this script,
   LISTENing on its own psycopg2 connection (select.select + poll, no polling of tables),
   received it. Once for a Python primer (title_list, computed by `manage.py kck_worker`
   under `kck listen --python-worker`) and once for a SQL primer (sql_titles), alternated.

3. Keys rule over a bulk UPDATE (--only keys, or all): author_stats depends on Review through a
   Python keys rule (authors_of_reviewed_books). With every author_stats stored, one UPDATE
   moves all reviews of the first half of the books to a book of another author (and the next
   round back): t0 = the UPDATE returned, t1 = the outbox is empty (polled every 2 ms). The
   daemon maps each of the statement's row images through the rule in the worker. Reported:
   ms per move and per 1000 rows moved; at the end every author_stats must equal a recompute.

4. Python augments of one key in one batch (--only augment, or all): author_stats/<a> stored,
   then one transaction inserts 60 reviews of the author's books (60 single-row statements;
   author_stats augments up to augment_max_changes = 100 changes a key and batch): t0 = COMMIT
   returned, t1 = the outbox is empty (polled every 2 ms). Reported: ms per transaction; at the
   end the product must equal a recompute.

Server settings are PostgreSQL's defaults (fsync and synchronous_commit on), like
bench/kck_bench.cc. Only the kck binary (default build/kck, or $KCK_BINARY) is needed.
Exit status: 0 when every target is met, 3 when one is missed, 1 when a step fails.
"""

import argparse
import contextlib
import datetime
import io
import json
import math
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = "/usr/bin/python3"
# Debian's Django 3.2 and psycopg2 live in /usr/bin/python3; another python3 on PATH (pyenv)
# usually has neither.
if os.path.exists(PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(PYTHON) \
        and not os.environ.get("KCK_BENCH_REEXEC"):
    os.environ["KCK_BENCH_REEXEC"] = "1"
    os.execv(PYTHON, [PYTHON] + sys.argv)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "bookstore_django"
MANAGE = EXAMPLE / "manage.py"
PG_BIN = Path(os.environ.get("KCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
KCK = os.environ.get("KCK_BINARY") or str(ROOT / "build" / "kck")
AS_ROOT = os.geteuid() == 0
DB_NAME = "bookstore_bench"

SQL_CONFIG = {
    "source": "bench",
    "primers": [{
        "name": "sql_titles",
        "parameters": [{"name": "author_id", "type": "int"}],
        "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
        "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}],
    }, {
        # The same compute with no client_compute (as registered before schema 11): Cache.get has
        # `kck get` compute its misses. No depends_on, so that section 2's daemon does not see it.
        "name": "sql_titles_bin",
        "parameters": [{"name": "author_id", "type": "int"}],
        "compute": "SELECT coalesce(jsonb_agg(title ORDER BY id), '[]') FROM store_book WHERE author_id = :author_id",
    }],
}

# Bench-only: tells this script when a product was written (delivered at the daemon's COMMIT).
# The payload also carries the version and compute_ms of the write, for the breakdown.
FRESH_TRIGGER = """
CREATE FUNCTION public.bench_fresh() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('bench_fresh', NEW.key || ' ' || NEW.version || ' ' || coalesce(NEW.compute_ms::text, ''));
  RETURN NULL;
END $$;
CREATE TRIGGER bench_fresh AFTER INSERT OR UPDATE ON kck.cache
  FOR EACH ROW EXECUTE FUNCTION public.bench_fresh();
"""

TARGET_GET_RATIO = 1.1   # kck Cache.get <= 1.1x DatabaseCache.get
TARGET_PY_P99_MS = 20.0  # Python primer save() -> fresh p99


# --------------------------------------------------------------------------- helpers

def die(msg):
    print("django_bench: " + msg, file=sys.stderr, flush=True)
    raise SystemExit(1)


def run(argv, timeout=120, env=None):
    p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout, env=env)
    if p.returncode != 0:
        die("%s failed (exit %d):\n%s" % (" ".join(map(str, argv)), p.returncode, p.stdout))
    return p.stdout


def as_postgres(argv):
    return ["runuser", "-u", "postgres", "--"] + list(argv) if AS_ROOT else list(argv)


def older_miss_path():
    """--breakdown: a context that puts back kck's miss path of 31fd17b (its RR transaction opened
    in three round trips, SET, snapshot, then the read under the lock; and the row read again
    after kck.store), or None when kck.cache has no such internals."""
    import kck.cache as kc

    if not hasattr(kc.Cache, "_open_miss") or not hasattr(kc, "_interval"):
        return None
    store_sql = ("SELECT value::text, version, stored FROM kck.store(%s, %s, %s::jsonb, %s::pg_snapshot, "
                 "%s::double precision, %s::interval, %s::interval, %s::bigint)")

    def open_miss(self, key):
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT pg_current_snapshot()::text")
            snapshot = cur.fetchone()[0]
        return snapshot, self._read(key)

    def store(self, primer, key, text, snapshot, ms, expected):
        soft, hard = kc._interval(primer.soft_expire_period()), kc._interval(primer.hard_expire_period())
        with self._cursor() as cur:
            cur.execute(store_sql, [key, primer.name, text, snapshot, ms, soft, hard, expected])
            cur.fetchone()
        return self._read(key).entry

    @contextlib.contextmanager
    def patched():
        saved = kc.Cache._open_miss, kc.Cache._store
        kc.Cache._open_miss, kc.Cache._store = open_miss, store
        try:
            yield
        finally:
            kc.Cache._open_miss, kc.Cache._store = saved
    return patched


class Stats:
    def __init__(self, values):
        self.v = sorted(values)

    def __len__(self):
        return len(self.v)

    def pct(self, p):
        """Nearest-rank percentile."""
        if not self.v:
            return float("nan")
        return self.v[min(len(self.v) - 1, max(0, math.ceil(p / 100.0 * len(self.v)) - 1))]

    @property
    def mean(self):
        return sum(self.v) / len(self.v) if self.v else float("nan")

    @property
    def max(self):
        return self.v[-1] if self.v else float("nan")


class Cluster:
    """initdb + pg_ctl in a temp dir; unix socket in that dir; stopped and removed by stop()."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="kck-djbench-"))
        self.data = self.dir / "data"
        self.started = False
        self.conninfo = "host=%s port=5432 dbname=%s user=postgres" % (self.dir, DB_NAME)

    def start(self):
        if AS_ROOT:
            shutil.chown(str(self.dir), "postgres", "postgres")
        run(as_postgres([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
                         "--locale", "C", "--no-sync"]))
        opts = "-k %s -c listen_addresses='' -c port=5432 -c max_connections=40" % self.dir
        self.started = True
        run(as_postgres([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "postgres.log", "-o", opts,
                         "-w", "-t", "30", "start"]))
        run([PG_BIN / "createdb", "-h", self.dir, "-U", "postgres", DB_NAME])

    def stop(self):
        if self.started and (self.data / "postmaster.pid").exists():
            subprocess.run(as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w",
                                        "-t", "30", "stop"]),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started = False
        shutil.rmtree(str(self.dir), ignore_errors=True)


class Daemon:
    """`kck listen --python-worker ...` with its log in a file."""

    def __init__(self, conninfo, log_path, level, env):
        worker = "exec %s %s kck_worker" % (PYTHON, MANAGE)
        argv = [KCK, "--db", conninfo, "--log-level", level, "listen", "--python-worker", worker]
        self.log_path = log_path
        self.log = open(str(log_path), "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)

    def running(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class Fresh:
    """LISTEN bench_fresh on its own connection; wait() blocks in select() until a key is written."""

    def __init__(self, conninfo):
        import psycopg2

        self.conn = psycopg2.connect(conninfo)
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("LISTEN bench_fresh")
        self.pending = []

    def drain(self):
        self.conn.poll()
        del self.conn.notifies[:]
        self.pending = []

    def wait(self, key, timeout):
        """(t1 perf_counter, version, compute_ms) of the first write of ``key``, or None."""
        deadline = time.perf_counter() + timeout
        while True:
            while self.pending:
                t, payload = self.pending.pop(0)
                k, version, ms = (payload.split(" ") + ["", ""])[:3]
                if k == key:
                    return t, int(version), (float(ms) if ms else None)
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            r, _, _ = select.select([self.conn], [], [], left)
            now = time.perf_counter()
            if r:
                self.conn.poll()
                self.pending.extend((now, n.payload) for n in self.conn.notifies)
                del self.conn.notifies[:]

    def close(self):
        self.conn.close()


def wait_drained(connection):
    """Returns once the outbox is empty (polled every 2 ms on ``connection``)."""
    with connection.cursor() as cur:
        while True:
            cur.execute("SELECT NOT EXISTS (SELECT 1 FROM kck.changes)")
            if cur.fetchone()[0]:
                return
            time.sleep(0.002)


# --------------------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.args = args
        self.t_start = time.perf_counter()
        self.cluster = Cluster()
        self.daemon = None
        self.fresh = None
        self.verdicts = []  # (what, value, target, ok)

    # -- set-up -------------------------------------------------------------

    def setup(self):
        if not os.access(KCK, os.X_OK):
            die("no kck binary at %s (build it: ninja -C %s kck, or set KCK_BINARY)" % (KCK, ROOT / "build"))
        self.cluster.start()
        conninfo = self.cluster.conninfo
        for var in ("PGPASSWORD", "PGSERVICE", "PGOPTIONS"):
            os.environ.pop(var, None)
        os.environ.update(KCK_DATABASE_URL=conninfo, PGHOST=str(self.cluster.dir), PGPORT="5432",
                          PGUSER="postgres", PGDATABASE=DB_NAME, KCK_BINARY=KCK,
                          DJANGO_SETTINGS_MODULE="bookstore.settings")
        for p in (str(EXAMPLE), str(ROOT / "django")):
            if p not in sys.path:
                sys.path.insert(0, p)

        import django
        from django.core.management import call_command

        django.setup()
        from django.db import connection

        out = io.StringIO()
        call_command("migrate", verbosity=0, stdout=out, stderr=out)  # also runs kck_sync
        a = self.args
        call_command("bookstore_seed", authors=a.authors, books=a.books, reviews=a.reviews, stdout=out)
        cfg = self.cluster.dir / "bench_primers.json"
        cfg.write_text(json.dumps(SQL_CONFIG))
        run([KCK, "--db", conninfo, "install", "--config", cfg])
        with connection.cursor() as cur:
            cur.execute("UPDATE kck.primers SET client_compute = NULL WHERE name = 'sql_titles_bin'")
            cur.execute("SELECT name, engine FROM kck.primers ORDER BY name")
            self.primers = cur.fetchall()
            cur.execute(FRESH_TRIGGER)
        names = {n for n, _ in self.primers}
        if not {"title_list", "sql_titles"} <= names:
            die("primers registered: %s; expected title_list (kck_sync) and sql_titles (kck install)"
                % sorted(names))

    def header(self):
        from django.db import connection
        import django
        import psycopg2

        with connection.cursor() as cur:
            cur.execute("SELECT current_setting('server_version'), current_setting('fsync'), "
                        "current_setting('synchronous_commit'), current_setting('shared_buffers')")
            ver, fsync, sync, sb = cur.fetchone()
        cpu = ""
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
        except OSError:
            pass
        print("kck Django bench%s" % (" --quick" if self.args.quick else ""))
        print("  date        %s" % datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"))
        print("  machine     %s %s, %d CPUs (%s)" % (platform.system(), platform.release(), os.cpu_count(), cpu))
        print("  python      %s %s, Django %s, psycopg2 %s" % (sys.executable, platform.python_version(),
                                                              django.get_version(), psycopg2.__version__.split()[0]))
        print("  postgres    %s, unix socket; fsync=%s synchronous_commit=%s shared_buffers=%s" % (ver, fsync, sync, sb))
        print("  disk        single-row commit p50 %.2f ms (fsync probe)" % self.commit_probe())
        print("  kck         %s (built %s)" % (KCK, datetime.datetime.fromtimestamp(os.stat(KCK).st_mtime)
                                                  .astimezone().strftime("%Y-%m-%d %H:%M")))
        print("  load        %.2f %.2f %.2f (load average at start: other work on the machine widens the tails)"
              % os.getloadavg())
        print("  primers     %s" % ", ".join("%s (%s)" % p for p in self.primers))
        print("  data        %d authors x %d books x %d reviews; set-up %.1f s" % (
            self.args.authors, self.args.books, self.args.reviews, time.perf_counter() - self.t_start))
        print(flush=True)

    def commit_probe(self):
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS public.bench_probe (i int)")
            ts = []
            for i in range(50):
                t = time.perf_counter()
                cur.execute("INSERT INTO public.bench_probe VALUES (%s)", [i])
                ts.append((time.perf_counter() - t) * 1000)
            cur.execute("DROP TABLE public.bench_probe")
        return Stats(ts).pct(50)

    def start_daemon(self):
        self.daemon_log = self.cluster.dir / "kck-listen.log"
        env = dict(os.environ)
        if self.args.log_level == "debug":
            env["KCK_LOG_LEVEL"] = "DEBUG"  # kck_worker logs each request's time (settings.LOGGING)
        self.daemon = Daemon(self.cluster.conninfo, self.daemon_log, self.args.log_level, env)
        self.fresh = Fresh(self.cluster.conninfo)
        # The seed's changes (captured since migrate) first: no section times their backlog.
        from django.db import connection

        wait_drained(connection)

    # -- 1. reads ------------------------------------------------------------

    def bench_get(self):
        import gc

        from django.core.cache.backends.db import DatabaseCache
        from django.core.management.commands.createcachetable import Command as CreateCacheTable
        from django.db import connection

        from kck import Cache
        from store.models import Author

        a = self.args
        author = Author.objects.order_by("id").first()
        key = "title_list/%d" % author.id
        cache = Cache.get_instance()
        value = cache.get(key)  # a miss: computed and stored
        entry = cache.get_entry(key)
        if not entry.stored:
            die("%s was not stored" % key)

        create = CreateCacheTable()
        create.verbosity = 0
        create.create_table("default", "bench_django_cache", False)
        dbc = DatabaseCache("bench_django_cache", {"TIMEOUT": None})
        dbc.set("bench_product", value)
        if dbc.get("bench_product") != value:
            die("DatabaseCache returned a different value")
        with connection.cursor() as cur:
            cur.execute("SELECT octet_length(value::text) FROM kck.cache WHERE key = %s", [key])
            kck_bytes = cur.fetchone()[0]
            cur.execute("SELECT octet_length(value) FROM bench_django_cache")
            dbc_bytes = cur.fetchone()[0]

        def raw_get(k):
            with connection.cursor() as cur:
                cur.execute("SELECT value::text FROM kck.cache WHERE key = %s", [k])
                return json.loads(cur.fetchone()[0])

        rows = [("kck Cache.get_instance().get(key)", lambda: cache.get(key)),
                ("Django DatabaseCache.get(key)", lambda: dbc.get("bench_product")),
                ("(info) raw cursor SELECT value::text + json.loads", lambda: raw_get(key))]
        if a.breakdown:
            rows += self.breakdown_rows(key)
        if any(f() not in (value, None) for _, f in rows):
            die("the reads returned different values")
        n = len(rows)
        times = [[] for _ in rows]
        pc = time.perf_counter_ns
        gc.collect()
        for i in range(a.get_warmup + a.gets):
            order = [(j + i) % n for j in range(n)]  # rotated, and reversed every other round
            for j in (order if i % 2 == 0 else order[::-1]):
                t = pc()
                rows[j][1]()
                dt = pc() - t
                if i >= a.get_warmup:
                    times[j].append(dt / 1000.0)
        stats = [Stats(t) for t in times]
        s_kck, s_dbc = stats[0], stats[1]

        print("1. Cache read on a hit: same process, same Django connection and database; %d reads each after"
              % a.gets)
        print("   %d warm-up, all rows alternated call by call (order rotated). Times in microseconds." % a.get_warmup)
        print("   value: %s, %d elements (%d bytes of JSON in kck.cache; DatabaseCache: same list pickled," % (
            key, len(value), kck_bytes))
        print("   %d bytes base64 in its table made by createcachetable)." % dbc_bytes)
        print()
        print("  %-52s %8s %8s %8s %8s %8s" % ("", "p50", "p90", "p99", "max", "mean"))
        for (name, _), s in zip(rows, stats):
            print("  %-52s %8.1f %8.1f %8.1f %8.1f %8.1f" % (name, s.pct(50), s.pct(90), s.pct(99), s.max, s.mean))
        r50, r90, r99 = (s_kck.pct(p) / s_dbc.pct(p) for p in (50, 90, 99))
        rmean = s_kck.mean / s_dbc.mean
        print("  %-52s %7.2fx %7.2fx %7.2fx %8s %7.2fx" % ("ratio kck / DatabaseCache", r50, r90, r99, "", rmean))
        print("  target: kck <= %.1fx DatabaseCache (p50 and mean)" % TARGET_GET_RATIO)
        print(flush=True)
        self.verdicts.append(("Cache.get / DatabaseCache.get, p50", "%.3fx (%.1f vs %.1f us)" % (
            r50, s_kck.pct(50), s_dbc.pct(50)), "<= %.1fx" % TARGET_GET_RATIO, r50 <= TARGET_GET_RATIO))
        self.verdicts.append(("Cache.get / DatabaseCache.get, mean", "%.3fx (%.1f vs %.1f us)" % (
            rmean, s_kck.mean, s_dbc.mean), "<= %.1fx" % TARGET_GET_RATIO, rmean <= TARGET_GET_RATIO))
        self.bench_misses(author.id, self.args.misses)

    def bench_misses(self, author_id, rounds=20):
        """Cache.get misses of the Python primer and the SQL primer (computed in this process) and of
        the same SQL primer without its client compute (`kck get`, a child process), in an order
        rotated every round; each miss after deleting the row."""
        from django.db import connection

        from kck import Cache

        cache = Cache.get_instance()
        keys = [("Python primer title_list, computed in process", "title_list/%d" % author_id, None),
                ("SQL primer sql_titles, computed in process", "sql_titles/%d" % author_id, None),
                ("the same SQL, computed by `kck get`", "sql_titles_bin/%d" % author_id, None)]
        older = older_miss_path() if self.args.breakdown else None
        if older:
            keys.append(("(what-if) title_list, miss path of 31fd17b", "title_list/%d" % author_id, older))
        times = [[] for _ in keys]
        for i in range(rounds + 2):
            for j in [(i + n) % len(keys) for n in range(len(keys))]:
                _, key, patch = keys[j]
                with connection.cursor() as cur:
                    cur.execute("DELETE FROM kck.cache WHERE key = %s", [key])
                with patch() if patch else contextlib.nullcontext():
                    t = time.perf_counter()
                    cache.get(key)
                    if i >= 2:
                        times[j].append((time.perf_counter() - t) * 1000.0)
        print("   Cache.get on a miss (the row deleted before each), %d each, order rotated; ms:" % rounds)
        print("  %-52s %8s %8s %8s" % ("", "p50", "p90", "max"))
        for (name, _, _), t in zip(keys, times):
            st = Stats(t)
            print("  %-52s %8.2f %8.2f %8.2f" % (name, st.pct(50), st.pct(90), st.max))
        print(flush=True)

    def breakdown_rows(self, key):
        """--breakdown: where Cache.get's time goes, and what a narrower hit path would cost.

        Uses kck internals (kck.cache._READ_SQL, kck.primer.decode); rows whose internals are
        gone are left out. The what-if rows return the value as get() does on a hit."""
        import kck.cache as kc
        from django.db import connection

        from kck import jsonutil
        from kck.primer import decode, registry

        rows = [("(breakdown) kck.primer.decode(key)", lambda: decode(key) and None)]
        read_sql = getattr(kc, "_READ_SQL", None)
        if read_sql:
            def read_only():
                with connection.cursor() as cur:
                    cur.execute(read_sql, [key])
                    cur.fetchone()
            rows.append(("(breakdown) cursor + kck's hit SQL, no row handling", read_only))
        slim = ("SELECT value::text, coalesce(soft_expire <= statement_timestamp(), false), "
                "coalesce(hard_expire <= statement_timestamp(), false) FROM kck.cache WHERE key = %s")

        def slim_get(sql):
            # A hit needs the primer (UnknownPrimer stays an error) but not the parameters: a
            # stored key is canonical; the full decode would run on a miss only.
            def get():
                registry().for_key(key)
                with connection.cursor() as cur:
                    cur.execute(sql, [key])
                    text, soft_past, hard_past = cur.fetchone()
                return jsonutil.loads(text)
            return get

        connection.ensure_connection()
        with connection.cursor() as cur:
            cur.execute("PREPARE bench_kck_get(text) AS " + slim.replace("%s", "$1"))
        rows.append(("(what-if) hit: 3-column SELECT, no param decode", slim_get(slim)))
        rows.append(("(what-if) same as a prepared statement", slim_get("EXECUTE bench_kck_get(%s)")))
        return rows

    # -- 2. freshness --------------------------------------------------------

    def wait_live(self, book, key):
        """Saves ``book`` until the daemon (and its worker) has refreshed ``key`` once."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.daemon.running():
                die("kck listen exited at start; see its log:\n" + self.daemon_log.read_text()[-3000:])
            self.fresh.drain()
            book.save()
            if self.fresh.wait(key, 3.0):
                return
        die("kck listen did not refresh %s within 30 s; log:\n%s" % (key, self.daemon_log.read_text()[-3000:]))

    def bench_fresh(self):
        from store.models import Author, Book

        from kck import Cache

        a = self.args
        authors = list(Author.objects.order_by("id")[:3])
        # Python primer on the 2nd author's books, SQL primer on the 3rd's: each save changes
        # exactly one stored product (products are lazy: only stored ones are refreshed).
        py_author, sql_author = authors[1], authors[2]
        py_key, sql_key = "title_list/%d" % py_author.id, "sql_titles/%d" % sql_author.id
        Cache.get_instance().get(py_key)
        run([KCK, "--db", self.cluster.conninfo, "get", sql_key])
        py_books = list(Book.objects.filter(author=py_author).order_by("id"))
        sql_books = list(Book.objects.filter(author=sql_author).order_by("id"))
        self.wait_live(py_books[0], py_key)
        self.wait_live(sql_books[0], sql_key)

        probe = self.commit_probe()
        kinds = {
            "py": {"key": py_key, "books": py_books, "fresh": [], "save": [], "compute": [], "timeouts": 0},
            "sql": {"key": sql_key, "books": sql_books, "fresh": [], "save": [], "compute": [], "timeouts": 0},
        }
        pc = time.perf_counter
        log_offset = None
        total = a.save_warmup + a.saves
        for i in range(total):
            if i == a.save_warmup:
                log_offset = self.daemon_log.stat().st_size
            for name in (("py", "sql") if i % 2 == 0 else ("sql", "py")):
                k = kinds[name]
                book = k["books"][i % len(k["books"])]
                book.title = "%s book %d rev %d" % (name, book.id, i)
                self.fresh.drain()
                ts = pc()
                book.save()  # autocommit: committed when it returns
                t0 = pc()
                got = self.fresh.wait(k["key"], 5.0)
                if got is None:
                    if not self.daemon.running():
                        die("kck listen died; log:\n" + self.daemon_log.read_text()[-3000:])
                    if i >= a.save_warmup:
                        k["timeouts"] += 1
                    continue
                t1, _version, compute_ms = got
                if i >= a.save_warmup:
                    k["fresh"].append((t1 - t0) * 1000)
                    k["save"].append((t0 - ts) * 1000)
                    if compute_ms is not None:
                        k["compute"].append(compute_ms)

        # Check the products really are fresh (what a reader sees equals a recompute).
        from django.db import connection

        with connection.cursor() as cur:
            cur.execute("SELECT value::text FROM kck.cache WHERE key = %s", [py_key])
            stored_py = json.loads(cur.fetchone()[0])
            cur.execute("SELECT value::text FROM kck.cache WHERE key = %s", [sql_key])
            stored_sql = json.loads(cur.fetchone()[0])
        from store.primers import TitleListPrimer

        want_py = TitleListPrimer().compute(py_key)
        want_sql = [b.title for b in Book.objects.filter(author=sql_author).order_by("id")]
        stale = []
        if stored_py != want_py:
            stale.append(py_key)
        if stored_sql != want_sql:
            stale.append(sql_key)

        batch_ms, worker_ms = self.log_times(log_offset) if log_offset is not None else ([], [])

        print("2. save() -> fresh product: Book.save() (autocommit) of a title; t0 = save() returned, t1 = this")
        print("   process received pg_notify('bench_fresh', key) sent by an AFTER UPDATE trigger on kck.cache at the")
        print("   daemon's COMMIT (LISTEN + select, no polling). %d saves per primer after %d warm-up, the two"
              % (a.saves, a.save_warmup))
        print("   primers alternated. Times in ms; save() = the save's own round trip; compute = kck.cache.compute_ms.")
        print("   fsync probe before the run: single-row commit p50 %.2f ms (the daemon's COMMIT pays one too)." % probe)
        print()
        print("  %-42s %7s %7s %7s %7s %7s   %7s %8s" % ("", "p50", "p90", "p99", "max", "mean", "save()", "compute"))
        labels = {"py": "Python primer %s (kck_worker)" % "title_list",
                  "sql": "SQL primer %s" % "sql_titles"}
        for name in ("py", "sql"):
            k = kinds[name]
            s, sv, sc = Stats(k["fresh"]), Stats(k["save"]), Stats(k["compute"])
            extra = "   (%d timeouts)" % k["timeouts"] if k["timeouts"] else ""
            print("  %-42s %7.2f %7.2f %7.2f %7.2f %7.2f   %7.2f %8.2f%s" % (
                labels[name], s.pct(50), s.pct(90), s.pct(99), s.max, s.mean, sv.pct(50), sc.pct(50), extra))
        sp, ss = Stats(kinds["py"]["fresh"]), Stats(kinds["sql"]["fresh"])
        print("  %-42s %6.2fx %6.2fx %6.2fx" % ("ratio Python / SQL", sp.pct(50) / ss.pct(50),
                                                sp.pct(90) / ss.pct(90), sp.pct(99) / ss.pct(99)))
        for label, values in (("(info) daemon batch time, both primers", batch_ms),
                              ("(info) kck_worker request time", worker_ms)):
            if values:
                b = Stats(values)
                print("  %-42s %7.2f %7.2f %7.2f %7.2f %7.2f" % (label, b.pct(50), b.pct(90), b.pct(99), b.max,
                                                                  b.mean))
        print("  target: Python primer p99 <= %.0f ms" % TARGET_PY_P99_MS)
        if stale:
            print("  STALE after the run: %s" % ", ".join(stale))
        print(flush=True)
        ok = sp.pct(99) <= TARGET_PY_P99_MS and not kinds["py"]["timeouts"]
        self.verdicts.append(("save() -> fresh, Python primer p99", "%.2f ms" % sp.pct(99),
                              "<= %.0f ms" % TARGET_PY_P99_MS, ok))
        self.verdicts.append(("save() -> fresh, SQL primer p99", "%.2f ms (p50 %.2f)" % (ss.pct(99), ss.pct(50)),
                              "(info)", None))
        self.verdicts.append(("products equal a recompute after the run", "yes" if not stale else "NO: " +
                              ", ".join(stale), "yes", not stale))

    def log_times(self, offset):
        """From the daemon's log after ``offset`` (only with --log-level debug): the daemon's batch
        times and kck_worker's request times (its stderr goes to the same log), in ms."""
        import re

        batch, worker = [], {}
        try:
            with open(str(self.daemon_log), "rb") as f:
                f.seek(offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return batch, []
        for line in text.splitlines():
            m = re.search(r"debug batch: .* in ([0-9.]+) ms", line)
            if m:
                batch.append(float(m.group(1)))
                continue
            m = re.search(r"kck_worker: (\d+) in ([0-9.]+) ms", line)
            if m:
                worker[int(m.group(1))] = float(m.group(2))  # the line may appear twice
        return batch, list(worker.values())

    # -- 3. keys rule over a bulk UPDATE -------------------------------------

    def bench_keys(self):
        from django.db import connection

        from kck import Cache, registry
        from store.models import Author, Book, Review

        cache = Cache.get_instance()
        primer = registry().get("author_stats")
        keys = ["author_stats/%d" % a for a in Author.objects.values_list("id", flat=True)]
        for k in keys:
            cache.get(k)
        books = list(Book.objects.order_by("id").values_list("id", "author_id"))
        half = [b for b, _ in books[:len(books) // 2]]
        target = next(b for b, a in books[len(books) // 2:] if a != books[0][1])
        ids = list(Review.objects.filter(book_id__in=half).values_list("id", flat=True))
        origin = dict(Review.objects.filter(id__in=ids).values_list("id", "book_id"))
        times = []
        for i in range(self.args.moves):
            t0 = time.perf_counter()
            if i % 2 == 0:
                Review.objects.filter(id__in=ids).update(book_id=target)
            else:
                with connection.cursor() as cur:  # back where each came from, in one statement
                    cur.execute("UPDATE store_review r SET book_id = o.b FROM unnest(%s::bigint[], %s::bigint[]) "
                                "AS o (id, b) WHERE r.id = o.id", [list(origin), list(origin.values())])
            wait_drained(connection)
            times.append((time.perf_counter() - t0) * 1000)
        stale = [k for k in keys if cache.get(k) != primer.compute(k)]
        st = Stats(times)
        print("3. Keys rule over a bulk UPDATE: %d reviews moved per statement, %d moves" % (len(ids), len(times)))
        print("   UPDATE returned -> outbox empty: p50 %.1f ms, min %.1f, max %.1f; %.1f ms per 1000 rows moved (p50)"
              % (st.pct(50), min(times), st.max, st.pct(50) * 1000 / max(len(ids), 1)))
        print(flush=True)
        self.verdicts.append(("bulk move -> drained, ms per 1000 rows", "%.1f ms (p50 of %d)" % (
            st.pct(50) * 1000 / max(len(ids), 1), len(times)), "(info)", None))
        self.verdicts.append(("author_stats equal a recompute after the moves", "yes" if not stale else "NO: " +
                              ", ".join(stale), "yes", not stale))

    # -- 4. Python augments of one key in one batch -------------------------

    def bench_augment(self):
        from django.db import connection, transaction

        from kck import Cache, registry
        from store.models import Book, Review

        cache = Cache.get_instance()
        primer = registry().get("author_stats")
        author = Book.objects.order_by("id").values_list("author_id", flat=True).first()
        books = list(Book.objects.filter(author_id=author).values_list("id", flat=True))
        key = "author_stats/%d" % author
        cache.get(key)
        times = []
        for i in range(self.args.moves):
            with transaction.atomic():
                for j in range(60):
                    Review.objects.create(book_id=books[j % len(books)], rating=1 + (i + j) % 5)
            t0 = time.perf_counter()
            wait_drained(connection)
            times.append((time.perf_counter() - t0) * 1000)
        fresh = cache.get(key) == primer.compute(key)
        st = Stats(times)
        print("4. Python augments: 60 changes of %s in one transaction, %d transactions" % (key, len(times)))
        print("   COMMIT returned -> outbox empty: p50 %.1f ms, min %.1f, max %.1f" % (st.pct(50), min(times), st.max))
        print(flush=True)
        self.verdicts.append(("60 augments of one key -> drained", "%.1f ms (p50 of %d)" % (st.pct(50), len(times)),
                              "(info)", None))
        self.verdicts.append(("author_stats equal a recompute after the augments", "yes" if fresh else "NO",
                              "yes", fresh))

    # -- summary / cleanup ----------------------------------------------------

    def summary(self):
        print("Summary")
        for what, value, target, ok in self.verdicts:
            mark = "info" if ok is None else ("ok" if ok else "MISSED")
            print("  %-44s %-34s %-10s %s" % (what, value, target, mark))
        print("  total %.1f s" % (time.perf_counter() - self.t_start))
        sys.stdout.flush()

    def cleanup(self):
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if self.fresh is not None:
            try:
                self.fresh.close()
            except Exception:
                pass
        if self.daemon is not None:
            rc = self.daemon.stop()
            if self.args.keep_log:
                shutil.copy(str(self.daemon_log), self.args.keep_log)
            if rc not in (0, None):
                print("kck listen exited with %s" % rc, file=sys.stderr)
        self.cluster.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a few seconds)")
    ap.add_argument("--gets", type=int, help="timed reads per cache (default 5000, --quick 1000)")
    ap.add_argument("--saves", type=int, help="timed saves per primer (default 300, --quick 60)")
    ap.add_argument("--authors", type=int, default=20)
    ap.add_argument("--books", type=int, default=10, help="books per author")
    ap.add_argument("--reviews", type=int, default=2, help="reviews per book")
    ap.add_argument("--breakdown", action="store_true",
                    help="also time parts of Cache.get and narrower what-if hit paths (uses kck internals)")
    ap.add_argument("--log-level", default="info", help="kck listen --log-level (debug adds batch times)")
    ap.add_argument("--keep-log", metavar="FILE", help="copy the daemon's log here at the end")
    ap.add_argument("--misses", type=int, default=20, help="timed misses per primer in section 1 (default 20)")
    ap.add_argument("--moves", type=int, help="rounds of sections 3 and 4 (default 20, --quick 6)")
    ap.add_argument("--only", default="get,fresh,keys,augment",
                    help="sections to run: get, fresh, keys, augment (default all)")
    args = ap.parse_args()
    args.moves = args.moves or (6 if args.quick else 20)
    sections = set(args.only.split(","))
    if not sections <= {"get", "fresh", "keys", "augment"}:
        ap.error("--only: sections are get, fresh, keys and augment, got %r" % args.only)
    args.gets = args.gets or (1000 if args.quick else 5000)
    args.get_warmup = 200 if args.quick else 500
    args.saves = args.saves or (60 if args.quick else 300)
    args.save_warmup = 10 if args.quick else 30

    bench = Bench(args)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        bench.setup()
        bench.header()
        bench.start_daemon()
        if "get" in sections:
            bench.bench_get()
        if "fresh" in sections:
            bench.bench_fresh()
        if "keys" in sections:
            bench.bench_keys()
        if "augment" in sections:
            bench.bench_augment()
        bench.summary()
    finally:
        bench.cleanup()
    return 0 if all(ok is not False for _, _, _, ok in bench.verdicts) else 3


if __name__ == "__main__":
    sys.exit(main())
