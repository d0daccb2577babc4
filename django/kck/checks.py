"""System checks: Python primers with mistakes, and registered primers that no longer match the database.

check_primers (untagged: plain `manage.py check`, no database) reports the mistakes of the
Python primers of this process (kck.problems): a Depends() naming a field the model does not
have (kck.E002), no compute (kck.E003), a rule on another primer with parameters it does not
declare (kck.E004), a primer whose database is ambiguous (kck.E005: its models route to
different aliases, or it declares an alias not in DATABASES), and a primer that is never
refreshed (kck.W001, a Warning).

A table or column renamed or dropped after `kck install` makes the capture trigger degrade (every
product of the table is recomputed on every change) instead of failing the application's writes.
kck.registry_problems() lists why; each row becomes an Error here, so `manage.py check --database
default` and `migrate` show it. Tagged `database` like Django's own checks that query a database:
plain `check` and `runserver` do not connect for it. When the database cannot be reached or kck is
not installed there, the check says nothing.

A deploy check (`manage.py check --deploy`, kck.W002) warns when no kck daemon is connected to the
database (the rule is in kck.run): reads still work, computing on a miss, but products are not kept
fresh.
"""

from django.core import checks
from django.db import DatabaseError, connections

from . import problems
from .primer import registry
from .routing import kck_aliases
from .run import daemon_connections


def _problems(alias):
    """Rows (primer, problem, hint) of kck.registry_problems(), or [] when there is nothing to ask."""
    try:
        with connections[alias].cursor() as cur:
            cur.execute("SELECT to_regprocedure('kck.registry_problems()') IS NOT NULL")
            if not cur.fetchone()[0]:
                return []
            cur.execute("SELECT primer, problem, hint FROM kck.registry_problems()")
            return cur.fetchall()
    except DatabaseError:
        return []


@checks.register(checks.Tags.database)
def check_registry(app_configs=None, databases=None, **kwargs):
    return [
        checks.Error('primer "%s": %s' % (primer, problem), hint=hint, obj="kck.primers", id="kck.E001")
        for alias in kck_aliases() if databases and alias in databases
        for primer, problem, hint in _problems(alias)
    ]


@checks.register("kck", deploy=True)
def check_daemon(app_configs=None, **kwargs):
    return [checks.Warning(
        "no kck daemon is connected to database %r: products are not kept fresh" % alias,
        hint="run `manage.py kck_listen --database %s` (systemd/kck-django.service); Cache.get still "
             "computes on a miss" % alias,
        obj="kck", id="kck.W002")
        for alias in kck_aliases() if daemon_connections(alias) == 0]  # 0: not running; None: unknown


def _in_apps(cls, app_configs):
    return app_configs is None or any(cls.__module__ == a.name or cls.__module__.startswith(a.name + ".")
                                      for a in app_configs)


@checks.register()
def check_primers(app_configs=None, **kwargs):
    make = {problems.ERROR: checks.Error, problems.WARNING: checks.Warning}
    return [make[p.level](p.msg, hint=p.hint, obj="kck", id=p.id)
            for p in problems.all_problems(registry()) if _in_apps(p.cls, app_configs)]
