"""Primers used only by tests/django."""

import collections
import os
import time

from kck import (BoolParameter, Cache, DateParameter, Depends, IntParameter, Primer,
                 StrParameter)
from store.models import Author, Book, Review

from .models import Note

# key -> number of computes in this process
COMPUTES = collections.Counter()


class EchoPrimer(Primer):
    key = "echo"
    parameters = [{"name": "text"}]  # no from_str: a str parameter

    def compute(self, key):
        COMPUTES[key] += 1
        return {"text": self.key_to_param_dict(key)["text"], "n": COMPUTES[key]}


class WarmEchoPrimer(Primer):
    """warm() lists two keys: one as parameters, one as a key (and the first again)."""

    key = "warm_echo"
    parameters = [{"name": "text"}]
    warm_every = "1h"

    def warm(self):
        return [{"text": "a"}, "warm_echo/b%2Fc", {"text": "a"}]

    def compute(self, key):
        return {"text": self.key_to_param_dict(key)["text"]}


class TimeoutPrimer(Primer):
    """Its compute always hits statement_timeout: a transient failure."""

    key = "times_out"
    parameters = [IntParameter("n")]

    def compute(self, key):
        from django.db import connection
        with connection.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = 1")
            cur.execute("SELECT pg_sleep(1)")
        return 0


class LosesConnectionPrimer(Primer):
    """Its compute loses the database connection (as when PostgreSQL restarts)."""

    key = "loses_connection"
    parameters = [IntParameter("n")]

    def compute(self, key):
        from django.db import connection
        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        return 0


class SlowEchoPrimer(Primer):
    key = "slow_echo"
    parameters = [StrParameter("text")]

    def compute(self, key):
        COMPUTES[key] += 1
        time.sleep(0.3)
        return {"text": self.key_to_param_dict(key)["text"], "n": COMPUTES[key]}


class TypedPrimer(Primer):
    key = "typed"
    parameters = [IntParameter("a"), StrParameter("b"), BoolParameter("c"), DateParameter("d")]

    def compute(self, key):
        p = self.key_to_param_dict(key)
        return {"a": p["a"], "b": p["b"], "c": p["c"], "d": p["d"], "types": [type(v).__name__ for v in p.values()]}


class BoomPrimer(Primer):
    key = "boom"
    parameters = [IntParameter("n")]

    def compute(self, key):
        COMPUTES[key] += 1
        raise ValueError("boom %d" % self.key_to_param_dict(key)["n"])


class NotJsonPrimer(Primer):
    key = "not_json"
    parameters = [IntParameter("n")]

    def compute(self, key):
        return {"x": float("nan")}


class NoPrimePrimer(Primer):
    key = "no_prime"
    parameters = [IntParameter("n")]
    prime_on_cache_miss = False

    def compute(self, key):
        return "computed"


class LegacyPrimer(Primer):
    """The original library's spellings."""

    key_base = "legacy"
    parameters = [{"name": "id", "from_str": int}]
    soft_expire_seconds = 60
    hard_expire_seconds = 3600

    def compute(self, key):
        return self.key_to_param_dict(key)["id"] * 2


class ExpiringPrimer(Primer):
    key = "expiring"
    parameters = [StrParameter("text")]
    soft_expire = "1m"
    hard_expire = "1h"

    def compute(self, key):
        COMPUTES[key] += 1
        return COMPUTES[key]


class NestedPrimer(Primer):
    key = "nested"
    parameters = [StrParameter("text")]

    def compute(self, key):
        text = self.key_to_param_dict(key)["text"]
        cache = Cache.get_instance()
        entry = cache.get_entry(cache.build_key("echo", text=text))
        return {"inner": entry.value, "inner_stored": entry.stored}


class CyclePrimer(Primer):
    key = "cycle"
    parameters = [IntParameter("n")]

    def compute(self, key):
        return Cache.get_instance().get(key)


class NoisyPrimer(Primer):
    key = "noisy"

    def compute(self, key):
        print("noisy primer printing to stdout")
        return "quiet"


class HangPrimer(Primer):
    key = "hang"
    parameters = [IntParameter("seconds")]

    def compute(self, key):
        time.sleep(self.key_to_param_dict(key)["seconds"])
        return "woke up"


def _review_books(old, new):
    # Dicts of parameters are turned into keys by the worker.
    return [{"book_id": row["book_id"]} for row in (old, new) if row]


class ReviewCountPrimer(Primer):
    key = "review_count"
    parameters = [IntParameter("book_id")]
    depends_on = [Depends(Review, keys=_review_books, columns=["book_id"])]

    def compute(self, key):
        return Review.objects.filter(book_id=self.key_to_param_dict(key)["book_id"]).count()

    def augment(self, key, value, change):
        book_id = self.key_to_param_dict(key)["book_id"]
        if change.old is not None and change.old["book_id"] == book_id:
            value -= 1
        if change.new is not None and change.new["book_id"] == book_id:
            value += 1
        return value


def _loses_connection_then_raises(old, new):
    """For an author named "lose connection": terminates its own backend, then raises an error
    that does not say so (no database error in its context)."""
    if (new or old)["name"] != "lose connection":
        return []
    from django.db import connection
    try:
        with connection.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    except Exception:
        pass
    raise ValueError("the rule failed after its connection was lost")


class BadKeysPrimer(Primer):
    """Keys rules that misbehave, on a table the e2e tests only insert into."""

    key = "bad_keys"
    parameters = [IntParameter("n")]
    depends_on = [
        Depends("store_author", keys=lambda old, new: ["title_list/1"], columns=["name"]),
        Depends("store_author", keys=lambda old, new: 1 / 0),
        Depends(Author, n="id"),
        # Raises for one row only: an author named "boom".
        Depends("store_author", keys=lambda old, new: ["bad_keys/%d" % (1 // ((new or old)["name"] != "boom"))]),
        Depends("store_author", keys=lambda old, new: _loses_connection_then_raises(old, new)),
    ]

    def compute(self, key):
        return 0


def _titles_or(author_id, marker, action):
    titles = list(Book.objects.filter(author_id=author_id).order_by("id").values_list("title", flat=True))
    if marker in titles:
        action()
    return titles


class FlakyTitlesPrimer(Primer):
    """Fails while one of the author's books is titled FAIL."""

    key = "flaky_titles"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id")]

    def compute(self, key):
        def fail():
            raise RuntimeError("a book is titled FAIL")

        return _titles_or(self.key_to_param_dict(key)["author_id"], "FAIL", fail)


class SleepyTitlesPrimer(Primer):
    """Hangs while one of the author's books is titled HANG."""

    key = "sleepy_titles"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id")]

    def compute(self, key):
        return _titles_or(self.key_to_param_dict(key)["author_id"], "HANG", lambda: time.sleep(3600))


class CrashyTitlesPrimer(Primer):
    """Exits the worker process while one of the author's books is titled CRASH."""

    key = "crashy_titles"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id")]

    def compute(self, key):
        def crash():
            if os.environ.get("KCK_TEST_ALLOW_CRASH") == "1":
                os._exit(3)
            raise RuntimeError("would crash")

        return _titles_or(self.key_to_param_dict(key)["author_id"], "CRASH", crash)


from store.primers import TitleListPrimer  # noqa: E402


class TitleCountPrimer(Primer):
    """A product of a product: recomputed when title_list/<author_id> changes."""

    key = "title_count"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(TitleListPrimer, author_id="author_id")]

    def compute(self, key):
        author_id = self.key_to_param_dict(key)["author_id"]
        return len(Cache.get_instance().get("title_list/%d" % author_id))


class BookTitlePrimer(Primer):
    """A product per book: gone (ObjectDoesNotExist) once the book is deleted."""

    key = "book_title"
    parameters = [IntParameter("id")]
    depends_on = [Depends(Book, id="id")]

    def compute(self, key):
        COMPUTES[key] += 1
        return Book.objects.get(pk=self.key_to_param_dict(key)["id"]).title


class NoteOwnerPrimer(Primer):
    """Depends on Note.owner_id, which test_checks renames and drops by migrations."""

    key = "note_count"
    parameters = [IntParameter("owner_id")]
    depends_on = [Depends(Note, owner_id="owner_id")]

    def compute(self, key):
        return Note.objects.filter(owner_id=self.key_to_param_dict(key)["owner_id"]).count()


class TitleLogPrimer(Primer):
    """Augments from the captured title column (Depends(..., columns=['title'])) and logs what it saw."""

    key = "title_log"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id", columns=["title"])]

    def compute(self, key):
        author_id = self.key_to_param_dict(key)["author_id"]
        titles = Book.objects.filter(author_id=author_id).order_by("title").values_list("title", flat=True)
        return {"titles": list(titles), "seen": []}

    def augment(self, key, value, change):
        old = change.old["title"] if change.old is not None else None
        new = change.new["title"] if change.new is not None else None
        titles = [t for t in value["titles"] if t != old] + ([new] if new is not None else [])
        return {"titles": sorted(titles), "seen": value["seen"] + [[change.op, old, new]]}


class JsonTypesPrimer(Primer):
    """Returns a Decimal, a datetime and a date: products are JSON (README, "Products are JSON")."""

    key = "json_types"
    parameters = [IntParameter("n")]
    refresh_every = "1h"

    def compute(self, key):
        import datetime
        import decimal

        at = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.timezone.utc)
        return {"price": decimal.Decimal("12.30"), "at": at, "day": at.date(), "n": self.key_to_param_dict(key)["n"]}
