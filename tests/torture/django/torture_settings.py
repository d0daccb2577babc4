"""Settings of the torture suite's Django project (tests/torture): the kck app and
torturestore, whose unmanaged models map onto the tables the torture creates.

$KCK_TORTURE_DB names the database as a libpq conninfo (the torture's private cluster and
its fresh database per test); $KCK_BINARY is the kck binary kck_sync runs.
"""

import os

from psycopg2.extensions import parse_dsn

SECRET_KEY = "kck-torture-not-a-secret"
INSTALLED_APPS = ["kck", "torturestore"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _database():
    if "KCK_TORTURE_DB" not in os.environ:
        raise RuntimeError("torture_settings: $KCK_TORTURE_DB (a libpq conninfo) is not set")
    params = parse_dsn(os.environ["KCK_TORTURE_DB"])
    db = {"ENGINE": "django.db.backends.postgresql", "NAME": params.pop("dbname"),
          "USER": params.pop("user", ""), "PASSWORD": params.pop("password", ""),
          "HOST": params.pop("host", ""), "PORT": params.pop("port", "")}
    if params:
        db["OPTIONS"] = params  # application_name: the test tells the worker's backends apart
    return db


DATABASES = {"default": _database()}

KCK = {"DATABASE": "default", "BINARY": os.environ.get("KCK_BINARY") or None, "SYNC_ON_MIGRATE": False}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"kck": {"handlers": ["stderr"], "level": "WARNING"}},
}
