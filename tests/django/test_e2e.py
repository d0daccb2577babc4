"""End to end: Django writes, a real `kck listen --python-worker` keeps products fresh.

Skipped when the kck binary does not support `listen --python-worker` yet.
"""

import os
import signal
import subprocess
import tempfile
import time

import pytest
from django.db import connection, transaction

from conftest import (BINARY_LISTENS, CONNINFO, KCK_BINARY, LISTEN_HELP, MANAGE, NO_LISTEN_REASON, PYTHON,
                      _help, query, wait_for)
from kck import Cache, ProductDoesNotExist, registry
from store.models import Author, Book, Review

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not BINARY_LISTENS, reason=NO_LISTEN_REASON)]

WAIT = 10.0  # seconds a change may take to show
WORKER_TIMEOUT_S = 2
WORKER_TIMEOUT = "%ds" % WORKER_TIMEOUT_S
HAS_WORKER_TIMEOUT = "--worker-timeout" in LISTEN_HELP


class Daemon:
    def __init__(self):
        self.log = tempfile.NamedTemporaryFile(prefix="kck-listen-", suffix=".log", delete=False)
        self.proc = None

    def argv(self):
        argv = [KCK_BINARY, "--db", CONNINFO]
        if "--log-level" in _help():
            argv += ["--log-level", "info"]
        argv += ["listen", "--python-worker", "exec %s %s kck_worker" % (PYTHON, MANAGE)]
        if HAS_WORKER_TIMEOUT:
            argv += ["--worker-timeout", WORKER_TIMEOUT]
        return argv

    def log_text(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()

    def start(self):
        mark = len(self.log_text())
        env = dict(os.environ, KCK_TEST_ALLOW_CRASH="1")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env=env, start_new_session=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "kck listen exited:\n" + self.log_text()
            text = self.log_text()[mark:]
            if "python worker: ready" in text and "listening" in text:
                return
            time.sleep(0.05)
        # Readiness lines not recognized: go on; the tests below say what does not work.

    def kill9(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # the daemon and its worker, like a crash of the host service
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode if self.proc else None


@pytest.fixture(scope="module")
def daemon(pg_cluster):
    from kck.sync import sync

    sync(binary=KCK_BINARY)
    with connection.cursor() as cur:
        cur.execute("TRUNCATE kck.cache")
        cur.execute("TRUNCATE kck.changes")
    d = Daemon()
    d.start()
    yield d
    d.stop()
    if os.environ.get("KCK_TEST_KEEP_LOGS") != "1":
        os.unlink(d.log.name)


@pytest.fixture
def cache(daemon):
    assert daemon.proc.poll() is None, "kck listen died:\n" + daemon.log_text()[-3000:]
    return Cache.get_instance()


def eventually(cache, key, expected, what=None, timeout=WAIT):
    return wait_for(lambda: cache.get(key) == expected, timeout=timeout, what=what or "%s == %r" % (key, expected))


def drained():
    """Waits until the daemon has consumed every change in the outbox."""
    wait_for(lambda: query("SELECT count(*) FROM kck.changes")[0][0] == 0, timeout=WAIT, what="outbox drained")


def titles(author):
    return [{"id": b.id, "title": b.title} for b in Book.objects.filter(author=author).order_by("id")]


def version(key):
    r = query("SELECT version FROM kck.cache WHERE key = %s", [key])
    return r[0][0] if r else None


def test_create_save_delete(cache):
    a = Author.objects.create(name="e2e create")
    key = "title_list/%d" % a.id
    assert cache.get(key) == []
    b = Book.objects.create(author=a, title="One")
    eventually(cache, key, [{"id": b.id, "title": "One"}])
    b.title = "Uno"
    b.save()
    eventually(cache, key, [{"id": b.id, "title": "Uno"}])
    b.delete()
    eventually(cache, key, [])


def test_deleted_row_removes_its_product(cache):
    b = Book.objects.create(author=Author.objects.create(name="e2e gone"), title="Gone soon")
    key = "book_title/%d" % b.id
    assert cache.get(key) == "Gone soon"
    b.delete()
    wait_for(lambda: not query("SELECT 1 FROM kck.cache WHERE key = %s", [key]), timeout=WAIT,
             what="%s removed" % key)
    drained()
    with pytest.raises(ProductDoesNotExist):
        cache.get(key)


def test_queryset_update_raw_sql_and_moves(cache):
    a, a2 = Author.objects.create(name="e2e qs"), Author.objects.create(name="e2e qs 2")
    b1, b2 = Book.objects.create(author=a, title="x"), Book.objects.create(author=a, title="y")
    k, k2 = "title_list/%d" % a.id, "title_list/%d" % a2.id
    assert cache.get(k) == titles(a) and cache.get(k2) == []
    Book.objects.filter(author=a).update(title="Same")
    eventually(cache, k, [{"id": b1.id, "title": "Same"}, {"id": b2.id, "title": "Same"}])
    with connection.cursor() as cur:
        cur.execute("UPDATE store_book SET title = %s WHERE id = %s", ["Raw", b1.id])
    eventually(cache, k, [{"id": b1.id, "title": "Raw"}, {"id": b2.id, "title": "Same"}])
    Book.objects.filter(id=b2.id).update(author=a2)  # old and new rows both count
    eventually(cache, k, [{"id": b1.id, "title": "Raw"}])
    eventually(cache, k2, [{"id": b2.id, "title": "Same"}])


def test_bulk_statements(cache):
    a = Author.objects.create(name="e2e bulk")
    Book.objects.create(author=a, title="first")
    k = "title_list/%d" % a.id
    assert len(cache.get(k)) == 1
    Book.objects.bulk_create(Book(author=a, title="b%d" % i) for i in range(150))  # one statement, bulk capture
    wait_for(lambda: len(cache.get(k)) == 151, timeout=WAIT, what="151 titles")
    Book.objects.filter(author=a).update(title="B")
    wait_for(lambda: {t["title"] for t in cache.get(k)} == {"B"}, timeout=WAIT, what="all titles B")


def test_keys_rule_over_many_row_pairs(cache):
    """A Python keys rule for a batch of many row pairs (one worker call per 500 pairs):
    150 single-row INSERTs in one transaction, a 120-row bulk INSERT and a 75-row UPDATE
    that moves reviews from one author's book to another's."""
    authors = [Author.objects.create(name="e2e pairs %d" % i) for i in range(3)]
    books = [Book.objects.create(author=a, title="p") for a in authors]
    primer = registry().get("author_stats")
    keys = ["author_stats/%d" % a.id for a in authors]
    for k in keys:
        assert cache.get(k)["reviews"] == 0
    with transaction.atomic():
        for i in range(150):
            Review.objects.create(book=books[i % 2], rating=1 + i % 5)
    Review.objects.bulk_create(Review(book=books[2], rating=3) for _ in range(120))
    assert Review.objects.filter(book=books[0]).update(book=books[2]) == 75
    drained()
    for k in keys:
        wait_for(lambda: cache.get(k) == primer.compute(k), timeout=WAIT, what="%s == its recompute" % k)
    assert [cache.get(k)["reviews"] for k in keys] == [0, 75, 195]


def test_product_of_a_product(cache):
    a = Author.objects.create(name="e2e cascade")
    key = "title_count/%d" % a.id
    assert cache.get(key) == 0
    Book.objects.create(author=a, title="one")
    eventually(cache, "title_list/%d" % a.id, titles(a))
    eventually(cache, key, 1)
    Book.objects.create(author=a, title="two")
    eventually(cache, key, 2)


def test_rollback_changes_nothing(cache):
    a, sentinel = Author.objects.create(name="e2e rollback"), Author.objects.create(name="e2e sentinel")
    Book.objects.create(author=a, title="kept")
    k, ks = "title_list/%d" % a.id, "title_list/%d" % sentinel.id
    before = cache.get(k)
    assert cache.get(ks) == []
    drained()  # the insert above may still recompute k once
    v = version(k)
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            Book.objects.create(author=a, title="ghost")
            Book.objects.filter(author=a, title="kept").update(title="changed")
            raise RuntimeError("roll back")
    b = Book.objects.create(author=sentinel, title="after")
    eventually(cache, ks, [{"id": b.id, "title": "after"}])  # the daemon got past the rollback
    assert cache.get(k) == before and version(k) == v


def test_augment_review_changes(cache):
    a = Author.objects.create(name="e2e augment")
    b = Book.objects.create(author=a, title="t")
    key = "author_stats/%d" % a.id
    primer = registry().get("author_stats")
    assert cache.get(key) == primer.compute(key)
    r1 = Review.objects.create(book=b, rating=4)
    Review.objects.create(book=b, rating=2)
    wait_for(lambda: cache.get(key)["reviews"] == 2, timeout=WAIT, what="2 reviews")
    assert cache.get(key) == primer.compute(key)
    r1.rating = 5
    r1.save()
    wait_for(lambda: cache.get(key)["rating_total"] == 7, timeout=WAIT, what="rating total 7")
    Book.objects.create(author=a, title="second")
    wait_for(lambda: cache.get(key)["books"] == 2, timeout=WAIT, what="2 books")
    assert cache.get(key) == primer.compute(key)
    rc = "review_count/%d" % b.id
    assert cache.get(rc) == 2
    r1.delete()
    eventually(cache, rc, 1)
    wait_for(lambda: cache.get(key) == primer.compute(key), timeout=WAIT, what="stats after delete")


def test_augment_exactly_once_across_daemon_kill(cache, daemon):
    a = Author.objects.create(name="e2e kill")
    b = Book.objects.create(author=a, title="t")
    key, rc = "author_stats/%d" % a.id, "review_count/%d" % b.id
    assert cache.get(key)["reviews"] == 0 and cache.get(rc) == 0
    for i in range(30):
        Review.objects.create(book=b, rating=1 + i % 5)
        if i == 10:
            daemon.kill9()
        if i == 20:
            daemon.start()
    # The killed daemon's claim is released once its backends are gone
    # (within about a second); every change is then applied exactly once.
    wait_for(lambda: query("SELECT count(*) FROM kck.changes WHERE tbl = 'public.store_review'") == [(0,)],
             timeout=2 * WAIT, what="the outbox drained")
    eventually(cache, rc, 30, timeout=WAIT)
    primer = registry().get("author_stats")
    wait_for(lambda: cache.get(key) == primer.compute(key), timeout=WAIT, what="stats == recompute")
    assert cache.get(key)["reviews"] == 30


def test_primer_that_raises(cache):
    a = Author.objects.create(name="e2e flaky")
    b = Book.objects.create(author=a, title="ok")
    key = "flaky_titles/%d" % a.id
    assert cache.get(key) == ["ok"]
    b.title = "FAIL"
    b.save()
    err = wait_for(lambda: query("SELECT error FROM kck.cache WHERE key = %s", [key])[0][0], timeout=WAIT,
                   what="error recorded")
    assert "a book is titled FAIL" in err
    assert cache.get(key) == ["ok"]  # the last good value is kept
    b.title = "fine"
    b.save()
    eventually(cache, key, ["fine"])
    assert query("SELECT error FROM kck.cache WHERE key = %s", [key]) == [(None,)]


def _break_worker(cache, daemon, primer, marker, expect_error):
    """Makes the worker hang or exit on a product's recompute; returns (book, key, ready count before)."""
    a = Author.objects.create(name="e2e %s" % marker)
    b = Book.objects.create(author=a, title="ok")
    key = "%s/%d" % (primer, a.id)
    assert cache.get(key) == ["ok"]
    ready = daemon.log_text().count("python worker: ready")
    b.title = marker
    b.save()
    # The daemon records the error after its last try (listener/executor.h: 3 for a hang, 5
    # for a crash), each a rollback pause of 1 s, a worker restart (a Django start-up: seconds
    # on a loaded machine) and, for a hang, the worker timeout: about 8 s idle, and more than
    # 10 s with the other suites running beside this one.
    err = wait_for(lambda: query("SELECT error FROM kck.cache WHERE key = %s", [key])[0][0],
                   timeout=5 * (WORKER_TIMEOUT_S + 1 + 3), what="error recorded for %s" % key)
    assert any(e in err for e in expect_error), err
    return a, b, key, ready


def _worker_back(daemon, ready):
    wait_for(lambda: daemon.log_text().count("python worker: ready") > ready, timeout=WAIT,
             what="the worker restarted")


needs_timeout = pytest.mark.skipif(not HAS_WORKER_TIMEOUT, reason="kck listen has no --worker-timeout")


@needs_timeout
def test_worker_that_hangs_is_killed_and_restarted(cache, daemon):
    a, b, key, ready = _break_worker(cache, daemon, "sleepy_titles", "HANG", ["timed out", "killed"])
    _worker_back(daemon, ready)
    b.title = "awake"
    b.save()
    eventually(cache, key, ["awake"])
    eventually(cache, "title_list/%d" % a.id, [{"id": b.id, "title": "awake"}])
    assert daemon.proc.poll() is None


@needs_timeout
def test_change_during_worker_restart_after_hang_is_not_lost(cache, daemon):
    a, b, key, ready = _break_worker(cache, daemon, "sleepy_titles", "HANG", ["timed out", "killed"])
    b.title = "awake"
    b.save()
    try:
        eventually(cache, key, ["awake"], timeout=5)
    finally:
        _worker_back(daemon, ready)


def test_worker_that_exits_is_restarted(cache, daemon):
    a, b, key, ready = _break_worker(cache, daemon, "crashy_titles", "CRASH", ["exited", "not running"])
    _worker_back(daemon, ready)
    b.title = "back"
    b.save()
    eventually(cache, key, ["back"])
    eventually(cache, "title_list/%d" % a.id, [{"id": b.id, "title": "back"}])
    assert daemon.proc.poll() is None


def test_change_during_worker_restart_after_exit_is_not_lost(cache, daemon):
    a, b, key, ready = _break_worker(cache, daemon, "crashy_titles", "CRASH", ["exited", "not running"])
    b.title = "back"
    b.save()
    try:
        eventually(cache, key, ["back"], timeout=5)
    finally:
        _worker_back(daemon, ready)


def test_queued_refresh_and_soft_expiry(cache):
    cache.set("echo/queued", "stale")
    cache.refresh("echo/queued")
    wait_for(lambda: isinstance(cache.get("echo/queued"), dict), timeout=WAIT, what="daemon refreshed echo/queued")
    assert cache.get("echo/queued")["text"] == "queued"
    assert cache.get("expiring/e2e") == 1
    v = version("expiring/e2e")
    query("UPDATE kck.cache SET soft_expire = now() - interval '1 second' WHERE key = 'expiring/e2e'")
    assert cache.get("expiring/e2e") == 1  # served, and queued
    # The same value: the refresh renews the expiry and keeps the version.
    renewed = "SELECT soft_expire > now() FROM kck.cache WHERE key = 'expiring/e2e'"
    wait_for(lambda: query(renewed)[0][0], timeout=WAIT, what="background refresh")
    assert version("expiring/e2e") == v


def test_zz_sigterm_exits_cleanly(daemon):
    assert daemon.stop() == 0, daemon.log_text()[-3000:]
