"""kck's system check: primers that no longer match the database are Errors (kck.E001)."""

import json
import subprocess

import pytest
from django.core import checks

from conftest import BINARY_INSTALLS, CONNINFO, KCK_BINARY, NO_INSTALL_REASON, query

CONFIG = {"primers": [{
    "name": "check_by_a", "parameters": [{"name": "a", "type": "int"}],
    "compute": "SELECT to_jsonb(count(*)) FROM kck_check_t WHERE a = :a",
    "depends_on": [{"table": "kck_check_t", "params": {"a": "a"}}],
}]}


def _install(tmp_path, config):
    path = tmp_path / "primers.json"
    path.write_text(json.dumps(config))
    p = subprocess.run([KCK_BINARY, "--db", CONNINFO, "install", "--config", str(path)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=60)
    assert p.returncode == 0, p.stdout


def _kck_errors(databases):
    return [m for m in checks.run_checks(databases=databases) if m.id == "kck.E001"]


@pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)
def test_renamed_column_is_reported_until_the_primer_is_fixed(db, tmp_path):
    query("CREATE TABLE kck_check_t (id serial PRIMARY KEY, a int)")
    try:
        _install(tmp_path, CONFIG)
        assert _kck_errors(["default"]) == []
        query("ALTER TABLE kck_check_t RENAME COLUMN a TO b")
        query("INSERT INTO kck_check_t (b) VALUES (1)")  # the application's write still works
        errors = _kck_errors(["default"])
        assert len(errors) == 1, errors
        assert errors[0].level == checks.ERROR
        assert errors[0].msg == 'primer "check_by_a": depends_on[0]: table "public.kck_check_t" has no column "a"'
        assert "kck install" in errors[0].hint
        # Not tagged for plain `manage.py check`: without a database it does not connect.
        assert _kck_errors(None) == []
        fixed = json.loads(json.dumps(CONFIG))
        fixed["primers"][0]["compute"] = "SELECT to_jsonb(count(*)) FROM kck_check_t WHERE b = :a"
        fixed["primers"][0]["depends_on"][0]["params"] = {"a": "b"}
        _install(tmp_path, fixed)
        assert _kck_errors(["default"]) == []
    finally:
        _install(tmp_path, {"primers": []})  # unregisters the config primers, removes their trigger
        query("DROP TABLE kck_check_t")
