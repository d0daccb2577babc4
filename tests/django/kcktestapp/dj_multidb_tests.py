"""Run by test_multidb.py as `kcktest_manage.py test kcktestapp.dj_multidb_tests --settings
kcktest_multidb_settings`: two test databases, kcktestapp's Note routed to 'other'. Not named
test_*.py, so pytest does not collect it itself."""

from django.db import connections
from django.test import TransactionTestCase

from kck import Cache
from kck.testing import KckTestMixin
from kcktestapp.models import Note
from store.models import Author, Book


def _names(alias):
    with connections[alias].cursor() as cur:
        cur.execute("SELECT name FROM kck.primers ORDER BY name")
        return [r[0] for r in cur.fetchall()]


class TwoDatabaseTests(KckTestMixin, TransactionTestCase):
    databases = {"default", "other"}

    def test_each_primer_fresh_in_its_database(self):
        for alias in ("default", "other"):
            assert connections[alias].settings_dict["NAME"].startswith("test_"), alias
        self.assertEqual(_names("other"), ["note_count"])
        self.assertNotIn("note_count", _names("default"))
        cache = Cache.get_instance()
        self.assertEqual(cache.alias_for("note_count/3"), "other")
        self.assertEqual(cache.get("note_count/3"), 0)
        a = Author.objects.create(name="two databases")
        key = "title_list/%d" % a.id
        self.assertEqual(cache.get(key), [])
        Note.objects.create(owner_id=3)
        b = Book.objects.create(author=a, title="routed")
        self.kck_drain()
        self.assertEqual(cache.get("note_count/3"), 1)
        self.assertEqual(cache.get(key), [{"id": b.id, "title": "routed"}])
