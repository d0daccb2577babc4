"""kck's system check: primers that no longer match the database are Errors (kck.E001)."""

import io
import json
import logging

import pytest
from django.core import checks

from conftest import BINARY_INSTALLS, KCK_BINARY, NO_INSTALL_REASON, install_config, query

CONFIG = {"primers": [{
    "name": "check_by_a", "parameters": [{"name": "a", "type": "int"}],
    "compute": "SELECT to_jsonb(count(*)) FROM kck_check_t WHERE a = :a",
    "depends_on": [{"table": "kck_check_t", "params": {"a": "a"}}],
}]}


def _kck_errors(databases):
    return [m for m in checks.run_checks(databases=databases) if m.id == "kck.E001"]


@pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)
def test_renamed_column_is_reported_until_the_primer_is_fixed(db, tmp_path):
    query("CREATE TABLE kck_check_t (id serial PRIMARY KEY, a int)")
    try:
        install_config(tmp_path, CONFIG)
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
        install_config(tmp_path, fixed)
        assert _kck_errors(["default"]) == []
    finally:
        install_config(tmp_path, {"primers": []})  # unregisters the config primers, removes their trigger
        query("DROP TABLE kck_check_t")


# -- primer mistakes at `manage.py check` (no database) -------------------------------

from django.core.management import call_command  # noqa: E402
from django.core.management.base import SystemCheckError  # noqa: E402
from django.test import override_settings  # noqa: E402

from kck import Depends, IntParameter, Primer, isolated_registry  # noqa: E402
from kck.exceptions import KckSyncError  # noqa: E402
from kck.sync import sync  # noqa: E402
from store.models import Book  # noqa: E402


def _primer_messages():
    return [(m.id, m.level, m.msg) for m in checks.run_checks() if m.id and m.id.startswith("kck.")
            and m.id != "kck.E001"]


def test_primer_mistakes_are_reported_without_a_database():
    with isolated_registry():
        class TitleListPrimer(Primer):
            key = "t_list"
            parameters = [IntParameter("author_id")]
            depends_on = [Depends(Book, author_id="writer_id")]

            def compute(self, key):
                return []

        class NoComputePrimer(Primer):
            key = "t_nocompute"
            depends_on = [Depends(Book)]

        class NeverPrimer(Primer):
            key = "t_never"

            def compute(self, key):
                return 1

        class OnPrimer(Primer):
            key = "t_on"
            parameters = [IntParameter("a")]
            depends_on = [Depends(TitleListPrimer, a="author")]

            def compute(self, key):
                return 1

        assert sorted(_primer_messages()) == sorted([
            ("kck.E002", checks.ERROR, "test_checks.py: test_primer_mistakes_are_reported_without_a_database."
             "<locals>.TitleListPrimer: Depends(Book, author_id='writer_id'): Book has no field \"writer_id\""),
            ("kck.E003", checks.ERROR, "test_checks.py: test_primer_mistakes_are_reported_without_a_database."
             "<locals>.NoComputePrimer: no compute(self, key)"),
            ("kck.W001", checks.WARNING, "test_checks.py: test_primer_mistakes_are_reported_without_a_database."
             "<locals>.NeverPrimer: neither depends_on nor refresh_every: its products are never refreshed"),
            ("kck.E004", checks.ERROR, "test_checks.py: test_primer_mistakes_are_reported_without_a_database."
             "<locals>.OnPrimer: Depends(t_list, a='author'): primer \"t_list\" has no parameter \"author\""),
        ])
        with isolated_registry():
            class PricePrimer(Primer):
                key = "t_price"
                parameters = [IntParameter("author_id")]
                depends_on = [Depends(Book, author_id="author", update_of=["cost"])]

                def compute(self, key):
                    return 0

            assert [m for m in _primer_messages() if m[0] == "kck.E002"] == [
                ("kck.E002", checks.ERROR, "test_checks.py: test_primer_mistakes_are_reported_without_a_database."
                 "<locals>.PricePrimer: Depends(Book, author_id='author', update_of=['cost']): "
                 "Book has no field \"cost\"")]
        with pytest.raises(SystemCheckError, match=r"kck.E002.*Book has no field \"writer_id\""):
            call_command("check")
        with pytest.raises(KckSyncError, match=r"nothing installed: test_checks.py: .*TitleListPrimer: "):
            sync(binary="/nonexistent/kck")


def test_correct_primers_pass_the_check():
    with isolated_registry():
        class GoodPrimer(Primer):
            key = "t_good"
            parameters = [IntParameter("author_id")]
            depends_on = [Depends(Book, author_id="author"), Depends(Book, author_id="author_id"),
                          Depends(Book, author_id="author", update_of=["title", "author"])]

            def compute(self, key):
                return []

        class Periodic(Primer):
            key = "t_periodic"
            refresh_every = "1h"

            def compute(self, key):
                return 1

        assert _primer_messages() == []
        call_command("check", stdout=io.StringIO())


# -- migrations that rename or drop a depended-on field --------------------------------------

def _note_trigger():
    return query("SELECT definition FROM kck.triggers WHERE tbl = 'public.kcktestapp_note'")


@pytest.mark.skipif(not BINARY_INSTALLS, reason=NO_INSTALL_REASON)
def test_migration_renaming_a_depended_on_field_does_not_abort_migrate(db, caplog):
    with override_settings(KCK={"BINARY": KCK_BINARY, "SYNC_ON_MIGRATE": True}):
        call_command("migrate", "kcktestapp", verbosity=0)  # primers synced, capture of kcktestapp_note
        before = _note_trigger()
        assert before
        try:
            with override_settings(MIGRATION_MODULES={"kcktestapp": "kcktestapp.rename_migrations"}):
                for target in ("0002", "0003"):
                    caplog.clear()
                    with caplog.at_level(logging.WARNING, logger="kck"):
                        call_command("migrate", "kcktestapp", target, verbosity=0)  # no exception
                    assert 'kcktestapp/primers.py: NoteOwnerPrimer (primer "note_count"): depends_on[0]: ' \
                           'table "public.kcktestapp_note" has no column "owner_id"' in caplog.text, caplog.text
                    assert "kck-django-" not in caplog.text  # no temp file named
                    assert _note_trigger() == before  # the previous triggers stay
                    query("INSERT INTO kcktestapp_note (title) VALUES ('still writable')")
                    assert query("SELECT count(*) FROM kck.changes WHERE tbl = 'public.kcktestapp_note' "
                                 "AND op = 'T'")[0][0] >= 1  # the capture degraded
                assert [e.id for e in _kck_errors(["default"])] == ["kck.E001"]
                call_command("migrate", "kcktestapp", "0001", verbosity=0)
        finally:
            query("TRUNCATE kcktestapp_note")
    assert _note_trigger() == before
