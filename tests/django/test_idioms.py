"""Django idioms: type hints, Cache.aget/aget_entry/get_many, the cache backend
kck.backends.ProductCache, the template tag {% product %}, the logger "kck", settings.KCK
validated at startup, and what JSON makes of Decimal and datetime."""

import inspect
import logging
import re
import typing
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.template import TemplateSyntaxError
from django.test import AsyncClient, override_settings
from django.test.utils import CaptureQueriesContext

import kck
from conftest import query
from kck import Cache, Depends, InvalidKey, KeyParameterMismatch, Primer, ProductDoesNotExist, UnknownPrimer, conf
from kck.backends import ProductCacheWriteError
from kcktestapp.primers import COMPUTES
from store.models import Author, Book

PACKAGE = Path(kck.__file__).resolve().parent


def test_py_typed_and_hints_resolve():
    assert (PACKAGE / "py.typed").is_file()
    for fn in (Cache.get, Cache.get_entry, Cache.get_many, Cache.aget, Cache.aget_entry, Cache.set,
               Cache.build_key, Primer.compute, Primer.key_to_param_dict, Primer.build_key,
               Depends.__init__, kck.registry):
        hints = typing.get_type_hints(fn)
        assert "return" in hints, fn.__qualname__
    assert typing.get_type_hints(Cache.get_many)["return"] == typing.Dict[str, typing.Any]


def test_get_many_reads_hits_in_one_query(db):
    cache = Cache.get_instance()
    a, b = cache.get("echo/a"), cache.get("echo/b")
    with CaptureQueriesContext(connection) as ctx:
        got = cache.get_many(["echo/b", "echo/a", "echo/b"])
    assert got == {"echo/b": b, "echo/a": a} and list(got) == ["echo/b", "echo/a"]
    assert len(ctx.captured_queries) == 1


def test_get_many_computes_misses_like_get(db):
    cache = Cache.get_instance()
    cache.get("echo/hit")
    got = cache.get_many(["echo/hit", "echo/miss"])
    assert got["echo/miss"] == {"text": "miss", "n": 1}
    assert COMPUTES["echo/hit"] == 1 and COMPUTES["echo/miss"] == 1
    assert query("SELECT count(*) FROM kck.cache WHERE key IN ('echo/hit', 'echo/miss')")[0][0] == 2
    assert cache.get_many([]) == {}


def test_get_many_raises_like_get(db):
    cache = Cache.get_instance()
    with CaptureQueriesContext(connection) as ctx, pytest.raises(InvalidKey):
        cache.get_many(["echo/a", "title_list/x"])
    assert ctx.captured_queries == []  # a bad key is rejected before any SQL
    with pytest.raises(ProductDoesNotExist):
        cache.get_many(["echo/a", "book_title/999999"])


def test_aget_and_aget_entry(db):
    cache = Cache.get_instance()
    assert inspect.iscoroutinefunction(Cache.aget) and inspect.iscoroutinefunction(Cache.aget_entry)
    assert async_to_sync(cache.aget)("echo/async") == {"text": "async", "n": 1}
    entry = async_to_sync(cache.aget_entry)("echo/async")
    assert entry.stored and entry.value == {"text": "async", "n": 1}
    with pytest.raises(ProductDoesNotExist):
        async_to_sync(cache.aget)("book_title/999999")


@override_settings(ROOT_URLCONF="kcktestapp.urls")
def test_async_view_reads_products(db):
    async def fetch():
        return await AsyncClient().get("/async/echo/view")

    response = async_to_sync(fetch)()
    assert response.status_code == 200, response.content
    assert response.json() == {"value": {"text": "view", "n": 1}, "version": 1}
    assert Cache.get_instance().is_set("echo/view")


def test_backend_reads_products(db):
    products = caches["products"]
    assert products.get("echo/x") == {"text": "x", "n": 1}
    assert products.get_many(["echo/x", "echo/y"]) == {"echo/x": {"text": "x", "n": 1}, "echo/y": {"text": "y", "n": 1}}
    assert products.get("book_title/999999", "absent") == "absent"
    assert products.get_many(["echo/x", "book_title/999999"]) == {"echo/x": {"text": "x", "n": 1}}
    assert products.has_key("echo/x") and not products.has_key("echo/never")
    with pytest.raises(UnknownPrimer):
        products.get("no_such_primer/1")


def test_backend_writes_only_where_set_allows(db):
    products = caches["products"]
    products.set("echo/w", {"written": True})
    assert Cache.get_instance().get("echo/w") == {"written": True}
    products.set_many({"echo/v": 1})
    assert products.get("echo/v") == 1
    assert products.delete("echo/w") and not Cache.get_instance().is_set("echo/w")
    with pytest.raises(UnknownPrimer):
        products.set("sessions/abc", 1)
    with pytest.raises(ProductCacheWriteError, match=r"set\(timeout=60\) is not allowed: a product's expiry"):
        products.set("echo/w", 1, timeout=60)
    with pytest.raises(ProductCacheWriteError, match="version=2 is not allowed"):
        products.get("echo/w", version=2)
    for write in (lambda: products.add("echo/w", 1), lambda: products.incr("echo/w"),
                  lambda: products.decr("echo/w"), lambda: products.touch("echo/w"), products.clear):
        with pytest.raises(ProductCacheWriteError, match=r"^kck.backends.ProductCache: \w+\(.*\) is not allowed: "):
            write()


def _render(text, **context):
    from django.template.backends.django import DjangoTemplates

    engine = DjangoTemplates({"NAME": "t", "DIRS": [], "APP_DIRS": False, "OPTIONS": {}})  # installed apps' tags
    return engine.from_string("{% load kck_tags %}" + text).render(context)


def test_product_tag(db):
    author = Author.objects.create(name="tag")
    Book.objects.create(author=author, title="One")
    Book.objects.create(author=author, title="Two")
    out = _render("{% product 'title_list' author.id as titles %}{{ titles|length }}:"
                  "{% for t in titles %}{{ t.title }} {% endfor %}", author=author)
    assert out == "2:One Two "
    assert _render("{% product 'echo' text='a/b' as e %}{{ e.text }}") == "a/b"
    assert query("SELECT count(*) FROM kck.cache WHERE key IN (%s, 'echo/a%%2Fb')", ["title_list/%d" % author.id])[0][0] == 2
    with pytest.raises(KeyParameterMismatch, match="2 values given, primer 'echo' has 1"):
        _render("{% product 'echo' 'a' 'b' as e %}")
    with pytest.raises(TemplateSyntaxError):
        _render("{% product %}")


def test_loggers_are_named_kck():
    names = set()
    for path in PACKAGE.rglob("*.py"):
        names.update(re.findall(r"getLogger\(([^)]*)\)", path.read_text()))
    assert names and all(re.fullmatch(r'"kck(\.[a-z_]+)?"', n) for n in names), names


def test_log_lines_reach_django_logging(caplog, monkeypatch):
    from kck.sync import post_migrate_sync

    monkeypatch.setattr(conf, "binary_path", lambda: None)
    with caplog.at_level(logging.WARNING, logger="kck"), override_settings(KCK={"SYNC_ON_MIGRATE": True}):
        post_migrate_sync(sender=None, using="default")
    assert [r.name for r in caplog.records] == ["kck"]
    assert "kck binary was not found" in caplog.records[0].getMessage()


@pytest.mark.parametrize("kck_setting, message", [
    ({"SOFT_EXPIRY": "1m"}, "settings.KCK['SOFT_EXPIRY']: unknown setting (known: BINARY, DATABASE, "),
    ({"DATABASE": "replica"}, "settings.KCK['DATABASE']: 'replica' is not an alias in settings.DATABASES (default, other)"),
    ({"DATABASE": 1}, "settings.KCK['DATABASE']: expected a database alias (str), got 1"),
    ({"SOFT_EXPIRE": "10 minutes"}, "settings.KCK['SOFT_EXPIRE']: period '10 minutes' is not valid"),
    ({"REFRESH_EVERY": 0}, "settings.KCK['REFRESH_EVERY']: 0 is not a whole, positive number of seconds"),
    ({"SYNC_ON_MIGRATE": "yes"}, "settings.KCK['SYNC_ON_MIGRATE']: expected True or False, got 'yes'"),
    ({"REFRESH_QUEUE_SECONDS": -1}, "settings.KCK['REFRESH_QUEUE_SECONDS']: must not be negative, got -1"),
    ({"REFRESH_QUEUE_SECONDS": True}, "settings.KCK['REFRESH_QUEUE_SECONDS']: expected a number of seconds"),
    ({"BINARY": 5}, "settings.KCK['BINARY']: expected a path (str) or None, got 5"),
    (["DATABASE"], "settings.KCK: expected a dict, got list"),
])
def test_bad_settings_stop_startup(kck_setting, message):
    with override_settings(KCK=kck_setting):
        assert conf.setting_problems()[0].startswith(message)
        with pytest.raises(ImproperlyConfigured) as e:
            apps.get_app_config("kck").ready()
        assert str(e.value).startswith(message)


def test_good_settings_pass():
    assert conf.setting_problems() == []
    with override_settings(KCK={"SOFT_EXPIRE": "10m", "HARD_EXPIRE": 3600, "BINARY": None, "REFRESH_QUEUE_SECONDS": 0.5}):
        assert conf.setting_problems() == []


def test_decimal_and_datetime_become_json_strings(db):
    expected = {"price": "12.30", "at": "2024-05-06T07:08:09.123Z", "day": "2024-05-06", "n": 1}
    cache = Cache.get_instance()
    assert cache.get("json_types/1") == expected  # computed on the miss
    assert cache.get_entry("json_types/1").stored
    assert cache.get("json_types/1") == expected  # read back from kck.cache
    assert query("SELECT value->>'price', jsonb_typeof(value->'price') FROM kck.cache WHERE key = 'json_types/1'") == [
        ("12.30", "string")]
