"""kck.testing: drain() applies queued changes with `kck listen --until-idle` (the real daemon, once),
the fixture kck_drain, KckTestMixin under Django's own test runner, and the exit codes of
--until-idle."""

import json
import os
import subprocess
import unittest

import pytest
from django.db import transaction
from django.test import TestCase, TransactionTestCase

from conftest import BINARY_LISTENS, CONNINFO, HERE, KCK_BINARY, MANAGE, NO_LISTEN_REASON, PYTHON, query
from kck import Cache
from kck.testing import DrainError, KckTestMixin, drain
from store.models import Author, Book

pytestmark = pytest.mark.skipif(not BINARY_LISTENS, reason=NO_LISTEN_REASON)


def _stored(key):
    r = query("SELECT value::text FROM kck.cache WHERE key = %s", [key])
    return json.loads(r[0][0]) if r else "<absent>"


def test_drain_makes_products_fresh_after_a_save(db, kck_drain):
    cache = Cache.get_instance()
    a = Author.objects.create(name="drain")
    key, count = "title_list/%d" % a.id, "title_count/%d" % a.id
    assert cache.get(key) == [] and cache.get(count) == 0
    b = Book.objects.create(author=a, title="draft")
    b.title = "final"
    b.save()
    assert _stored(key) == []  # no daemon: nothing happened yet
    kck_drain()
    assert _stored(key) == [{"id": b.id, "title": "final"}]
    assert _stored(count) == 1  # the product of a product: drained too
    assert query("SELECT count(*) FROM kck.changes") == [(0,)]
    kck_drain()  # nothing queued: returns at once


def test_drain_refuses_uncommitted_writes(db):
    with transaction.atomic():
        Author.objects.create(name="uncommitted")
        with pytest.raises(DrainError, match="uncommitted writes in an atomic block.*TransactionTestCase"):
            drain()
    with transaction.atomic():  # an atomic block that wrote nothing is fine
        drain()


def _run_case(case):
    result = unittest.TestResult()
    unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)
    return result


def test_mixin_in_transaction_and_plain_test_cases(db):
    seen = {}

    class Fresh(KckTestMixin, TransactionTestCase):
        databases = {"default"}

        def test_fresh(self):
            a = Author.objects.create(name="mixin")
            key = "title_list/%d" % a.id
            Cache.get_instance().get(key)
            b = Book.objects.create(author=a, title="mixin book")
            self.kck_drain()
            seen["value"] = Cache.get_instance().get(key)
            seen["expected"] = [{"id": b.id, "title": "mixin book"}]

    class Atomic(KckTestMixin, TestCase):
        databases = {"default"}

        def test_refused(self):
            Author.objects.create(name="in TestCase")
            with self.assertRaisesRegex(DrainError, "TransactionTestCase"):
                self.kck_drain()

    for case in (Fresh, Atomic):
        result = _run_case(case)
        assert result.wasSuccessful(), result.errors + result.failures
    assert seen["value"] == seen["expected"]


def test_manage_py_test_with_the_mixin(pg_cluster):
    env = dict(os.environ, KCK_TEST_SYNC_ON_MIGRATE="1")
    p = subprocess.run([PYTHON, str(MANAGE), "test", "kcktestapp.dj_tests", "--noinput", "-v", "2"],
                       cwd=str(HERE), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=180, env=env)
    assert p.returncode == 0, p.stdout[-5000:]
    assert "Ran 2 tests" in p.stdout and "OK" in p.stdout


def _until_idle(db):
    return subprocess.run([KCK_BINARY, "--db", db, "listen", "--until-idle", "--python-worker",
                           "exec %s %s kck_worker" % (PYTHON, MANAGE)], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)


def test_until_idle_exit_codes(db):
    from kck.sync import sync

    sync(binary=KCK_BINARY)
    a = Author.objects.create(name="until idle")
    Cache.get_instance().get("title_list/%d" % a.id)
    Book.objects.create(author=a, title="queued")
    p = _until_idle(CONNINFO)
    assert p.returncode == 0, p.stdout
    assert query("SELECT count(*) FROM kck.changes") == [(0,)]
    assert len(_stored("title_list/%d" % a.id)) == 1
    p = _until_idle("host=/nonexistent-kck-dir dbname=none")
    assert p.returncode == 1, p.stdout
    assert "--until-idle" in p.stdout and "could not connect" in p.stdout
