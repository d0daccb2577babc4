"""Several databases: a primer belongs to one alias (declared, its models' router, else
KCK['DATABASE']). With kcktest_multidb_settings' router, kcktestapp's Note lives in 'other', so
note_count is synced, stored and kept fresh there only; every other primer stays on 'default'."""

import io
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections
from django.test import override_settings

from conftest import BINARY_LISTENS, HERE, KCK_BINARY, MANAGE, NO_LISTEN_REASON, PYTHON, wait_for
from kck import Cache, Depends, IntParameter, Primer, isolated_registry, registry
from kck.exceptions import PrimerDefinitionError
from kck.problems import all_problems
from kck.routing import kck_aliases, primer_alias
from kck.sync import build_config, sync, sync_all
from kck.testing import drain
from kck.worker import Worker
from kcktestapp.models import Note
from kcktestapp.primers import NoteOwnerPrimer, TitleListPrimer
from store.models import Book

ROUTED = dict(DATABASE_ROUTERS=["kcktest_multidb_settings.NotesRouter"],
              SETTINGS_MODULE="kcktest_multidb_settings")  # workers started by drain() route too
needs_listen = pytest.mark.skipif(not BINARY_LISTENS, reason=NO_LISTEN_REASON)


def _query(alias, sql, params=None):
    with connections[alias].cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def _primers(alias):
    return [r[0] for r in _query(alias, "SELECT name FROM kck.primers ORDER BY name")]


def _tables(alias):
    return {r[0] for r in _query(alias, "SELECT tbl FROM kck.triggers")}


def _stored(alias, key):
    return _query(alias, "SELECT value::text FROM kck.cache WHERE key = %s", [key])


@pytest.fixture(scope="module")
def two_databases(pg_cluster):
    with override_settings(**ROUTED):
        call_command("migrate", database="other", verbosity=0)  # kcktestapp_note; syncs 'other'
        sync_all(binary=KCK_BINARY)
    yield
    sync(binary=KCK_BINARY)  # note_count back on 'default' for the other test modules
    connections["other"].close()


@pytest.fixture
def routed(two_databases, db):
    with override_settings(**ROUTED):
        for alias in ("default", "other"):
            _query(alias, "TRUNCATE kcktestapp_note")
            _query(alias, "TRUNCATE kck.cache")
            _query(alias, "TRUNCATE kck.changes")
        yield


def test_the_alias_of_a_primer(routed):
    assert primer_alias(NoteOwnerPrimer) == "other" and primer_alias(TitleListPrimer) == "default"
    assert kck_aliases() == ["default", "other"]
    with override_settings(DATABASE_ROUTERS=[]):
        assert primer_alias(NoteOwnerPrimer) == "default" and kck_aliases() == ["default"]
    with isolated_registry():
        class Declared(Primer):
            key = "declared"
            parameters = [IntParameter("n")]
            depends_on = [Depends(Book, n="id")]
            database = "other"

        class Mixed(Primer):
            key = "mixed"
            parameters = [IntParameter("n")]
            depends_on = [Depends(Book, n="id"), Depends(Note, n="owner_id")]

        class Unknown(Primer):
            key = "unknown_db"
            database = "nowhere"

        assert primer_alias(Declared) == "other"
        with pytest.raises(PrimerDefinitionError, match=r"test_multidb.py: test_the_alias_of_a_primer.<locals>"
                           r".Mixed: its dependencies route to different databases "
                           r"\(Book -> 'default', Note -> 'other'\)"):
            primer_alias(Mixed)
        with pytest.raises(PrimerDefinitionError, match=r"Unknown: database = 'nowhere' is not in DATABASES"):
            primer_alias(Unknown)
        assert [p.cls for p in all_problems(registry()) if p.id == "kck.E005"] == [Mixed, Unknown]


def test_kck_sync_puts_each_primer_in_its_database_only(routed):
    assert [p["name"] for p in build_config("other")["primers"]] == ["note_count"]
    assert _primers("other") == ["note_count"]
    assert "note_count" not in _primers("default") and "title_list" in _primers("default")
    assert _tables("other") == {"public.kcktestapp_note"}
    assert "public.kcktestapp_note" not in _tables("default") and "public.store_book" in _tables("default")
    err = io.StringIO()
    call_command("kck_sync", "--database", "other", binary=KCK_BINARY, stdout=io.StringIO(), stderr=err)
    assert err.getvalue().strip() == "kck_sync: 1 primer(s) synced to database 'other'"
    err = io.StringIO()
    call_command("kck_sync", binary=KCK_BINARY, stdout=io.StringIO(), stderr=err)
    assert err.getvalue().count("synced to database") == 2 and "database 'other'" in err.getvalue()


def test_cache_reads_and_writes_the_primers_database(routed):
    cache = Cache.get_instance()
    Note.objects.create(owner_id=7)  # routed: written to 'other'
    assert _query("other", "SELECT count(*) FROM kcktestapp_note") == [(1,)]
    assert cache.alias_for("note_count/7") == "other"
    assert cache.get("note_count/7") == 1
    assert _stored("other", "note_count/7") == [("1",)] and _stored("default", "note_count/7") == []
    assert cache.get_entry("note_count/7").stored and cache.is_set("note_count/7")
    cache.set("note_count/8", 5)
    assert _stored("other", "note_count/8") == [("5",)] and cache.get("note_count/8") == 5
    assert cache.unset("note_count/8") and _stored("other", "note_count/8") == []
    assert cache.refresh("note_count/7", queued=False) == 1
    cache.refresh("note_count/7")  # queued in the primer's database
    assert _query("other", "SELECT count(*) FROM kck.changes WHERE tbl = 'kck.refresh'") == [(1,)]


def test_a_worker_serves_its_own_database_only(routed):
    assert Worker(alias="other").hello()["primers"] == ["note_count"]
    assert "note_count" not in Worker(alias="default").hello()["primers"]
    resp = Worker(alias="default").handle({"id": 1, "op": "compute", "key": "note_count/7"})
    assert resp["ok"] is False and "primer 'note_count' belongs to database 'other', not 'default'" in resp["error"]
    resp = Worker(alias="other").handle({"id": 2, "op": "compute", "key": "note_count/7"})
    assert resp["ok"] is True and resp["value"] == 0


@needs_listen
def test_a_write_on_other_reaches_its_product_through_a_daemon_for_other(routed):
    cache = Cache.get_instance()
    assert cache.get("note_count/7") == 0
    Note.objects.create(owner_id=7)
    assert _query("other", "SELECT count(*) FROM kck.changes") != [(0,)]
    drain(using="default")  # nothing of 'other' is applied there
    assert _stored("other", "note_count/7") == [("0",)]
    drain(using="other")
    assert _stored("other", "note_count/7") == [("1",)]
    assert _query("other", "SELECT count(*) FROM kck.changes") == [(0,)]
    Note.objects.create(owner_id=7)
    drain()  # every kck alias
    assert cache.get("note_count/7") == 2


@needs_listen
def test_kck_listen_for_other_starts_a_worker_for_other(routed):
    cache = Cache.get_instance()
    assert cache.get("note_count/7") == 0
    log = tempfile.NamedTemporaryFile(prefix="kck-listen-other-", suffix=".log", delete=False)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="kcktest_multidb_settings")
    proc = subprocess.Popen([PYTHON, str(MANAGE), "kck_listen", "--database", "other", "--log-level", "info"],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True)
    text = lambda: Path(log.name).read_text(errors="replace")  # noqa: E731
    try:
        wait_for(lambda: proc.poll() is None and "python worker: ready with 1 primers" in text(),
                 timeout=30, what="kck_listen --database other ready")
        argv = Path("/proc/%d/cmdline" % proc.pid).read_bytes().split(b"\0")
        assert argv[argv.index(b"--python-worker") + 1].decode().endswith("kck_worker --database other")
        assert "dbname='kck_test_other'" in argv[argv.index(b"--db") + 1].decode()
        Note.objects.create(owner_id=7)
        wait_for(lambda: _stored("other", "note_count/7") == [("1",)], what="note_count/7 refreshed")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.unlink(log.name)
    wait_for(lambda: _query("other", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kck' "
                                     "AND datname = current_database()") == [(0,)], what="the daemon gone")


@needs_listen
def test_kck_status_of_the_other_database(routed):
    Cache.get_instance().get("note_count/7")
    out = io.StringIO()
    call_command("kck_status", "--database", "other", binary=KCK_BINARY, stdout=out)
    assert "note_count" in out.getvalue() and "title_list" not in out.getvalue()


@needs_listen
def test_manage_py_test_with_two_databases(two_databases):
    env = dict(os.environ, KCK_TEST_SYNC_ON_MIGRATE="1")
    p = subprocess.run([PYTHON, str(MANAGE), "test", "kcktestapp.dj_multidb_tests", "--noinput", "-v", "2",
                        "--settings", "kcktest_multidb_settings"],
                       cwd=str(HERE), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=180, env=env)
    assert p.returncode == 0, p.stdout[-5000:]
    assert "Ran 1 test" in p.stdout and "OK" in p.stdout
    assert "Creating test database for alias 'other'" in p.stdout
