"""Testing primers: kck installed in the test database, and drain() to apply queued changes.

    from django.test import TransactionTestCase
    from kck import Cache
    from kck.testing import KckTestMixin

    class PostDetailTests(KckTestMixin, TransactionTestCase):
        def test_fresh_after_save(self):
            post = Post.objects.create(title="draft")
            Cache.get_instance().get("post_detail/%d" % post.pk)
            post.title = "final"
            post.save()
            self.kck_drain()                       # or kck.testing.drain()
            self.assertEqual(Cache.get_instance().get("post_detail/%d" % post.pk)["title"], "final")

drain() runs the daemon's own logic once: `kck listen --until-idle` against the test database,
with a `kck_worker` for Python primers, and returns when every queued change is applied. The
daemon sees committed rows only: use TransactionTestCase (pytest-django: transactional_db), not
TestCase, whose test runs in a transaction that is never committed; drain() raises DrainError
when called inside an atomic block that has written.

Several databases: install() and drain() act on every alias primers belong to
(kck.routing.kck_aliases), or on those named by ``using``; KckTestMixin on those among the test
case's ``databases``.

pytest: `pytest_plugins = ["kck.testing.pytest_plugin"]` gives the fixture `kck_drain`.
"""

import json
import os
import shlex
import subprocess
import sys

from django.db import connections

from ..exceptions import KckError
from ..routing import kck_aliases
from ..run import KckCommandError, command, listen_args, settings_env
from ..sync import sync

# Names of the databases a worker started by drain() uses instead of those in settings: the test
# runner renamed them (test_<NAME>) in this process only. Read by manage.py kck_worker.
DATABASE_NAMES_ENV = "KCK_WORKER_DATABASE_NAMES"

_installed = set()


class DrainError(KckError):
    """drain() could not apply the queued changes."""


def _aliases(using):
    if using is None:
        return kck_aliases()
    return [using] if isinstance(using, str) else list(using)


def install(using=None, binary=None):
    """kck_sync against the (test) database of each alias (default: every kck alias), once per
    process and database."""
    for alias in _aliases(using):
        name = connections[alias].settings_dict["NAME"]
        if (alias, name) not in _installed:
            sync(alias=alias, binary=binary)
            _installed.add((alias, name))


def _refuse_uncommitted_writes(alias):
    conn = connections[alias]
    if not conn.in_atomic_block:
        return
    with conn.cursor() as cur:
        cur.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
        wrote = cur.fetchone()[0]
    if wrote:
        raise DrainError("kck.testing.drain(): database %r has uncommitted writes in an atomic block "
                         "(django.test.TestCase?): the daemon cannot see them; use TransactionTestCase "
                         "(pytest-django: transactional_db)" % alias)


def worker_env():
    """The environment that makes `django-admin kck_worker` use this process's databases."""
    env = settings_env()
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    env[DATABASE_NAMES_ENV] = json.dumps({a: connections[a].settings_dict["NAME"] for a in connections})
    return env


def drain(using=None, binary=None, timeout=60):
    """Applies every queued change (`kck listen --until-idle`) of each alias (default: every kck
    alias), then returns."""
    aliases = _aliases(using)
    for alias in aliases:
        _refuse_uncommitted_writes(alias)
    for alias in aliases:
        _drain_one(alias, binary, timeout)


def _drain_one(alias, binary, timeout):
    worker = "exec %s -m django kck_worker --database %s" % (shlex.quote(sys.executable),
                                                              shlex.quote(alias))
    try:
        argv, env = command(listen_args(log_level="warn", until_idle=True, python_worker=worker),
                            alias, binary, for_daemon=True)
        env.update(worker_env())
    except KckCommandError as e:
        raise DrainError("kck.testing.drain(): %s" % e) from e
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              env=env, timeout=timeout, universal_newlines=True)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DrainError("kck.testing.drain(): kck listen --until-idle: %s" % e) from e
    if proc.returncode != 0:
        last = (proc.stdout.strip().splitlines() or ["no output"])[-1]
        raise DrainError("kck.testing.drain(): database %r: kck listen --until-idle failed (exit %d): %s"
                         % (alias, proc.returncode, last))


class KckTestMixin:
    """For TransactionTestCase: kck installed in the test database, and self.kck_drain()."""

    kck_database = None  # alias; default: the kck aliases among the test case's databases

    @classmethod
    def kck_aliases(cls):
        if cls.kck_database is not None:
            return [cls.kck_database]
        databases = cls.databases
        return [a for a in kck_aliases() if databases == "__all__" or a in databases]

    @classmethod
    def setUpClass(cls):
        install(cls.kck_aliases())  # before TestCase opens its class-wide transaction
        super().setUpClass()

    def kck_drain(self, timeout=60):
        drain(self.kck_aliases(), timeout=timeout)
