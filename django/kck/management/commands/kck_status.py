import json

from django.core.management.base import BaseCommand, CommandError

from kck import conf
from kck.exceptions import KckError
from kck.run import daemon_connections, run

NOT_RUNNING = ("daemon: not running: changes wait in kck.changes and products are not kept fresh "
               "(run manage.py kck_listen)")


def daemon_line(connections):
    if connections is None:
        return "daemon: unknown (pg_stat_activity could not be read)"
    if connections == 0:
        return NOT_RUNNING
    return "daemon: running (%d connection(s) with application_name kck)" % connections


class Command(BaseCommand):
    help = ("Prints what `kck status` prints (outbox, products per primer, errors, registry problems) "
            "and whether a kck daemon is connected to the database.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        parser.add_argument("--database", default=None,
                            help="database alias (default: KCK['DATABASE'], else 'default')")
        parser.add_argument("--binary", default=None, help="the kck binary (default: KCK['BINARY'], "
                            "$KCK_BINARY, then kck on PATH)")

    def handle(self, *args, **options):
        alias = options["database"] or conf.database_alias()
        daemon = daemon_connections(alias)  # before kck status connects under the same name
        try:
            proc = run(["status", "--json"] if options["json"] else ["status"], alias, options["binary"])
        except KckError as e:
            raise CommandError(str(e))
        if proc.returncode != 0:
            raise CommandError((proc.stderr or proc.stdout).strip() or "kck status failed (exit %d)"
                               % proc.returncode, returncode=proc.returncode)
        if options["json"]:
            status = json.loads(proc.stdout)
            status["daemon"] = {"running": bool(daemon), "connections": daemon}
            self.stdout.write(json.dumps(status, indent=2))
        else:
            self.stdout.write(proc.stdout.rstrip("\n"))
            self.stdout.write(daemon_line(daemon))
