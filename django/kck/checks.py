"""System checks: registered primers that no longer match the database.

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

from . import conf
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
    alias = conf.database_alias()
    if not databases or alias not in databases:
        return []
    return [
        checks.Error('primer "%s": %s' % (primer, problem), hint=hint, obj="kck.primers", id="kck.E001")
        for primer, problem, hint in _problems(alias)
    ]


@checks.register("kck", deploy=True)
def check_daemon(app_configs=None, **kwargs):
    alias = conf.database_alias()
    if daemon_connections(alias) != 0:  # running, or the database cannot be asked
        return []
    return [checks.Warning(
        "no kck daemon is connected to database %r: products are not kept fresh" % alias,
        hint="run `manage.py kck_listen` (systemd/kck-django.service); Cache.get still computes on a miss",
        obj="kck", id="kck.W002")]
