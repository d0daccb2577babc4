"""Fixtures for tests/django: a throwaway PostgreSQL cluster and Django set up on it.

The cluster lives in a temp dir, listens on a unix socket only, runs as the postgres OS
user when the tests run as root, and is stopped and removed at the end of the session.
Django is configured at import time (kcktest_settings: the bookstore example + kcktestapp)
so that test modules can import models; nothing connects before the cluster is up.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytest_plugins = ["kck.testing.pytest_plugin"]  # the fixture kck_drain

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for _p in (ROOT / "django", ROOT / "examples" / "bookstore_django", HERE):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
PG_BIN = Path(os.environ.get("KCK_PG_BIN", "/usr/lib/postgresql/15/bin"))
KCK_BINARY = os.environ.get("KCK_BINARY") or str(ROOT / "build" / "kck")
MANAGE = HERE / "kcktest_manage.py"
AS_ROOT = os.geteuid() == 0


def _help(*args):
    """Output of `kck <args> --help`, or "" when the binary cannot run."""
    try:
        p = subprocess.run([KCK_BINARY, *args, "--help"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10, universal_newlines=True)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return p.stdout


LISTEN_HELP = _help("listen")
BINARY_INSTALLS = "--config" in _help("install")
BINARY_LISTENS = BINARY_INSTALLS and "--python-worker" in LISTEN_HELP
NO_INSTALL_REASON = "kck binary %s has no `install --config` yet" % KCK_BINARY
NO_LISTEN_REASON = "kck binary %s: `kck listen --help` does not list --python-worker yet" % KCK_BINARY

CLUSTER_DIR = Path(tempfile.mkdtemp(prefix="kck-pytest-"))
SOCKET_DIR = CLUSTER_DIR
DB_NAME = "kck_test"
OTHER_DB_NAME = DB_NAME + "_other"  # the alias 'other' (test_multidb)
CONNINFO = "host=%s port=5432 dbname=%s user=postgres" % (SOCKET_DIR, DB_NAME)

os.environ.pop("KCK_DATABASE_URL", None)
os.environ.pop("PGPASSWORD", None)
os.environ.pop("PGSERVICE", None)
os.environ.update(PGHOST=str(SOCKET_DIR), PGPORT="5432", PGUSER="postgres", PGDATABASE=DB_NAME,
                  KCK_BINARY=KCK_BINARY, DJANGO_SETTINGS_MODULE="kcktest_settings",
                  KCK_TEST_SYNC_ON_MIGRATE="1" if BINARY_INSTALLS else "0")

import django  # noqa: E402

django.setup()


def _as_postgres(argv):
    return ["runuser", "-u", "postgres", "--", *argv] if AS_ROOT else list(argv)


def _run(argv, **kw):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=kw.pop("timeout", 60), **kw)
    if p.returncode != 0:
        raise RuntimeError("%s failed (%d):\n%s" % (" ".join(map(str, argv)), p.returncode, p.stdout))
    return p.stdout


def _stop_cluster():
    data = CLUSTER_DIR / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                                     "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(CLUSTER_DIR, ignore_errors=True)


atexit.register(_stop_cluster)


def _ensure_kck_schema():
    """kck install creates the schema; while the binary cannot, apply sql/*.sql as it would."""
    import psycopg2

    with psycopg2.connect(CONNINFO) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('kck.schema_version') IS NOT NULL")
        if cur.fetchone()[0]:
            return "kck install"
        cur.execute("CREATE SCHEMA IF NOT EXISTS kck; CREATE TABLE IF NOT EXISTS kck.schema_version "
                    "(version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL "
                    "DEFAULT now())")
        for f in sorted((ROOT / "sql").glob("[0-9][0-9][0-9]_*.sql")):
            cur.execute(f.read_text())
            cur.execute("INSERT INTO kck.schema_version (version, name) VALUES (%s, %s)", [int(f.name[:3]), f.name])
    return "sql/*.sql (fallback)"


@pytest.fixture(scope="session", autouse=True)
def pg_cluster():
    """A private PostgreSQL cluster with the test database migrated and the kck schema in it."""
    data = CLUSTER_DIR / "data"
    if AS_ROOT:
        shutil.chown(CLUSTER_DIR, "postgres", "postgres")
    _run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                       "--locale", "C", "--no-sync"]))
    opts = ("-k %s -c listen_addresses='' -c port=5432 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=60" % SOCKET_DIR)
    _run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(CLUSTER_DIR / "postgres.log"),
                       "-o", opts, "-w", "-t", "30", "start"]))
    _run([str(PG_BIN / "createdb"), "-h", str(SOCKET_DIR), "-U", "postgres", DB_NAME])
    _run([str(PG_BIN / "createdb"), "-h", str(SOCKET_DIR), "-U", "postgres", OTHER_DB_NAME])
    from django.core.management import call_command
    from django.db import connections

    call_command("migrate", verbosity=0)
    how = _ensure_kck_schema()
    yield {"conninfo": CONNINFO, "socket_dir": str(SOCKET_DIR), "schema_by": how}
    connections.close_all()
    _stop_cluster()


@pytest.fixture
def db(pg_cluster):
    """Empty store tables and an empty cache before the test."""
    from django.db import connection

    from kck import Cache
    from kcktestapp.primers import COMPUTES

    with connection.cursor() as cur:
        cur.execute("TRUNCATE store_review, store_book, store_author RESTART IDENTITY")
        cur.execute("TRUNCATE kck.cache")
        cur.execute("TRUNCATE kck.changes")  # last: capture triggers record the truncates above
    COMPUTES.clear()
    Cache.get_instance()._queued.clear()
    yield connection


def install_config(tmp_path, config):
    """`kck install --config` of ``config`` (a dict) on the test database; asserts it succeeded."""
    path = tmp_path / "primers.json"
    path.write_text(json.dumps(config))
    p = subprocess.run([KCK_BINARY, "--db", CONNINFO, "install", "--config", str(path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stdout


def query(sql, params=None):
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
