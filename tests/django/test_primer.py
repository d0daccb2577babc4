"""Primer classes, Depends rules and their registry entries (no database needed)."""

import datetime

import pytest
from django.test import override_settings

from kck import (CannotAugment, Change, Depends, IntParameter, Primer, PrimerDefinitionError, StrParameter,
                 isolated_registry, registry)
from kck.sync import build_config
from store.models import Book, Review


def spec_of(name):
    return registry().get(name).to_spec()


def test_example_primers_are_discovered_from_primers_py():
    names = registry().names()
    for name in ("title_list", "author_stats", "top_books", "echo", "legacy"):
        assert name in names


def test_title_list_spec():
    assert spec_of("title_list") == {
        "name": "title_list", "engine": "python", "parameters": [{"name": "author_id", "type": "int"}],
        "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}}], "augment": False}


def test_author_stats_spec():
    assert spec_of("author_stats") == {
        "name": "author_stats", "engine": "python", "parameters": [{"name": "author_id", "type": "int"}],
        "depends_on": [{"table": "store_book", "params": {"author_id": "author_id"}},
                       {"table": "store_review", "python_rule": 1, "columns": ["book_id", "rating"]}],
        "augment": True}


def test_top_books_spec_depends_on_whole_tables():
    assert spec_of("top_books")["depends_on"] == [{"table": "store_review", "params": {}},
                                                 {"table": "store_book", "params": {}}]


def test_legacy_spellings():
    spec = spec_of("legacy")
    assert spec["soft_expire"] == "1m" and spec["hard_expire"] == "1h"
    assert spec["parameters"] == [{"name": "id", "type": "int"}]
    assert registry().get("legacy").key == "legacy"


def test_expiry_defaults_from_settings():
    with override_settings(KCK={"SOFT_EXPIRE": "90s", "HARD_EXPIRE": datetime.timedelta(hours=2),
                                "REFRESH_EVERY": 600}):
        spec = spec_of("echo")
        assert (spec["soft_expire"], spec["hard_expire"], spec["refresh_every"]) == ("90s", "2h", "10m")
        assert spec_of("legacy")["soft_expire"] == "1m"  # the primer's own value wins
    assert "soft_expire" not in spec_of("echo")


def test_build_config_has_every_primer_once():
    config = build_config()
    assert config["source"] == "django"
    names = [p["name"] for p in config["primers"]]
    assert names == registry().names()
    assert all(p["engine"] == "python" for p in config["primers"])


def test_key_helpers():
    p = registry().get("typed")
    key = p.build_key(a=1, b="x y/z", c=False, d=datetime.date(2020, 1, 31))
    assert key == "typed/1/x y%2Fz/false/2020-01-31"
    assert p.key_to_param_dict(key) == {"a": 1, "b": "x y/z", "c": False, "d": datetime.date(2020, 1, 31)}
    assert p.param_dict_to_key({"a": 1, "b": "x y/z", "c": False, "d": "2020-01-31"}) == key


def test_primer_and_depends_rules():
    with isolated_registry() as reg:
        class Base(Primer):  # no key: a base class, not registered
            def compute(self, key):
                return 1

        class Stats(Base):
            key = "stats"
            parameters = [IntParameter("author_id")]
            depends_on = [Depends(Book, author_id="author")]

        class Derived(Base):
            key = "derived"
            parameters = [IntParameter("a"), StrParameter("b")]
            depends_on = [Depends(Stats, a="author_id"), Depends.on_primer("stats", a="author_id"),
                          Depends("public.store_review", keys=lambda o, n: [], columns=["book"]),
                          Depends(Review, keys=lambda o, n: []), Depends(Book, a="author_id")]

        assert reg.names() == ["derived", "stats"]
        assert Derived().to_spec()["depends_on"] == [
            {"primer": "stats", "params": {"a": "author_id"}},
            {"primer": "stats", "params": {"a": "author_id"}},
            {"table": "public.store_review", "python_rule": 2, "columns": ["book"]},
            {"table": "store_review", "python_rule": 3},
            {"table": "store_book", "params": {"a": "author_id"}}]
        assert Stats().to_spec()["depends_on"] == [{"table": "store_book", "params": {"author_id": "author_id"}}]


@pytest.mark.parametrize("body, message", [
    ({"key": "Bad-Name"}, "not a valid primer name"),
    ({"key": "x" * 64}, "not a valid primer name"),
    ({"key": "p", "parameters": [{"name": "a"}, {"name": "a"}]}, "duplicate parameter"),
    ({"key": "p", "parameters": [{"name": "A"}]}, "must match"),
    ({"key": "p", "parameters": [{"name": "a", "form_str": int}]}, "unknown field(s) form_str"),
    ({"key": "p", "parameters": [{"name": "a", "type": "float"}]}, "is not int, str, bool or date"),
    ({"key": "p", "depends_on": [Depends(Book, nope="author_id")]}, "unknown parameter 'nope'"),
    ({"key": "p", "depends_on": ["store_book"]}, "is not a Depends"),
    ({"key": "p", "soft_expire": "10 minutes"}, "is not valid"),
    ({"key": "p", "hard_expire": 0}, "not a whole, positive number"),
    ({"key": "p", "refresh_every": 1.5}, "not a whole, positive number"),
    ({"key": "p", "augment_max_changes": 0}, "augment_max_changes 0 is not an integer from 1 to 1000000"),
    ({"key": "p", "augment_max_changes": True}, "augment_max_changes True"),
])
def test_definition_errors(body, message):
    with isolated_registry():
        with pytest.raises(PrimerDefinitionError) as e:
            type("P", (Primer,), dict(body, compute=lambda self, key: 1))
        assert message in str(e.value)


@pytest.mark.parametrize("make, message", [
    (lambda: Depends(Book, keys=lambda o, n: [], author_id="author_id"), "either parameters or keys="),
    (lambda: Depends(42), "must be a model class"),
    (lambda: Depends(Book, keys="not callable"), "keys must be a callable"),
    (lambda: Depends(Book, author_id="author_id", update_of="price"), "update_of= must be a list of column names"),
    (lambda: Depends(Book, author_id="author_id", update_of=[]), "update_of= must name at least one column"),
    (lambda: Depends(_stats_class(), update_of=["x"]),
     "update_of= is for rules on tables"),
    (lambda: Depends(Review, keys=lambda o, n: [], update_of=["rating"]), "update_of= with keys= needs columns="),
])
def test_depends_errors(make, message):
    with pytest.raises(PrimerDefinitionError, match=message):
        make()


def _stats_class():
    with isolated_registry():
        class Stats(Primer):
            key = "stats"
        return Stats


def test_update_of_reaches_the_spec_as_columns():
    rule = Depends(Book, author_id="author", update_of=["author", "title"])
    assert rule.to_spec(0) == {"table": "store_book", "params": {"author_id": "author_id"},
                               "update_of": ["author_id", "title"]}
    assert rule.describe() == "Depends(Book, author_id='author', update_of=['author', 'title'])"
    keys = Depends(Review, keys=lambda o, n: [], columns=["book"], update_of=["rating"])
    assert keys.to_spec(1) == {"table": "store_review", "python_rule": 1, "columns": ["book_id"],
                               "update_of": ["rating"]}


def test_augment_max_changes_reaches_the_spec():
    with isolated_registry():
        class P(Primer):
            key = "p"
            augment_max_changes = 5

        class Q(Primer):
            key = "q"

        assert P().to_spec()["augment_max_changes"] == 5
        assert "augment_max_changes" not in Q().to_spec()


def test_warm_reaches_the_spec():
    with isolated_registry():
        class P(Primer):
            key = "p"
            warm_every = "1h"

            def warm(self):
                return [{}]

        class Q(Primer):
            key = "q"
            warm_every = "1h"

        assert P().to_spec()["warm"] is True and P().to_spec()["warm_every"] == "1h"
        assert P().warm_keys() == ["p"]
        with pytest.raises(PrimerDefinitionError, match="warm_every needs a warm"):
            Q().to_spec()


def test_soft_longer_than_hard_is_an_error():
    with isolated_registry():
        class P(Primer):
            key = "p"
            soft_expire = "2h"
            hard_expire = "1h"

        with pytest.raises(PrimerDefinitionError, match="soft_expire is longer"):
            P().to_spec()


def test_two_primers_with_one_name():
    with isolated_registry() as reg:
        class A(Primer):
            key = "same"

        with pytest.raises(PrimerDefinitionError, match="defined twice"):
            type("B", (Primer,), {"key": "same"})
        # Re-running the same class definition (a module reload) replaces it.
        class A(Primer):  # noqa: F811
            key = "same"

        assert reg.get("same").__class__ is A


def test_change():
    c = Change("public.store_book", "U", {"id": 1}, {"id": 1})
    assert c["op"] == "U" and c.get("new") == {"id": 1} and c.get("nope", 5) == 5
    assert c.is_table(Book) and c.is_table("store_book") and c.is_table("public.store_book")
    assert not c.is_table(Review) and not c.is_table("other.store_book")


def test_augment_is_optional():
    assert registry().get("author_stats").has_augment()
    assert not registry().get("title_list").has_augment()
    assert issubclass(CannotAugment, Exception)
