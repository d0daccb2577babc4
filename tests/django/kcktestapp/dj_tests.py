"""Run by test_testing.py as `kcktest_manage.py test kcktestapp.dj_tests`: Django's test runner
creates the test database (migrate runs kck_sync there), and KckTestMixin drains into it.
Not named test_*.py, so pytest does not collect it itself."""

from django.test import TestCase, TransactionTestCase

from kck import Cache
from kck.testing import DrainError, KckTestMixin
from store.models import Author, Book


class DrainTests(KckTestMixin, TransactionTestCase):
    def test_fresh_after_save(self):
        from django.db import connection

        assert connection.settings_dict["NAME"].startswith("test_"), connection.settings_dict["NAME"]
        cache = Cache.get_instance()
        a = Author.objects.create(name="manage.py test")
        key = "title_list/%d" % a.id
        self.assertEqual(cache.get(key), [])
        b = Book.objects.create(author=a, title="draft")
        b.title = "final"
        b.save()
        self.kck_drain()
        self.assertEqual(cache.get(key), [{"id": b.id, "title": "final"}])
        self.assertEqual(cache.get("title_count/%d" % a.id), 1)


class AtomicTests(KckTestMixin, TestCase):
    def test_drain_refuses_uncommitted_writes(self):
        Author.objects.create(name="uncommitted")
        with self.assertRaisesRegex(DrainError, "TransactionTestCase"):
            self.kck_drain()
