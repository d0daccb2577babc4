#!/usr/bin/env python3
"""manage.py of the torture suite's Django project: `kck_sync` registers its Python primers,
`kck_worker` is the worker every daemon of the torture runs. The database is the torture's
own, named by $KCK_TORTURE_DB (see torture_settings.py)."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent.parent
for p in (ROOT / "django", HERE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "torture_settings")

from django.core.management import execute_from_command_line  # noqa: E402

execute_from_command_line(sys.argv)
