"""Settings of the kck bookstore example.

The database comes from $KCK_DATABASE_URL (a libpq URI or key=value conninfo, as the kck
command takes) or else from the usual PG* variables (PGHOST, PGPORT, PGDATABASE, PGUSER,
PGPASSWORD); the kck binary from $KCK_BINARY or PATH.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "kck-bookstore-example-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "kck",
    "store",
]

MIDDLEWARE = [
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "bookstore.urls"
WSGI_APPLICATION = "bookstore.wsgi.application"


def _database_from_env():
    url = os.environ.get("KCK_DATABASE_URL")
    if url:
        from psycopg2.extensions import parse_dsn

        params = parse_dsn(url)
        db = {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": params.pop("dbname", None) or os.environ.get("PGDATABASE", "bookstore"),
            "USER": params.pop("user", ""),
            "PASSWORD": params.pop("password", ""),
            "HOST": params.pop("host", ""),
            "PORT": params.pop("port", ""),
        }
        if params:
            db["OPTIONS"] = params
        return db
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("PGDATABASE", "bookstore"),
        "USER": os.environ.get("PGUSER", ""),
        "PASSWORD": os.environ.get("PGPASSWORD", ""),
        "HOST": os.environ.get("PGHOST", ""),
        "PORT": os.environ.get("PGPORT", ""),
    }


DATABASES = {"default": _database_from_env()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

KCK = {
    "DATABASE": "default",
    "BINARY": os.environ.get("KCK_BINARY") or None,
    # Defaults for primers that set none; the daemon refreshes products eagerly anyway.
    "SOFT_EXPIRE": None,
    "HARD_EXPIRE": None,
    "REFRESH_EVERY": None,
}

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "loggers": {"kck": {"handlers": ["stderr"], "level": os.environ.get("KCK_LOG_LEVEL", "WARNING")}},
}
