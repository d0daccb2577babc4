import json

from django.core.management.base import BaseCommand, CommandError

from kck import conf
from kck.exceptions import KckError
from kck.routing import kck_aliases
from kck.sync import build_config, sync


class Command(BaseCommand):
    help = ("Registers the Python primers in kck.primers and installs capture triggers for the "
            "tables they depend on, by running `kck install --config FILE --db CONNINFO`, once per "
            "database alias with primers (each gets only its own primers). Idempotent.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="print the config and the SQL kck install would run; change nothing")
        parser.add_argument("--print-config", action="store_true",
                            help="print the config JSON of one alias (--database) only, without running "
                                 "the kck binary")
        parser.add_argument("--database", default=None,
                            help="sync this alias only (default: KCK['DATABASE'] and every alias "
                                 "primers belong to)")
        parser.add_argument("--binary", default=None, help="the kck binary (default: KCK['BINARY'], "
                            "$KCK_BINARY, then kck on PATH)")

    def handle(self, *args, **options):
        try:
            if options["print_config"]:
                config = build_config(options["database"] or conf.database_alias())
                self.stdout.write(json.dumps(config, indent=2, sort_keys=True))
                return
            aliases = [options["database"]] if options["database"] else kck_aliases()
            for alias in aliases:
                self._sync(alias, options)
        except KckError as e:
            raise CommandError(str(e))

    def _sync(self, alias, options):
        config = build_config(alias)
        result = sync(alias=alias, dry_run=options["dry_run"], binary=options["binary"])
        if options["dry_run"]:
            self.stdout.write("-- kck_sync --dry-run: database %r: config (%d primer(s))"
                              % (alias, len(config["primers"])))
            for line in json.dumps(config, indent=2, sort_keys=True).splitlines():
                self.stdout.write("-- " + line)
        if result.stdout.strip():
            self.stdout.write(result.stdout.rstrip("\n"))
        if result.stderr.strip() and options["verbosity"] >= 2:
            self.stderr.write(result.stderr.rstrip("\n"))
        if not options["dry_run"] and options["verbosity"] >= 1:
            self.stderr.write("kck_sync: %d primer(s) synced to database %r"
                              % (len(config["primers"]), alias))
