"""Cache API semantics against a real kck schema (no daemon)."""

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from conftest import query
from kck import (Cache, InvalidKey, KckError, KeyNotSet, KeyParameterMismatch, PrimerComputeError,
                 ProductDoesNotExist, UnknownPrimer)
from kcktestapp.primers import COMPUTES


@pytest.fixture
def cache(db):
    return Cache.get_instance()


def row(key):
    r = query("SELECT value, version, primer, snapshot::text, compute_ms, error, computed_at, soft_expire, "
              "hard_expire FROM kck.cache WHERE key = %s", [key])
    return r[0] if r else None


def advisory_locks():
    return query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0]


def test_get_instance_is_a_singleton():
    assert Cache.get_instance() is Cache.get_instance()


def test_miss_computes_stores_and_returns(cache):
    assert cache.get("echo/hi") == {"text": "hi", "n": 1}
    value, version, primer, snapshot, compute_ms, error, computed_at, soft, hard = row("echo/hi")
    assert value == '{"n": 1, "text": "hi"}'
    assert (version, primer, error) == (1, "echo", None)
    assert snapshot and snapshot.count(":") == 2
    assert compute_ms >= 0 and computed_at is not None
    assert soft is None and hard is None
    assert advisory_locks() == 0


def test_hit_is_one_indexed_read(cache):
    cache.get("echo/hit")
    with CaptureQueriesContext(connection) as ctx:
        assert cache.get("echo/hit") == {"text": "hit", "n": 1}
    assert len(ctx.captured_queries) == 1
    sql = ctx.captured_queries[0]["sql"]
    assert "FROM kck.cache WHERE key = 'echo/hit'" in sql
    assert COMPUTES["echo/hit"] == 1
    plan = query("EXPLAIN " + sql.replace("'echo/hit'", "%s"), ["echo/hit"])
    assert "Index Scan using cache_pkey" in plan[0][0]


def test_soft_expired_value_is_served_and_refresh_queued(cache):
    assert cache.get("expiring/a") == 1
    query("UPDATE kck.cache SET soft_expire = now() - interval '1 second' WHERE key = 'expiring/a'")
    assert cache.get("expiring/a") == 1
    assert cache.get("expiring/a") == 1
    queued = query("SELECT tbl, op, new->>'key' FROM kck.changes WHERE tbl = 'kck.refresh'")
    assert queued == [("kck.refresh", "U", "expiring/a")]  # queued once, not per read
    assert row("expiring/a")[1] == 1


def test_hard_expired_value_is_recomputed(cache):
    assert cache.get("expiring/b") == 1
    query("UPDATE kck.cache SET hard_expire = now() - interval '1 second' WHERE key = 'expiring/b'")
    entry = cache.get_entry("expiring/b")
    assert entry.value == 2 and entry.version == 2
    assert entry.hard_expire > entry.computed_at + datetime.timedelta(minutes=59)
    assert entry.soft_expire < entry.computed_at + datetime.timedelta(minutes=2)


def test_get_entry_fields(cache):
    e = cache.get_entry("legacy/21")
    assert (e.key, e.primer, e.value, e.version, e.error, e.stored) == ("legacy/21", "legacy", 42, 1, None, True)
    assert e.soft_expire - e.computed_at == datetime.timedelta(seconds=60)
    assert e.hard_expire - e.computed_at == datetime.timedelta(seconds=3600)


def test_the_entry_a_miss_returns_is_the_stored_row(cache):
    # A miss reads the row once (the hit path), then opens its transaction and reads it under the
    # key's lock in one statement, and builds its entry from what kck.store wrote.
    with CaptureQueriesContext(connection) as ctx:
        miss = cache.get_entry("legacy/22")
    reads = [q for q in ctx.captured_queries if q["sql"].startswith("SELECT value::text, version, computed_at")]
    assert len(reads) == 1, ctx.captured_queries
    assert miss.compute_ms is not None and miss.soft_expire is not None
    assert cache.get_entry("legacy/22") == miss
    assert row("legacy/22")[1] == miss.version == 1


def test_set_unset_is_set(cache):
    assert not cache.is_set("echo/x")
    assert cache.set("echo/x", {"manual": [1, 2]}) == 1
    assert cache.is_set("echo/x")
    assert cache.get("echo/x") == {"manual": [1, 2]}
    assert cache.set("echo/x", "again") == 2
    assert cache.get_entry("echo/x").version == 2
    assert cache.unset("echo/x") is True
    assert not cache.is_set("echo/x")
    assert cache.unset("echo/x") is False
    assert COMPUTES["echo/x"] == 0


def test_set_encodes_dates_and_decimals(cache):
    import decimal

    cache.set("echo/d", {"day": datetime.date(2024, 2, 29), "price": decimal.Decimal("9.50")})
    assert cache.get("echo/d") == {"day": "2024-02-29", "price": "9.50"}


def test_refresh_queued_and_now(cache):
    cache.get("echo/r")
    assert cache.refresh("echo/r") is None
    assert query("SELECT new->>'key' FROM kck.changes WHERE tbl = 'kck.refresh'") == [("echo/r",)]
    assert cache.refresh("echo/r", queued=False) == {"text": "r", "n": 2}
    assert row("echo/r")[1] == 2
    assert cache.get("echo/r") == {"text": "r", "n": 2}


def test_build_key(cache):
    assert cache.build_key("echo", text="a/b%c") == "echo/a%2Fb%25c"
    assert cache.build_key("typed", a=5, b="x", c=True, d=datetime.date(2024, 2, 29)) == "typed/5/x/true/2024-02-29"
    assert cache.build_key("typed", a="5", b="", c="false", d="0001-01-01") == "typed/5//false/0001-01-01"
    with pytest.raises(KeyParameterMismatch, match='parameter "a" expects int'):
        cache.build_key("typed", a="05", b="x", c=True, d="2024-01-01")
    with pytest.raises(KeyParameterMismatch, match="missing d"):
        cache.build_key("typed", a=1, b="x", c=True)
    with pytest.raises(KeyParameterMismatch, match="unknown zz"):
        cache.build_key("typed", a=1, b="x", c=True, d="2024-01-01", zz=1)
    with pytest.raises(UnknownPrimer):
        cache.build_key("nope", a=1)


def test_typed_parameters_reach_compute(cache):
    assert cache.get("typed/-3/a%2Fb/true/2024-02-29") == {
        "a": -3, "b": "a/b", "c": True, "d": "2024-02-29", "types": ["int", "str", "bool", "date"]}


@pytest.mark.parametrize("key, exc, message", [
    ("nope/1", UnknownPrimer, 'unknown primer "nope"'),
    ("Echo/1", InvalidKey, 'primer name "Echo" is not valid'),
    ("", InvalidKey, "is not valid"),
    ("echo", KeyParameterMismatch, "has 0 parameters, expected 1 (text)"),
    ("echo/a/b", KeyParameterMismatch, "has 2 parameters, expected 1"),
    ("echo/%2f", KeyParameterMismatch, 'invalid escape "%2f"'),
    ("typed/05/x/true/2024-01-01", KeyParameterMismatch,
     'parameter "a" is written "5" in its canonical form, not "05" (key "typed/5/x/true/2024-01-01")'),
    ("typed/5x/x/true/2024-01-01", KeyParameterMismatch, 'parameter "a" expects int, got "5x"'),
    ("typed/5/x/yes/2024-01-01", KeyParameterMismatch, 'parameter "c" expects bool'),
    ("typed/5/x/true/2023-02-29", KeyParameterMismatch, 'parameter "d" expects date'),
])
def test_bad_keys_raise_clear_errors_and_touch_nothing(cache, key, exc, message):
    with CaptureQueriesContext(connection) as ctx:
        for call in (cache.get, cache.get_entry, cache.is_set, cache.unset, cache.refresh):
            with pytest.raises(exc) as e:
                call(key)
            assert message in str(e.value)
        with pytest.raises(exc):
            cache.set(key, 1)
    # Rejected before any SQL but the look for a primer of that name that `kck install --config`
    # registered (kck.configured), which only a well-formed key of an unknown primer needs.
    looks = [q["sql"] for q in ctx.captured_queries if "FROM kck.primers p WHERE name" in q["sql"]]
    assert len(looks) == (6 if exc is UnknownPrimer else 0), ctx.captured_queries
    assert len(ctx.captured_queries) == len(looks), ctx.captured_queries


def test_compute_exception_stores_nothing(cache):
    with pytest.raises(PrimerComputeError) as e:
        cache.get("boom/7")
    assert isinstance(e.value.__cause__, ValueError)
    assert isinstance(e.value.original, ValueError)
    assert "ValueError: boom 7" in str(e.value)
    assert row("boom/7") is None
    assert advisory_locks() == 0
    with pytest.raises(PrimerComputeError):
        cache.get("boom/7")
    assert COMPUTES["boom/7"] == 2


def test_compute_error_keeps_a_stored_value(cache):
    cache.set("boom/8", "old")
    query("UPDATE kck.cache SET hard_expire = now() - interval '1 second' WHERE key = 'boom/8'")
    with pytest.raises(PrimerComputeError):
        cache.get("boom/8")
    assert row("boom/8")[:2] == ('"old"', 1)


def test_value_that_is_not_json_stores_nothing(cache):
    with pytest.raises(PrimerComputeError, match="ValueError"):
        cache.get("not_json/1")
    assert row("not_json/1") is None
    with pytest.raises(TypeError):
        cache.set("echo/obj", object())
    assert row("echo/obj") is None


def test_prime_on_cache_miss_false(cache):
    with pytest.raises(KeyNotSet):
        cache.get("no_prime/1")
    assert row("no_prime/1") is None
    assert cache.get("no_prime/1", prime_on_cache_miss=True) == "computed"
    cache.set("no_prime/2", "set")
    assert cache.get("no_prime/2") == "set"


@pytest.mark.parametrize("text", ["'; DROP TABLE store_book; --", "Robert'); DROP TABLE kck.cache;--",
                                  'He said "hi"', "$1 %s %(x)s :text", "a/b%c", "東京/大阪 📚", ""])
def test_keys_are_bound_parameters(cache, text):
    key = cache.build_key("echo", text=text)
    assert cache.get(key) == {"text": text, "n": 1}
    assert cache.get(key) == {"text": text, "n": 1}
    assert query("SELECT key FROM kck.cache") == [(key,)]
    assert cache.is_set(key) and cache.unset(key)
    assert query("SELECT to_regclass('store_book') IS NOT NULL, to_regclass('kck.cache') IS NOT NULL") == [(True, True)]


def test_nested_get_stores_both(cache):
    entry = cache.get_entry("nested/x")
    assert entry.value == {"inner": {"text": "x", "n": 1}, "inner_stored": True}
    assert row("echo/x")[1] == 1
    assert row("nested/x")[1] == 1
    assert advisory_locks() == 0


def test_nested_get_does_not_store_when_another_transaction_committed(cache):
    # A commit between the outer snapshot and the inner store could be a change the
    # daemon already dropped for the (then missing) inner key: do not store then.
    from kcktestapp import primers

    original = primers.NestedPrimer.compute

    def compute(self, key):
        t = threading.Thread(target=lambda: (query("SELECT kck.queue_refresh(ARRAY['echo/elsewhere'])"),
                                             connection.close()))
        t.start()
        t.join()
        return original(self, key)

    primers.NestedPrimer.compute = compute
    try:
        value = cache.get("nested/y")
    finally:
        primers.NestedPrimer.compute = original
    assert value == {"inner": {"text": "y", "n": 1}, "inner_stored": False}
    assert row("echo/y") is None and row("nested/y")[1] == 1


def test_cycle_is_an_error(cache):
    with pytest.raises(PrimerComputeError, match="depends on itself: cycle/1 -> cycle/1"):
        cache.get("cycle/1")
    assert row("cycle/1") is None


def test_concurrent_misses_compute_once(cache):
    results = []

    def worker():
        try:
            results.append(Cache.get_instance().get("slow_echo/c"))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [{"text": "c", "n": 1}] * 4
    assert COMPUTES["slow_echo/c"] == 1
    assert row("slow_echo/c")[1] == 1


def test_miss_inside_read_only_transaction_is_stored_on_the_side(cache):
    with transaction.atomic():
        query("SELECT 1")
        entry = cache.get_entry("echo/t1")
        assert entry.stored and entry.version == 1
        assert query("SELECT pg_current_xact_id_if_assigned() IS NULL") == [(True,)]
    assert row("echo/t1")[1] == 1


def test_miss_inside_writing_transaction_is_computed_not_stored(cache):
    from store.models import Author

    with transaction.atomic():
        Author.objects.create(name="uncommitted")
        entry = cache.get_entry("echo/t2")
        assert entry.value == {"text": "t2", "n": 1} and not entry.stored and entry.version is None
    assert row("echo/t2") is None
    assert cache.get("echo/t2") == {"text": "t2", "n": 2}


def test_refresh_now_inside_transaction_stores(cache):
    from store.models import Author

    with transaction.atomic():
        Author.objects.create(name="x")
        assert cache.refresh("echo/t3", queued=False) == {"text": "t3", "n": 1}
    assert row("echo/t3")[1] == 1


def test_failed_compute_in_transaction_leaves_it_usable(cache):
    from store.models import Author

    with transaction.atomic():
        Author.objects.create(name="y")
        with pytest.raises(PrimerComputeError):
            cache.get("boom/1")
        assert Author.objects.filter(name="y").count() == 1
    assert Author.objects.filter(name="y").count() == 1


def test_database_error_in_compute_inside_transaction_leaves_it_usable(cache):
    from kck import isolated_registry, Primer
    from store.models import Author

    with isolated_registry():
        class Broken(Primer):
            key = "broken"

            def compute(self, key):
                return query("SELECT 1/0")

        with transaction.atomic():
            Author.objects.create(name="z")
            with pytest.raises(PrimerComputeError, match="division by zero"):
                cache.get("broken")
            assert Author.objects.filter(name="z").count() == 1
        with pytest.raises(PrimerComputeError, match="division by zero"):
            cache.get("broken")
        assert query("SELECT count(*) FROM kck.cache") == [(0,)]
    assert advisory_locks() == 0


def test_kck_schema_missing_is_a_clear_error(cache):
    from kck import KckNotInstalled

    with transaction.atomic():
        query("ALTER SCHEMA kck RENAME TO kck_away")
        try:
            with pytest.raises(KckNotInstalled, match="run `manage.py kck_sync`"):
                with transaction.atomic():  # a savepoint the error rolls back
                    cache.get("echo/x")
        finally:
            query("ALTER SCHEMA kck_away RENAME TO kck")


def test_get_of_a_gone_row_raises_product_does_not_exist_and_stores_nothing(cache):
    from store.models import Author, Book

    book = Book.objects.create(author=Author.objects.create(name="A"), title="T1")
    key = "book_title/%d" % book.id
    assert cache.get(key) == "T1"
    Book.objects.filter(pk=book.pk).delete()
    query("UPDATE kck.cache SET hard_expire = now() - interval '1s' WHERE key = %s", [key])
    with pytest.raises(ProductDoesNotExist) as info:
        cache.get(key)
    assert isinstance(info.value, KeyError) and isinstance(info.value, KckError)
    assert str(info.value) == 'product "%s" does not exist (primer "book_title": DoesNotExist: Book matching ' \
        'query does not exist.)' % key
    assert info.value.key == key
    assert row(key) is None  # the expired value is removed, nothing is stored
    with pytest.raises(ProductDoesNotExist):
        cache.get("book_title/999999")
    with pytest.raises(ProductDoesNotExist):
        cache.refresh("book_title/999999", queued=False)
    assert row("book_title/999999") is None
    with pytest.raises(KeyNotSet):  # the seed's behaviour: no compute at all
        cache.get("book_title/999999", prime_on_cache_miss=False)


def test_gone_inside_a_transaction_that_wrote(cache):
    from store.models import Author

    with transaction.atomic():
        Author.objects.create(name="B")
        with pytest.raises(ProductDoesNotExist):
            cache.get("book_title/999999")
    assert row("book_title/999999") is None
