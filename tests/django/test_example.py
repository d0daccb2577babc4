"""The bookstore example (examples/bookstore_django) computed in-process, without the daemon."""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client

from kck import Cache, Change, PrimerComputeError, registry
from store.models import Author, Book, Review


@pytest.fixture
def store(db):
    a1, a2 = Author.objects.create(name="Ann"), Author.objects.create(name="Bob")
    b1 = Book.objects.create(author=a1, title="A1")
    b2 = Book.objects.create(author=a1, title="A2")
    b3 = Book.objects.create(author=a2, title="B1")
    for book, ratings in ((b1, [5, 4]), (b2, [3]), (b3, [5, 5, 2])):
        for r in ratings:
            Review.objects.create(book=book, rating=r)
    return a1, a2, b1, b2, b3


def test_title_list(store):
    a1, a2, b1, b2, b3 = store
    assert Cache.get_instance().get("title_list/%d" % a1.id) == [{"id": b1.id, "title": "A1"},
                                                                 {"id": b2.id, "title": "A2"}]
    assert Cache.get_instance().get("title_list/999") == []


def test_author_stats(store):
    a1, a2 = store[:2]
    assert Cache.get_instance().get("author_stats/%d" % a1.id) == {
        "author_id": a1.id, "books": 2, "reviews": 3, "rating_total": 12, "average_rating": 4.0}
    assert Cache.get_instance().get("author_stats/%d" % a2.id)["average_rating"] == 4.0
    assert Cache.get_instance().get("author_stats/12345") == {
        "author_id": 12345, "books": 0, "reviews": 0, "rating_total": 0, "average_rating": None}


def test_top_books(store):
    a1, a2, b1, b2, b3 = store
    top = Cache.get_instance().get("top_books/2")
    assert [(t["id"], t["average_rating"], t["reviews"]) for t in top] == [(b1.id, 4.5, 2), (b3.id, 4.0, 3)]
    with pytest.raises(PrimerComputeError, match="needs 1 <= n <= 1000"):
        Cache.get_instance().get("top_books/0")


def _image(obj, *columns):
    return {c: getattr(obj, c) for c in ("id",) + columns}


def test_author_stats_augment_equals_recompute(store):
    """Applying each change with augment() gives what compute() gives after it."""
    a1 = store[0]
    primer = registry().get("author_stats")
    key = "author_stats/%d" % a1.id
    value = primer.compute(key)

    def apply(change):
        nonlocal value
        value = primer.augment(key, value, change)
        assert value == primer.compute(key), change

    book = Book.objects.create(author=a1, title="new")
    apply(Change("public.store_book", "I", None, _image(book, "author_id")))
    r = Review.objects.create(book=book, rating=2)
    apply(Change("public.store_review", "I", None, _image(r, "book_id", "rating")))
    old = _image(r, "book_id", "rating")
    r.rating = 5
    r.save()
    apply(Change("public.store_review", "U", old, _image(r, "book_id", "rating")))
    old = _image(r, "book_id", "rating")
    r.delete()
    apply(Change("public.store_review", "D", dict(old), None))
    old = _image(book, "author_id")
    book.title = "renamed"
    book.save()
    apply(Change("public.store_book", "U", old, _image(book, "author_id")))


@pytest.mark.parametrize("change", [
    Change("public.store_book", "D", {"id": 1, "author_id": 1}, None),
    Change("public.store_book", "U", {"id": 1, "author_id": 1}, {"id": 1, "author_id": 2}),
    Change("public.store_review", "U", {"id": 1, "book_id": 1, "rating": 1}, {"id": 1, "book_id": 2, "rating": 1}),
    Change("public.store_author", "U", {"id": 1}, {"id": 1}),
])
def test_author_stats_cannot_augment(change):
    from kck import CannotAugment

    value = {"author_id": 1, "books": 1, "reviews": 1, "rating_total": 3, "average_rating": 3.0}
    with pytest.raises(CannotAugment):
        registry().get("author_stats").augment("author_stats/1", value, change)


def test_views(store):
    a1 = store[0]
    c = Client()
    r = c.get("/authors/%d/titles/" % a1.id)
    assert r.status_code == 200 and [t["title"] for t in json.loads(r.content)] == ["A1", "A2"]
    r = c.get("/authors/%d/stats/" % a1.id)
    assert json.loads(r.content)["reviews"] == 3
    r = c.get("/top/1/")
    assert len(json.loads(r.content)) == 1
    r = c.get("/products/title_list/%d" % a1.id)
    body = json.loads(r.content)
    assert body["key"] == "title_list/%d" % a1.id and body["version"] == 1
    r = c.get("/products/title_list/05")
    assert r.status_code == 400 and "in its canonical form" in json.loads(r.content)["error"]


def test_seed_command(db):
    out = io.StringIO()
    call_command("bookstore_seed", "--authors", "2", "--books", "3", "--reviews", "2", stdout=out)
    assert "seeded 2 authors, 6 books, 12 reviews" in out.getvalue()
    a = Author.objects.order_by("id").first()
    assert len(Cache.get_instance().get("title_list/%d" % a.id)) == 3


def test_example_manage_py_standalone(pg_cluster):
    """The example runs on its own settings, with the database from KCK_DATABASE_URL."""
    import os
    import subprocess

    from conftest import CONNINFO, PYTHON, ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") and k != "DJANGO_SETTINGS_MODULE"}
    env["KCK_DATABASE_URL"] = CONNINFO
    manage = str(ROOT / "examples" / "bookstore_django" / "manage.py")
    p = subprocess.run([PYTHON, manage, "kck_sync", "--print-config"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert [x["name"] for x in json.loads(p.stdout)["primers"]] == ["author_stats", "title_list", "top_books"]
    p = subprocess.run([PYTHON, manage, "shell", "-c",
                        "from django.db import connection as c; c.ensure_connection(); "
                        "print(c.settings_dict['NAME'], c.cursor().connection.info.dbname)"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["kck_test", "kck_test"]
