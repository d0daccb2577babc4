import os
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from kck import conf
from kck.exceptions import KckError
from kck.run import LOG_LEVELS, command, listen_args, settings_env, worker_command


class Command(BaseCommand):
    help = ("Runs the kck daemon (`kck listen`) for this project: the database from DATABASES, the "
            "Python worker `manage.py kck_worker` with the same settings. Replaces this process "
            "(exec), so signals and systemd notifications reach the daemon itself.")

    def add_arguments(self, parser):
        parser.add_argument("--database", default=None,
                            help="database alias (default: KCK['DATABASE'], else 'default')")
        parser.add_argument("--binary", default=None, help="the kck binary (default: KCK['BINARY'], "
                            "$KCK_BINARY, then kck on PATH)")
        parser.add_argument("--batch", type=int, default=None, help="changes claimed per transaction")
        parser.add_argument("--worker-timeout", default=None, help="longest a python compute may take (30s)")
        parser.add_argument("--compute-timeout", default=None, help="statement_timeout of SQL computes (30s)")
        parser.add_argument("--log-level", default=None, choices=LOG_LEVELS, help="the daemon's log level")

    def handle(self, *args, **options):
        alias = options["database"] or conf.database_alias()
        worker = worker_command(sys.argv[0], options.get("pythonpath"), alias)
        daemon_args = listen_args(batch=options["batch"], worker_timeout=options["worker_timeout"],
                                  compute_timeout=options["compute_timeout"], log_level=options["log_level"],
                                  python_worker=worker)
        try:
            argv, env = command(daemon_args, alias, options["binary"], for_daemon=True)
            env.update(settings_env())
        except KckError as e:
            raise CommandError(str(e))
        connections.close_all()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as e:
            raise CommandError("could not run %s: %s" % (argv[0], e))
