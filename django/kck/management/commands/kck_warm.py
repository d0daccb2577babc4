import time

from django.core.management.base import BaseCommand, CommandError

from kck.cache import Cache
from kck.exceptions import KckError
from kck.primer import registry


def _depth(primer, reg, seen=()):
    """0 for a primer that depends on no primer, else one more than its deepest (no cycles)."""
    depths = [1 + _depth(reg.get(r.primer_name), reg, seen + (primer.name,))
              for r in primer._kck_rules if r.primer_name and r.primer_name not in seen and r.primer_name in reg.names()]
    return max(depths, default=0)


class Command(BaseCommand):
    help = ("Computes and stores the products that Python primers' warm() lists and that are not "
            "stored yet, primers that others depend on first. Run again after an interruption: "
            "stored products are skipped.")
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("primers", nargs="*", metavar="PRIMER",
                            help="primers to warm (default: every Python primer with warm())")

    def handle(self, *args, **options):
        reg = registry()
        names = options["primers"] or [n for n in reg.names() if reg.get(n).has_warm()]
        primers = []
        for name in names:
            if name not in reg.names():
                raise CommandError("unknown primer %r" % name)
            if not reg.get(name).has_warm():
                raise CommandError("primer %r has no warm()" % name)
            primers.append(reg.get(name))
        primers.sort(key=lambda p: _depth(p, reg))
        try:
            for primer in primers:
                self._warm(primer)
        except KckError as e:
            raise CommandError(str(e))

    def _warm(self, primer):
        cache = Cache.get_instance()
        keys = primer.warm_keys()
        missing = [k for k in keys if not cache.is_set(k)]
        start = last = time.monotonic()
        for done, key in enumerate(missing, 1):
            cache.get(key)
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                rate = done / (last - start)
                self.stdout.write("kck_warm: %s: %d/%d, %.0f products/s, about %.0f s left"
                                  % (primer.name, done, len(missing), rate, (len(missing) - done) / rate))
        self.stdout.write("kck_warm: %s: %d keys listed, %d computed" % (primer.name, len(keys), len(missing)))
