"""kcktest_settings with a router: the models of kcktestapp (Note) live in the database 'other',
so its primer note_count belongs there; every other primer stays on 'default'."""

from kcktest_settings import *  # noqa: F401,F403

DATABASE_ROUTERS = ["kcktest_multidb_settings.NotesRouter"]


class NotesRouter:
    def db_for_read(self, model, **hints):
        return "other" if model._meta.app_label == "kcktestapp" else None

    db_for_write = db_for_read

    def allow_migrate(self, db, app_label, **hints):
        return db == ("other" if app_label == "kcktestapp" else "default")
