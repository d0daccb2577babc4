from django.core.management.base import BaseCommand, CommandError

from kck import conf
from kck.exceptions import KckError
from kck.run import run


class Command(BaseCommand):
    help = "Recomputes products now and stores them: `kck refresh KEY...`."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("keys", nargs="+", metavar="KEY", help="e.g. title_list/5")
        parser.add_argument("--database", default=None,
                            help="database alias (default: KCK['DATABASE'], else 'default')")
        parser.add_argument("--binary", default=None, help="the kck binary (default: KCK['BINARY'], "
                            "$KCK_BINARY, then kck on PATH)")

    def handle(self, *args, **options):
        alias = options["database"] or conf.database_alias()
        try:
            proc = run(["refresh", *options["keys"]], alias, options["binary"])
        except KckError as e:
            raise CommandError(str(e))
        if proc.stdout.strip():
            self.stdout.write(proc.stdout.rstrip("\n"))
        if proc.returncode != 0:
            raise CommandError(proc.stderr.strip() or "kck refresh failed (exit %d)" % proc.returncode,
                               returncode=proc.returncode)
