"""Running the kck binary for a Django database, and telling whether a daemon is running.

The binary is found as kck_sync finds it: KCK['BINARY'], then $KCK_BINARY, then `kck` on PATH.
The conninfo comes from the database alias (kck.sync.conninfo); the password travels in the
child's PGPASSWORD, never on its command line.

The daemon rule: every connection of `kck listen` has application_name "kck". A daemon is
running for a database when some backend of that database other than our own carries that
name in pg_stat_activity. kck's one-shot commands (`kck status`, `kck install`, kck.testing's
drain) connect under the same name, so while one of them runs the rule also says yes.
"""

import os
import shlex
import subprocess
import sys

from django.conf import settings
from django.db import DatabaseError, connections

from . import conf
from .exceptions import KckError
from .sync import conninfo

LOG_LEVELS = ("trace", "debug", "info", "warn", "error")

_DAEMON_CONNECTIONS_SQL = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'kck' AND pid <> pg_backend_pid()")


class KckCommandError(KckError):
    """The kck binary could not be found or run."""


def find_binary(binary=None):
    found = binary or conf.binary_path()
    if not found:
        raise KckCommandError("the kck binary was not found: set KCK['BINARY'] or $KCK_BINARY, "
                              "or put kck on PATH")
    return found


def command(args, alias=None, binary=None, for_daemon=False):
    """(argv, env) of `kck --db CONNINFO ARGS...` for a database alias.

    for_daemon leaves out an application_name from OPTIONS, so that the daemon's connections
    keep the name "kck" that tells it is running.
    """
    skip = ("application_name",) if for_daemon else ()
    db, env_add = conninfo(alias or conf.database_alias(), skip=skip)
    env = dict(os.environ)
    env.update(env_add)
    return [find_binary(binary), "--db", db, *args], env


def run(args, alias=None, binary=None, timeout=120):
    """Runs kck with ARGS and returns the CompletedProcess (text output captured)."""
    argv, env = command(args, alias, binary)
    try:
        return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, timeout=timeout,
                              universal_newlines=True)
    except OSError as e:
        raise KckCommandError("could not run %s: %s" % (argv[0], e)) from e
    except subprocess.TimeoutExpired as e:
        raise KckCommandError("%s %s did not finish within %ss" % (argv[0], args[0], timeout)) from e


def listen_args(batch=None, worker_timeout=None, compute_timeout=None, log_level=None, until_idle=False,
                python_worker=None):
    """The arguments of `kck [--log-level L] listen ...`."""
    args = ["--log-level", log_level] if log_level else []
    args.append("listen")
    for flag, value in (("--batch", batch), ("--worker-timeout", worker_timeout),
                        ("--compute-timeout", compute_timeout), ("--python-worker", python_worker)):
        if value is not None:
            args += [flag, str(value)]
    if until_idle:
        args.append("--until-idle")
    return args


def worker_command(manage_py, pythonpath=None, alias=None):
    """`exec <this python> <manage.py> kck_worker --database ALIAS`, the daemon's worker command."""
    words = [sys.executable, os.path.abspath(manage_py), "kck_worker",
             "--database", alias or conf.database_alias()]
    if pythonpath:
        words += ["--pythonpath", pythonpath]
    return "exec " + " ".join(shlex.quote(w) for w in words)


def settings_env():
    """DJANGO_SETTINGS_MODULE for a child process: the settings this process runs with."""
    module = getattr(settings, "SETTINGS_MODULE", None)
    if not module:
        raise KckCommandError("the python worker needs a settings module: settings were configured "
                              "in code (settings.configure()), not from DJANGO_SETTINGS_MODULE")
    return {"DJANGO_SETTINGS_MODULE": module}


def daemon_connections(alias=None):
    """Connections of `kck listen` to the alias's database; None when that cannot be asked."""
    try:
        with connections[alias or conf.database_alias()].cursor() as cur:
            cur.execute(_DAEMON_CONNECTIONS_SQL)
            return cur.fetchone()[0]
    except DatabaseError:
        return None
