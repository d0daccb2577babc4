"""manage.py kck_sync: the config it builds, how it runs `kck install`, and (with a kck
binary that supports it) --dry-run and idempotence against the real database."""

import io
import json
import logging
import os
import stat

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from conftest import BINARY_INSTALLS, KCK_BINARY, NO_INSTALL_REASON, query
from kck.exceptions import KckSyncError
from kck.sync import build_config, conninfo, post_migrate_sync, sync

FAKE_KCK = r"""#!/bin/sh
out="$FAKE_KCK_OUT"
printf '%s\n' "$@" > "$out.argv"
while [ $# -gt 0 ]; do
  if [ "$1" = "--config" ]; then cp "$2" "$out.config"; fi
  shift
done
echo "${PGPASSWORD-unset}" > "$out.pw"
echo "primer echo: registered"
echo "some detail" >&2
if [ -n "$FAKE_KCK_FAIL" ]; then echo "$FAKE_KCK_FAIL" >&2; exit 2; fi
exit 0
"""


@pytest.fixture
def fake_kck(tmp_path, monkeypatch):
    path = tmp_path / "kck"
    path.write_text(FAKE_KCK)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    out = tmp_path / "out"
    monkeypatch.setenv("FAKE_KCK_OUT", str(out))

    class Fake:
        binary = str(path)

        @staticmethod
        def argv():
            return (tmp_path / "out.argv").read_text().splitlines()

        @staticmethod
        def config():
            return json.loads((tmp_path / "out.config").read_text())

        @staticmethod
        def password():
            return (tmp_path / "out.pw").read_text().strip()

    return Fake


def test_print_config():
    out = io.StringIO()
    call_command("kck_sync", "--print-config", stdout=out)
    assert json.loads(out.getvalue()) == build_config()


def test_conninfo_of_the_alias():
    info, env = conninfo()
    assert "dbname='kck_test'" in info and "host='" in info and "user='postgres'" in info
    assert "password" not in info and env == {}


def test_conninfo_quotes_and_keeps_the_password_off_the_command_line(monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "NAME", "my db's")
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", "s3cr'et")
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"sslmode": "prefer", "isolation_level": 1})
    info, env = conninfo()
    assert "dbname='my db\\'s'" in info and "sslmode='prefer'" in info
    assert "isolation_level" not in info and "s3cr" not in info
    assert env == {"PGPASSWORD": "s3cr'et"}


def test_sync_runs_kck_install(fake_kck, monkeypatch):
    monkeypatch.setitem(connection.settings_dict, "PASSWORD", "pw")
    result = sync(binary=fake_kck.binary)
    argv = fake_kck.argv()
    assert argv[0] == "--db" and argv[2:4] == ["install", "--config"] and len(argv) == 5
    assert argv[1] == conninfo()[0]
    assert fake_kck.config() == build_config() == result.config
    assert fake_kck.password() == "pw"
    assert not os.path.exists(argv[4])  # the temp config is removed


def test_kck_sync_dry_run_command(fake_kck):
    out = io.StringIO()
    call_command("kck_sync", "--dry-run", binary=fake_kck.binary, stdout=out)
    assert fake_kck.argv()[-1] == "--dry-run"
    text = out.getvalue()
    assert text.startswith("-- kck_sync --dry-run: database 'default': config (%d primer(s))"
                           % len(build_config()["primers"]))
    assert '--   "source": "django"' in text
    assert text.rstrip().endswith("primer echo: registered")


def test_kck_sync_failure_is_a_command_error(fake_kck, monkeypatch):
    monkeypatch.setenv("FAKE_KCK_FAIL", 'config.json: primer "x": depends_on[0]: table "nope" does not exist')
    with pytest.raises(CommandError, match=r'kck install failed \(exit 2\): some detail\s+config.json: primer "x"'):
        call_command("kck_sync", binary=fake_kck.binary, stdout=io.StringIO(), stderr=io.StringIO())


def test_missing_binary(caplog):
    with pytest.raises(KckSyncError, match="could not run /nonexistent/kck"):
        sync(binary="/nonexistent/kck")
    with override_settings(KCK={"BINARY": "/nonexistent/kck", "SYNC_ON_MIGRATE": True}):
        with caplog.at_level(logging.WARNING, logger="kck"):
            post_migrate_sync(sender=None, using="default")
    assert "kck binary was not found; skipping kck_sync" in caplog.text


def test_post_migrate_runs_the_sync(fake_kck):
    with override_settings(KCK={"BINARY": fake_kck.binary, "SYNC_ON_MIGRATE": True}):
        post_migrate_sync(sender=None, using="default", verbosity=0)
        assert fake_kck.argv()[2] == "install"
        post_migrate_sync(sender=None, using="other", verbosity=0)  # another alias: nothing


# -- against the real binary ------------------------------------------------------

needs_install = pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)


def _registry_state():
    return (query("SELECT name, spec::text, engine, updated_at FROM kck.primers ORDER BY name"),
            query("SELECT tbl, function, definition, installed_at FROM kck.triggers ORDER BY tbl"))


@needs_install
def test_real_sync_registers_primers_and_triggers(pg_cluster):
    sync(binary=KCK_BINARY)
    names = [r[0] for r in query("SELECT name FROM kck.primers WHERE spec->>'source' = 'django' OR engine = 'python'")]
    assert set(build_config_names()) <= set(names)
    tables = {r[0] for r in query("SELECT tbl FROM kck.triggers")}
    assert {"public.store_book", "public.store_review", "public.store_author"} <= tables
    spec = json.loads(query("SELECT spec::text FROM kck.primers WHERE name = 'author_stats'")[0][0])
    assert spec["engine"] == "python" and spec["augment"] is True
    assert spec["depends_on"][1]["python_rule"] == 1


def build_config_names():
    return [p["name"] for p in build_config()["primers"]]


@needs_install
def test_real_sync_is_idempotent(pg_cluster):
    sync(binary=KCK_BINARY)
    before = _registry_state()
    result = sync(binary=KCK_BINARY)
    assert _registry_state() == before
    assert "registered" not in result.stdout and "updated" not in result.stdout


@needs_install
def test_real_dry_run_changes_nothing(pg_cluster):
    sync(binary=KCK_BINARY)
    before = _registry_state()
    out = io.StringIO()
    with override_settings(KCK={"SOFT_EXPIRE": "5m"}):  # would update every primer
        call_command("kck_sync", "--dry-run", binary=KCK_BINARY, stdout=out)
    assert _registry_state() == before
    assert "kck.primers" in out.getvalue()  # the SQL it would run


@needs_install
def test_migrate_runs_kck_sync(pg_cluster):
    assert pg_cluster["schema_by"] == "kck install"  # the session's migrate already synced
    query("DELETE FROM kck.primers WHERE name = 'echo'")
    call_command("migrate", verbosity=0)
    assert query("SELECT engine, spec->>'source' FROM kck.primers WHERE name = 'echo'") == [("python", "django")]
