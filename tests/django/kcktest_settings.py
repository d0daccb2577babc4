"""Settings for tests/django: the bookstore example plus the test-only app kcktestapp, and a second
database 'other' that no router uses here (kcktest_multidb_settings routes kcktestapp to it)."""

import os

from bookstore.settings import *  # noqa: F401,F403
from bookstore.settings import DATABASES, INSTALLED_APPS, KCK

INSTALLED_APPS = INSTALLED_APPS + ["kcktestapp"]
DATABASES = dict(DATABASES, other=dict(DATABASES["default"], NAME=DATABASES["default"]["NAME"] + "_other"))

KCK = dict(KCK, SYNC_ON_MIGRATE=os.environ.get("KCK_TEST_SYNC_ON_MIGRATE", "0") == "1")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "products": {"BACKEND": "kck.backends.ProductCache"},
}
