import json

from django.core.management.base import BaseCommand, CommandError

from kck import conf
from kck.exceptions import KckError
from kck.sync import build_config, sync


class Command(BaseCommand):
    help = ("Registers the Python primers in kck.primers and installs capture triggers for the "
            "tables they depend on, by running `kck install --config FILE --db CONNINFO`. Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="print the config and the SQL kck install would run; change nothing")
        parser.add_argument("--print-config", action="store_true",
                            help="print the config JSON only, without running the kck binary")
        parser.add_argument("--database", default=None,
                            help="database alias (default: KCK['DATABASE'], else 'default')")
        parser.add_argument("--binary", default=None, help="the kck binary (default: KCK['BINARY'], "
                            "$KCK_BINARY, then kck on PATH)")

    def handle(self, *args, **options):
        try:
            config = build_config()
        except KckError as e:
            raise CommandError(str(e))
        if options["print_config"]:
            self.stdout.write(json.dumps(config, indent=2, sort_keys=True))
            return
        alias = options["database"] or conf.database_alias()
        try:
            result = sync(alias=alias, dry_run=options["dry_run"], binary=options["binary"])
        except KckError as e:
            raise CommandError(str(e))
        if options["dry_run"]:
            self.stdout.write("-- kck_sync --dry-run: config (%d primer(s))" % len(config["primers"]))
            for line in json.dumps(config, indent=2, sort_keys=True).splitlines():
                self.stdout.write("-- " + line)
        if result.stdout.strip():
            self.stdout.write(result.stdout.rstrip("\n"))
        if result.stderr.strip() and options["verbosity"] >= 2:
            self.stderr.write(result.stderr.rstrip("\n"))
        if not options["dry_run"] and options["verbosity"] >= 1:
            self.stderr.write("kck_sync: %d primer(s) synced to database %r"
                              % (len(config["primers"]), alias))
