"""The steps `kck demo --django` shows: ordinary Django writes, and for each
the product before and after and how long after the commit it was fresh.
Needs `kck listen --python-worker ...` running (kck demo --django starts it)."""
import json
import time

from django.core.management.base import BaseCommand
from django.db import connection

from kck import Cache
from store.models import Author, Book, Review


def _version(key):
    with connection.cursor() as cur:
        cur.execute("SELECT version FROM kck.cache WHERE key = %s", [key])
        row = cur.fetchone()
    return row[0] if row else 0


def _short(value):
    text = json.dumps(value)
    return text if len(text) <= 110 else text[:107] + "..."


class Command(BaseCommand):
    help = "Writes through the ORM and shows each dependent product becoming fresh."

    def handle(self, *args, **options):
        cache = Cache.get_instance()
        a1, a2 = Author.objects.order_by("id")[:2]
        keys = ["title_list/%d" % a1.id, "title_list/%d" % a2.id, "author_stats/%d" % a1.id, "top_books/3"]
        self.stdout.write("reading products (a miss computes and stores them):")
        for key in keys:
            self.stdout.write("  %-16s %s" % (key, _short(cache.get(key))))

        book = {}

        def create():
            book["b"] = Book.objects.create(author=a1, title="A Brand New Book")

        def rename():
            book["b"].title = "A Renamed Book"
            book["b"].save()

        def move():
            book["b"].author = a2
            book["b"].save()

        def review():
            Review.objects.create(book=book["b"], rating=5, body="superb")

        def delete():
            book["b"].delete()

        steps = [
            ("Book.objects.create(...)", create, [keys[0], keys[2]]),
            ("book.title = ...; book.save()", rename, [keys[0]]),
            ("book.author = other; book.save()  (moves between keys)", move, [keys[0], keys[1]]),
            ("Review.objects.create(rating=5)", review, [keys[3]]),
            ("book.delete()", delete, [keys[1], keys[3]]),
        ]
        failed = 0
        for title, action, watched in steps:
            self.stdout.write("\n== %s" % title)
            before = {k: _version(k) for k in watched}
            action()  # autocommit: committed when it returns
            committed = time.monotonic()
            for key in watched:
                while _version(key) == before[key] and time.monotonic() - committed < 10:
                    time.sleep(0.0005)
                ms = (time.monotonic() - committed) * 1000
                if _version(key) == before[key]:
                    self.stdout.write("   %-16s NOT refreshed within 10 s" % key)
                    failed += 1
                    continue
                self.stdout.write("   %-16s v%d %s  (fresh %.1f ms after commit)" % (
                    key, _version(key), _short(cache.get(key)), ms))
        if failed:
            raise SystemExit(1)
