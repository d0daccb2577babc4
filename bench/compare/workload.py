#!/usr/bin/python3
"""The load of bench/compare, one role per process, each a Django application on the bench's
database (the bookstore app in bench/compare/bookstore):

    workload.py ROLE --host DIR --db NAME --handlers none|cache|matview --read kck|cache|matview|compute
                [--kck PATH] [--authors FIRST-LAST] [--threads N] [--seed S]

  setup   creates Django's cache table (createcachetable) and exits.
  writer  the stream of changes: Book/Review inserts, updates and deletes through the ORM, on the
          authors of --authors, at a fixed rate over --threads threads (each owns every N-th author).
  reader  reads title_list/<a> and author_stats/<a> of random authors at a fixed rate, timing each.
  prober  staleness: writes one change at a time to its own authors and polls the product from a
          second thread until it shows the change; staleness = the first read that sees it
          returned - the change's COMMIT acknowledged.

Protocol: the role prints one JSON line {"ready": true, ...} when set up, then reads JSON commands
from stdin, one a line, answering each with one JSON line: {"cmd": "run", "seconds": S, "rate": R}
(rate 0: as fast as it can), and for the reader {"cmd": "prime"} ((c): every product computed into
the cache) and {"cmd": "verify"} (every product of every author read and compared with a fresh
compute); {"cmd": "exit"} ends it.
"""
import argparse
import json
import os
import queue
import random
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent.parent / "django")]

# Stream mix: (operation, weight). Books are inserted and deleted alike; review inserts outnumber
# review deletes by what book deletes take with them (about 4 reviews a book), so the data keeps its size.
MIX = (("book_insert", 5), ("book_delete", 5), ("title_update", 30),
       ("review_insert", 30), ("review_update", 20), ("review_delete", 10))
MIN_BOOKS = 20          # an author keeps at least this many books
PROBE_PAUSE_S = 0.05    # between two probes
PROBE_TIMEOUT_S = 10.0  # a probe not seen by then counts as this long
POLL_PAUSE_S = 0.0002   # between two reads of a probe's product

Book = Review = None    # the models, bound by setup_django()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("role", choices=("setup", "writer", "reader", "prober"))
    p.add_argument("--host", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--handlers", default="none", choices=("none", "cache", "matview"))
    p.add_argument("--read", default="compute", choices=("kck", "cache", "matview", "compute"))
    p.add_argument("--kck", default="kck")
    p.add_argument("--authors", default="1-1")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args()


def setup_django(a):
    import django
    from django.conf import settings

    apps = ["bookstore.apps.BookstoreConfig"] + (["kck"] if a.read == "kck" else [])
    settings.configure(
        INSTALLED_APPS=apps, USE_TZ=True, TIME_ZONE="UTC",
        DATABASES={"default": {"ENGINE": "django.db.backends.postgresql", "NAME": a.db, "USER": "postgres",
                               "HOST": a.host, "PORT": "5432"}},
        # TIMEOUT None: products never expire; MAX_ENTRIES far above the 400 keys (the default 300
        # would cull a third of them on every set).
        CACHES={"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                            "LOCATION": "compare_cache", "TIMEOUT": None,
                            "OPTIONS": {"MAX_ENTRIES": 1000000}}},
        KCK={"SYNC_ON_MIGRATE": False, "BINARY": a.kck})
    django.setup()
    global Book, Review
    from bookstore import handlers
    from bookstore.models import Book, Review
    handlers.connect(a.handlers)


def author_range(text):
    first, last = (int(x) for x in text.split("-"))
    return list(range(first, last + 1))


def backend_pid():
    from django.db import connection
    with connection.cursor() as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def percentiles(values):
    """n, p50, p90, p99, max and mean (nearest rank) of a list of numbers."""
    v = sorted(values)
    if not v:
        return {"n": 0}
    at = lambda p: v[min(len(v) - 1, max(0, -(-p * len(v) // 100) - 1))]  # noqa: E731
    return {"n": len(v), "p50": at(50), "p90": at(90), "p99": at(99), "max": v[-1], "mean": sum(v) / len(v)}


def schedule(start, rate, first, step):
    """Start times of slots first, first + step, ... at `rate` a second (rate 0: no pacing)."""
    k = first
    while True:
        yield start + k / rate if rate else 0.0
        k += step


def wait_until(t):
    left = t - time.perf_counter()
    if left > 0:
        time.sleep(left)


# --------------------------------------------------------------------------- writer

class AuthorState:
    """The ids of one author's books and of their reviews, as this process last wrote them."""

    def __init__(self):
        self.reviews = {}  # book id -> [review ids]

    def random_book(self, rng):
        return rng.choice(list(self.reviews))

    def random_review(self, rng):
        books = [b for b, r in self.reviews.items() if r]
        if not books:
            return None, None
        book = rng.choice(books)
        return book, rng.choice(self.reviews[book])


def load_state(authors):
    from django.db import connection
    state = {a: AuthorState() for a in authors}
    with connection.cursor() as cur:
        cur.execute("SELECT id, author_id FROM store_book WHERE author_id = ANY(%s)", [authors])
        for book, author in cur.fetchall():
            state[author].reviews[book] = []
        cur.execute("SELECT r.id, r.book_id, b.author_id FROM store_review r JOIN store_book b ON b.id = r.book_id "
                    "WHERE b.author_id = ANY(%s)", [authors])
        for review, book, author in cur.fetchall():
            state[author].reviews[book].append(review)
    return state


class Stream:
    """Applies MIX operations through the ORM; one instance per thread (its own authors)."""

    def __init__(self, state, seed):
        self.state = state
        self.authors = sorted(state)
        self.rng = random.Random(seed)
        ops, weights = zip(*MIX)
        self.ops, self.weights = ops, weights

    def one(self):
        """One change of a random author; returns the operation's name."""
        author = self.rng.choice(self.authors)
        op = self.rng.choices(self.ops, self.weights)[0]
        return getattr(self, op)(author, self.state[author])

    def book_insert(self, author, s):
        book = Book(author_id=author, title="book %d" % self.rng.randrange(10 ** 9))
        book.save()
        s.reviews[book.id] = []
        return "book_insert"

    def book_delete(self, author, s):
        if len(s.reviews) <= MIN_BOOKS:
            return self.book_insert(author, s)
        book = s.random_book(self.rng)
        Book(id=book, author_id=author).delete()  # the ORM deletes its reviews first (CASCADE)
        del s.reviews[book]
        return "book_delete"

    def title_update(self, author, s):
        Book(id=s.random_book(self.rng), author_id=author,
             title="book %d" % self.rng.randrange(10 ** 9)).save(update_fields=["title"])
        return "title_update"

    def review_insert(self, author, s):
        book = s.random_book(self.rng)
        review = Review(book_id=book, rating=self.rng.randint(1, 5), body="")
        review.save()
        s.reviews[book].append(review.id)
        return "review_insert"

    def review_update(self, author, s):
        book, review = s.random_review(self.rng)
        if review is None:
            return self.review_insert(author, s)
        Review(id=review, book_id=book, rating=self.rng.randint(1, 5)).save(update_fields=["rating"])
        return "review_update"

    def review_delete(self, author, s):
        book, review = s.random_review(self.rng)
        if review is None:
            return self.review_insert(author, s)
        Review(id=review, book_id=book).delete()
        s.reviews[book].remove(review)
        return "review_delete"


class Writer:
    def __init__(self, a):
        self.threads = a.threads
        authors = author_range(a.authors)
        state = load_state(authors)
        self.streams = [Stream({x: state[x] for x in authors[i::a.threads]}, a.seed * 100 + i)
                        for i in range(a.threads)]

    def ready(self):
        return {"books": sum(len(s.reviews) for st in self.streams for s in st.state.values())}

    def run(self, seconds, rate):
        start = time.perf_counter() + 0.01
        end = start + seconds
        results = [None] * self.threads
        threads = [threading.Thread(target=self._loop, args=(i, start, end, rate, results))
                   for i in range(self.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        latencies = [x for r in results for x in r["latency_ms"]]
        ops = {}
        for r in results:
            for k, v in r["ops"].items():
                ops[k] = ops.get(k, 0) + v
        elapsed = max(max(r["last"] for r in results) - start, 1e-6)  # to the last change written
        return {"changes": len(latencies), "elapsed_s": elapsed, "tps": len(latencies) / elapsed,
                "latency_ms": percentiles(latencies), "ops": ops,
                "errors": sum(r["errors"] for r in results),
                "first_error": next((r["first_error"] for r in results if r["first_error"]), None),
                "behind_s": max(r["behind_s"] for r in results)}

    def _loop(self, i, start, end, rate, results):
        from django.db import connection
        stream = self.streams[i]
        out = {"latency_ms": [], "ops": {}, "errors": 0, "first_error": None, "behind_s": 0.0, "last": start}
        for slot in schedule(start, rate, i, self.threads):
            if slot >= end or time.perf_counter() >= end:
                break
            wait_until(slot)
            t = time.perf_counter()
            try:
                op = stream.one()
            except Exception as e:  # noqa: BLE001 (a failed write is counted and reported, the stream goes on)
                out["errors"] += 1
                out["first_error"] = out["first_error"] or "%s: %s" % (type(e).__name__, e)
                continue
            done = time.perf_counter()
            out["latency_ms"].append((done - t) * 1000)
            out["ops"][op] = out["ops"].get(op, 0) + 1
            out["last"] = done
            if rate:
                out["behind_s"] = max(out["behind_s"], t - slot)
        connection.close()
        results[i] = out


# --------------------------------------------------------------------------- reader

class Reader:
    def __init__(self, a):
        from bookstore.readers import read_function
        self.get = read_function(a.read)
        self.authors = author_range(a.authors)
        self.rng = random.Random(a.seed)
        self.pid = backend_pid()

    def ready(self):
        return {"backend_pid": self.pid}

    def run(self, seconds, rate):
        from bookstore.products import NAMES
        start = time.perf_counter() + 0.01
        end = start + seconds
        latencies, misses = [], 0
        for k, slot in enumerate(schedule(start, rate, 0, 1)):
            if slot >= end or time.perf_counter() >= end:
                break
            wait_until(slot)
            name, author = NAMES[k % 2], self.rng.choice(self.authors)
            t = time.perf_counter()
            value = self.get(name, author)
            latencies.append((time.perf_counter() - t) * 1000)
            misses += value is None
        return {"reads": len(latencies), "latency_ms": percentiles(latencies), "misses": misses}

    def prime(self):
        """(c): every product computed into the cache, as the signal handlers would."""
        from bookstore.handlers import recompute_into_cache
        from bookstore.products import NAMES
        for author in self.all_author_ids():
            for name in NAMES:
                recompute_into_cache((name, author))
        return {"primed": True}

    @staticmethod
    def all_author_ids():
        from django.db import connection
        with connection.cursor() as cur:
            cur.execute("SELECT id FROM store_author ORDER BY id")
            return [r[0] for r in cur.fetchall()]

    def verify(self):
        """Every product of every author as this configuration serves it, against a fresh compute."""
        from bookstore.products import NAMES
        from bookstore.readers import compute
        authors = self.all_author_ids()
        wrong = [(n, a) for a in authors for n in NAMES if self.get(n, a) != compute(n, a)]
        return {"checked": len(authors) * len(NAMES), "wrong": len(wrong),
                "wrong_keys": ["%s/%d" % w for w in wrong[:10]]}


# --------------------------------------------------------------------------- prober

class CommitClock:
    """Calls `on_commit(t)` once, when armed, at the first commit acknowledged on this thread's
    Django connection: a statement outside a transaction block returning (autocommit), or
    COMMIT returning. The signal handlers' own work comes after it."""

    def __init__(self, on_commit):
        from django.db import connection
        self.on_commit = on_commit
        self.armed = False
        self.conn = connection
        connection.ensure_connection()
        original = connection._commit

        def timed_commit():
            original()
            self._fire()
        connection._commit = timed_commit

    def _fire(self):
        if self.armed:
            self.armed = False
            self.on_commit(time.perf_counter())

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not self.conn.in_atomic_block:
            self._fire()
        return result


class ProbeAuthor:
    """One author only the prober writes: its first book gets the probe reviews, and the probe
    book is inserted, renamed and deleted, so every expected state is known exactly."""

    def __init__(self, author_id):
        from django.db import connection
        self.id = author_id
        with connection.cursor() as cur:
            cur.execute("SELECT min(id) FROM store_book WHERE author_id = %s", [author_id])
            self.base_book = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM store_review r JOIN store_book b ON b.id = r.book_id "
                        "WHERE b.author_id = %s", [author_id])
            self.reviews = cur.fetchone()[0]
        self.book = self.review = None


class Prober:
    KINDS = ("book_insert", "title_update", "review_insert", "review_delete", "book_delete")

    def __init__(self, a):
        from django.db import connection
        self.authors = [ProbeAuthor(x) for x in author_range(a.authors)]
        self.read_mode = a.read
        self.token = "%d.%d" % (os.getpid(), time.time())  # probe titles differ from every earlier run's
        self.seq = 0
        self.todo = queue.Queue()   # (t0, product, author, predicate) for the poll thread
        self.seen = queue.Queue()   # staleness in ms (None: not seen in PROBE_TIMEOUT_S)
        self.clock = CommitClock(self.todo_at)
        connection.execute_wrappers.append(self.clock)  # for the life of the process
        self.pending = None
        self.writer_pid = backend_pid()
        started = queue.Queue()
        threading.Thread(target=self._poll_loop, args=(started,), daemon=True).start()
        self.poll_pid = started.get()

    def ready(self):
        return {"backend_pids": [self.writer_pid, self.poll_pid], "poll_backend_pid": self.poll_pid}

    def todo_at(self, t0):
        self.todo.put((t0,) + self.pending)

    def run(self, seconds, rate):
        """One probe after another, PROBE_PAUSE_S apart, for `seconds` (rate is not used)."""
        end = time.perf_counter() + seconds
        probes = []
        while time.perf_counter() < end:
            author = self.authors[self.seq % len(self.authors)]
            kind = self.KINDS[(self.seq // len(self.authors)) % len(self.KINDS)]
            self.seq += 1
            t = time.perf_counter()
            self.clock.armed = True
            getattr(self, kind)(author)
            write_ms = (time.perf_counter() - t) * 1000
            t0, staleness = self.seen.get(timeout=2 * PROBE_TIMEOUT_S)  # Empty: the clock saw no commit
            probes.append({"kind": kind, "write_ms": write_ms, "commit_ms": (t0 - t) * 1000,
                           "staleness_ms": staleness})
            time.sleep(PROBE_PAUSE_S)
        stale = [p["staleness_ms"] if p["staleness_ms"] is not None else PROBE_TIMEOUT_S * 1000 for p in probes]
        by_kind = {k: percentiles([s for p, s in zip(probes, stale) if p["kind"] == k]) for k in self.KINDS}
        return {"probes": len(probes), "staleness_ms": percentiles(stale), "by_kind": by_kind,
                "timeouts": sum(p["staleness_ms"] is None for p in probes), "each": probes}

    def expect(self, product, author, predicate):
        self.pending = (product, author.id, predicate)

    def book_insert(self, author):
        title = "probe %s.%d" % (self.token, self.seq)
        book = Book(author_id=author.id, title=title)
        self.expect("title_list", author, lambda v: any(e["title"] == title for e in v))
        book.save()
        author.book = book.id

    def title_update(self, author):
        title = "probe %s.%d" % (self.token, self.seq)
        self.expect("title_list", author, lambda v: any(e["title"] == title for e in v))
        Book(id=author.book, author_id=author.id, title=title).save(update_fields=["title"])

    def review_insert(self, author):
        author.reviews += 1
        n = author.reviews
        self.expect("author_stats", author, lambda v: v["reviews"] == n)
        review = Review(book_id=author.base_book, rating=3, body="probe")
        review.save()
        author.review = review.id

    def review_delete(self, author):
        author.reviews -= 1
        n = author.reviews
        self.expect("author_stats", author, lambda v: v["reviews"] == n)
        Review(id=author.review, book_id=author.base_book).delete()

    def book_delete(self, author):
        book = author.book
        self.expect("title_list", author, lambda v: all(e["id"] != book for e in v))
        Book(id=book, author_id=author.id).delete()

    def _poll_loop(self, started):
        from bookstore.readers import read_function
        get = read_function(self.read_mode)
        started.put(backend_pid())
        while True:
            t0, product, author, predicate = self.todo.get()
            while True:
                value = get(product, author)
                t = time.perf_counter()
                if value is not None and predicate(value):
                    self.seen.put((t0, (t - t0) * 1000))
                    break
                if t - t0 > PROBE_TIMEOUT_S:
                    self.seen.put((t0, None))
                    break
                time.sleep(POLL_PAUSE_S)


# --------------------------------------------------------------------------- main

def create_cache_table():
    from django.core.management import call_command
    call_command("createcachetable", verbosity=0)


def serve(role):
    """The command loop of a role: one JSON answer per JSON command line."""
    print(json.dumps(dict(ready=True, pid=os.getpid(), **role.ready())), flush=True)
    for line in sys.stdin:
        args = json.loads(line)
        cmd = args.pop("cmd")
        if cmd == "exit":
            break
        print(json.dumps(getattr(role, cmd)(**args)), flush=True)


def main():
    a = parse_args()
    if a.role == "prober":
        sys.setswitchinterval(0.0002)  # its poll thread must not wait 5 ms for the GIL
    setup_django(a)
    if a.role == "setup":
        create_cache_table()
        return 0
    serve({"writer": Writer, "reader": Reader, "prober": Prober}[a.role](a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
