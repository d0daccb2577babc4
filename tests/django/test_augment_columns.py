"""Depends(Model, param='col', columns=[...]): extra columns captured for augment().

kck_sync passes the columns through to `kck install`, the capture triggers copy them, and
augment() gets complete old/new images of them, end to end with a real `kck listen`.
"""

import io
import json

import pytest
from django.core.management import call_command

from conftest import BINARY_INSTALLS, BINARY_LISTENS, KCK_BINARY, NO_INSTALL_REASON, NO_LISTEN_REASON, query, wait_for
from kck import Cache, Depends, Primer, PrimerDefinitionError, isolated_registry
from kck.exceptions import KckSyncError
from kck.problems import all_problems
from kck.sync import build_config, sync
from store.models import Author, Book
from store.primers import TitleListPrimer

TITLE_LOG_RULE = {"table": "store_book", "params": {"author_id": "author_id"}, "columns": ["title"]}


def _spec(name):
    return next(p for p in build_config()["primers"] if p["name"] == name)


def test_config_passes_columns_through():
    assert _spec("title_log")["depends_on"] == [TITLE_LOG_RULE]
    assert _spec("title_log")["augment"] is True
    out = io.StringIO()
    call_command("kck_sync", "--print-config", stdout=out)
    printed = next(p for p in json.loads(out.getvalue())["primers"] if p["name"] == "title_log")
    assert printed["depends_on"] == [TITLE_LOG_RULE]


def test_field_names_become_columns():
    with isolated_registry():
        class ByAuthor(Primer):
            key = "by_author"
            parameters = [{"name": "author_id", "from_str": int}]
            depends_on = [Depends(Book, author_id="author", columns=["author", "title"])]

            def compute(self, key):
                return 0

        assert ByAuthor().to_spec()["depends_on"] == [
            {"table": "store_book", "params": {"author_id": "author_id"}, "columns": ["author_id", "title"]}]


@pytest.mark.parametrize("make, message", [
    (lambda: Depends(Book, author_id="author_id", columns="title"), "columns= must be a list of column names"),
    (lambda: Depends(Book, columns=["title", ""]), "columns= must be a list of column names"),
    (lambda: Depends(TitleListPrimer, author_id="author_id", columns=["title"]), "not on another primer"),
])
def test_bad_columns(make, message):
    with pytest.raises(PrimerDefinitionError, match=message):
        make()


def test_column_not_a_field_names_the_class():
    with isolated_registry() as reg:
        class MisspeltColumnPrimer(Primer):
            key = "misspelt"
            parameters = [{"name": "author_id", "from_str": int}]
            depends_on = [Depends(Book, author_id="author_id", columns=["titel"])]

            def compute(self, key):
                return 0

        [problem] = all_problems(reg)
        assert problem.id == "kck.E002"
        assert problem.msg.startswith("test_augment_columns.py: ")
        assert problem.msg.endswith("MisspeltColumnPrimer: Depends(Book, author_id='author_id', "
                                    "columns=['titel']): Book has no field \"titel\"")
        with pytest.raises(KckSyncError, match=r'MisspeltColumnPrimer: .*Book has no field "titel"'):
            sync(binary=KCK_BINARY)


@pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)
def test_registry_and_capture_keep_the_columns(pg_cluster):
    sync(binary=KCK_BINARY)
    [(spec,)] = query("SELECT spec FROM kck.primers WHERE name = 'title_log'")
    spec = spec if isinstance(spec, dict) else json.loads(spec)
    assert spec["depends_on"][0]["columns"] == ["title"]


@pytest.fixture(scope="module")
def daemon(pg_cluster):
    if not BINARY_LISTENS:
        pytest.skip(NO_LISTEN_REASON)
    from test_e2e import Daemon

    sync(binary=KCK_BINARY)
    query("TRUNCATE kck.cache")
    query("TRUNCATE kck.changes")
    d = Daemon()
    d.start()
    yield d
    d.stop()


def _eventually_seen(key, seen):
    cache = Cache.get_instance()
    return wait_for(lambda: cache.get(key)["seen"] == seen and cache.get(key), timeout=10.0,
                    what="%s seen == %r" % (key, seen))


@pytest.mark.e2e
def test_augment_gets_captured_columns_end_to_end(daemon):
    author = Author.objects.create(name="columns e2e")
    key = "title_log/%d" % author.id
    assert Cache.get_instance().get(key) == {"titles": [], "seen": []}
    book = Book.objects.create(author=author, title="Alpha")
    assert _eventually_seen(key, [["I", None, "Alpha"]])["titles"] == ["Alpha"]
    book.title = "Beta"
    book.save()
    value = _eventually_seen(key, [["I", None, "Alpha"], ["U", "Alpha", "Beta"]])
    assert value["titles"] == ["Beta"]
    book.delete()
    value = _eventually_seen(key, [["I", None, "Alpha"], ["U", "Alpha", "Beta"], ["D", "Beta", None]])
    assert value["titles"] == []
    assert query("SELECT count(*) FROM kck.primer_stats WHERE primer = 'title_log' AND augment_fallbacks > 0")[0][0] == 0
