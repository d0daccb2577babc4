#!/usr/bin/env python3
"""manage.py for the test settings: `kcktest_manage.py kck_worker` is the worker the e2e tests run."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
for p in (ROOT / "django", ROOT / "examples" / "bookstore_django", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kcktest_settings")

from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(sys.argv)
