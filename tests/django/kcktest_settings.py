"""Settings for tests/django: the bookstore example plus the test-only app kcktestapp."""

import os

from bookstore.settings import *  # noqa: F401,F403
from bookstore.settings import INSTALLED_APPS, KCK

INSTALLED_APPS = INSTALLED_APPS + ["kcktestapp"]

KCK = dict(KCK, SYNC_ON_MIGRATE=os.environ.get("KCK_TEST_SYNC_ON_MIGRATE", "0") == "1")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "products": {"BACKEND": "kck.backends.ProductCache"},
}
