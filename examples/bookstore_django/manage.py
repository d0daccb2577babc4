#!/usr/bin/env python3
"""Django's command-line utility for the kck bookstore example."""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Use the kck package of this checkout (django/kck) unless kck is installed.
KCK_PACKAGE_DIR = HERE.parent.parent / "django"


def main():
    if (KCK_PACKAGE_DIR / "kck" / "__init__.py").is_file() and str(KCK_PACKAGE_DIR) not in sys.path:
        sys.path.insert(0, str(KCK_PACKAGE_DIR))
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookstore.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
