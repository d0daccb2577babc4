import json
import logging
import os
import sys

from django.core.management.base import BaseCommand
from django.db import connections


def use_test_database_names():
    """Points the connections at the databases kck.testing.drain() names (the test runner's)."""
    names = json.loads(os.environ.get("KCK_WORKER_DATABASE_NAMES") or "{}")
    for alias, name in names.items():
        if alias in connections:
            connections[alias].settings_dict["NAME"] = name


class Command(BaseCommand):
    help = ("Computes Python primers for the kck daemon: JSON lines on stdin/stdout "
            "(started by `kck listen --python-worker`). Logs go to stderr.")
    requires_system_checks = []  # start fast: the daemon restarts workers

    def add_arguments(self, parser):
        parser.add_argument("--log-level", default=os.environ.get("KCK_WORKER_LOG_LEVEL", "WARNING"))
        parser.add_argument("--database", default=None,
                            help="serve the primers of this alias only (kck_listen passes its own)")

    def handle(self, *args, **options):
        # The protocol owns the real stdout. Anything else that writes to stdout (a print()
        # in a primer, a library) goes to stderr instead, so it can never break a line.
        proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n")
        sys.stdout.flush()
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        sys.stdout = sys.stderr

        logging.basicConfig(stream=sys.stderr, level=options["log_level"].upper(),
                            format="kck_worker[%(process)d] %(levelname)s %(name)s: %(message)s")
        use_test_database_names()
        from kck.worker import Worker

        worker = Worker(alias=options["database"])
        try:
            worker.serve(sys.stdin.buffer, proto)
        except (KeyboardInterrupt, BrokenPipeError):
            pass
        finally:
            try:
                proto.close()
            except Exception:
                pass
