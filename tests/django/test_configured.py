"""Products of primers that `kck install --config` registered (SQL primers, not Python ones), read
through Django's Cache: hits come from kck.cache; misses are computed in process with the statement
kck install stored (kck.primers.client_compute), or by the kck binary when there is none."""

import copy

import pytest
from django.db import transaction

from conftest import BINARY_INSTALLS, NO_INSTALL_REASON, install_config, query
from kck import Cache, InvalidKey, PrimerComputeError, ProductDoesNotExist, UnknownPrimer, configured

pytestmark = pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)

CONFIG = {"primers": [{
    "name": "cfg_count", "parameters": [{"name": "a", "type": "int"}],
    # No row (the product does not exist) for a value no row has.
    "compute": "SELECT to_jsonb(count(*)) FROM kck_cfg_t WHERE a = :a HAVING count(*) > 0",
    "depends_on": [{"table": "kck_cfg_t", "params": {"a": "a"}}],
}, {
    # What a second scanner would get wrong: '%' (DB-API's marker), ':a' in a literal, a '::' cast,
    # a numeric that a float would round, a value with a quote and a DB-API marker in it.
    "name": "cfg_mixed", "parameters": [{"name": "a", "type": "int"}, {"name": "s", "type": "str"}],
    "compute": "SELECT jsonb_build_object('exact', 1.000000000000000000001 * :a, 'pct', 7 % 3, "
               "'like', 'a%' LIKE 'a%%', 'lit', ':a', 'cast', :a::text, 's', :s, 'div', 10 / :a);",
    "depends_on": [{"table": "kck_cfg_t", "params": {"a": "a"}}],
}]}


@pytest.fixture
def sql_primer(db, tmp_path):
    query("CREATE TABLE kck_cfg_t (id serial PRIMARY KEY, a int)")
    query("INSERT INTO kck_cfg_t (a) VALUES (1), (1), (2)")
    install_config(tmp_path, CONFIG)
    configured.forget()
    yield Cache.get_instance()
    install_config(tmp_path, {"primers": []})  # unregisters the primer, removes its trigger
    query("DROP TABLE kck_cfg_t")
    configured.forget()


def _stored(key):
    return query("SELECT value::text, version FROM kck.cache WHERE key = %s", [key])


def test_a_miss_is_computed_by_the_binary_and_stored(sql_primer):
    assert sql_primer.get("cfg_count/1") == 2
    assert _stored("cfg_count/1") == [("2", 1)]
    entry = sql_primer.get_entry("cfg_count/1")
    assert (entry.value, entry.version, entry.primer, entry.stored) == (2, 1, "cfg_count", True)
    assert sql_primer.build_key("cfg_count", a=2) == "cfg_count/2"
    assert sql_primer.is_set("cfg_count/1") and not sql_primer.is_set("cfg_count/2")


def test_a_stored_product_is_served_as_stored(sql_primer):
    # 41 is not what the compute gives (1): served from kck.cache, not computed.
    query("INSERT INTO kck.cache (key, primer, value, version) VALUES ('cfg_count/2', 'cfg_count', '41', 3)")
    assert sql_primer.get("cfg_count/2") == 41
    assert sql_primer.get_entry("cfg_count/2").version == 3
    assert sql_primer.get_many(["cfg_count/2", "cfg_count/1"]) == {"cfg_count/2": 41, "cfg_count/1": 2}


def test_bad_keys_missing_products_and_unknown_primers_raise(sql_primer):
    with pytest.raises(InvalidKey):
        sql_primer.get("cfg_count/x")  # the parameter is an int
    with pytest.raises(ProductDoesNotExist) as e:
        sql_primer.get("cfg_count/7")
    assert "computed no row" in str(e.value)
    assert _stored("cfg_count/7") == []
    with pytest.raises(UnknownPrimer) as e:
        sql_primer.get("cfg_nothing/1")
    assert "kck.primers has none" in str(e.value)


def test_refresh_now_recomputes_and_stores_a_new_version(sql_primer):
    assert sql_primer.get("cfg_count/1") == 2
    query("INSERT INTO kck_cfg_t (a) VALUES (1)")  # no daemon runs: the stored product stays 2
    assert sql_primer.get("cfg_count/1") == 2
    assert sql_primer.refresh("cfg_count/1", queued=False) == 3
    assert _stored("cfg_count/1") == [("3", 2)]


def test_a_miss_inside_a_transaction_is_stored(sql_primer):
    with transaction.atomic():
        assert sql_primer.get("cfg_count/1") == 2
    assert _stored("cfg_count/1") == [("2", 1)]


@pytest.fixture
def no_binary(monkeypatch):
    """Fails the test if a miss runs the kck binary."""
    def refuse(args, alias):
        raise AssertionError("the kck binary ran: %s" % args)
    monkeypatch.setattr(configured, "_run", refuse)


def test_a_miss_is_computed_in_process_with_the_installed_statement(sql_primer, no_binary):
    assert configured.lookup("cfg_count").in_process
    assert sql_primer.get("cfg_count/1") == 2
    assert _stored("cfg_count/1") == [("2", 1)]
    key = "cfg_mixed/2/it's %25(a)s"  # s = "it's %(a)s"
    want = {"exact": 2.000000000000000000002, "pct": 1, "like": True, "lit": ":a", "cast": "2",
            "s": "it's %(a)s", "div": 5}
    assert sql_primer.get(key) == want
    # Stored as the server wrote it: the numeric keeps its 22 digits.
    assert query("SELECT value->>'exact' FROM kck.cache WHERE key = %s", [key]) == [("2.000000000000000000002",)]


def test_a_miss_after_kck_install_redefined_the_primer_is_computed_as_now_defined(sql_primer, no_binary,
                                                                                  tmp_path):
    assert sql_primer.get("cfg_count/1") == 2  # looked up: its statement is kept for the next misses
    redefined = copy.deepcopy(CONFIG)
    compute = redefined["primers"][0]["compute"]
    redefined["primers"][0]["compute"] = compute.replace("count(*)", "count(*) * 10", 1)
    install_config(tmp_path, redefined)
    assert sql_primer.get("cfg_count/2") == 10
    assert _stored("cfg_count/2") == [("10", 1)]
    # The product stored the old way waits for the daemon, which kck install asked to recompute it.
    assert query("SELECT new::text FROM kck.changes WHERE tbl = 'kck.refresh'") == [('{"primer": "cfg_count"}',)]


def test_a_failing_sql_compute_raises_and_stores_nothing(sql_primer, no_binary):
    with pytest.raises(PrimerComputeError) as e:
        sql_primer.get("cfg_mixed/0/x")
    assert "cfg_mixed" in str(e.value) and "division by zero" in str(e.value)
    assert _stored("cfg_mixed/0/x") == []
    assert sql_primer.get("cfg_count/2") == 1  # the connection is still usable
    with pytest.raises(ProductDoesNotExist) as e:
        sql_primer.get("cfg_count/7")
    assert "computed no row" in str(e.value)


def test_a_miss_in_a_transaction_that_wrote_sees_its_writes_and_stores_nothing(sql_primer, no_binary):
    with transaction.atomic():
        query("INSERT INTO kck_cfg_t (a) VALUES (1)")
        assert sql_primer.get("cfg_count/1") == 3
    assert _stored("cfg_count/1") == []


def test_many_misses_are_computed_in_process(sql_primer, no_binary):
    query("INSERT INTO kck_cfg_t (a) SELECT g FROM generate_series(10, 159) g, generate_series(1, 2)")
    keys = ["cfg_count/%d" % a for a in range(10, 160)]
    assert sql_primer.get_many(keys) == {k: 2 for k in keys}
    assert query("SELECT count(*) FROM kck.cache WHERE key = ANY(%s) AND value = '2'", [keys]) == [(150,)]


def test_a_primer_registered_before_schema_11_is_computed_by_the_binary(sql_primer, monkeypatch):
    query("UPDATE kck.primers SET client_compute = NULL")
    configured.forget()
    ran = []
    real = configured._run
    monkeypatch.setattr(configured, "_run", lambda args, alias: ran.append(args) or real(args, alias))
    assert not configured.lookup("cfg_count").in_process
    assert sql_primer.get("cfg_count/1") == 2
    assert ran == [["get", "cfg_count/1"]]
    assert _stored("cfg_count/1") == [("2", 1)]


def test_a_miss_nested_in_a_python_primers_compute_is_computed_in_its_transaction(sql_primer, no_binary):
    from kck import Primer, isolated_registry

    with isolated_registry():
        class Outer(Primer):
            key = "cfg_outer"

            def compute(self, key):
                return {"inner": Cache.get_instance().get("cfg_count/1")}

        assert sql_primer.get("cfg_outer") == {"inner": 2}
    assert _stored("cfg_count/1") == [("2", 1)]
    assert query("SELECT value::text FROM kck.cache WHERE key = 'cfg_outer'") == [('{"inner": 2}',)]
