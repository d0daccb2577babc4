"""kck_sync: registers the Python primers in kck.primers through `kck install`.

One `kck install` per database alias (kck.routing: the alias a primer belongs to). The config
handed to the binary is {"source": "django", "primers": [...]}, one entry per primer of that
alias (Primer.to_spec()). The binary validates tables and columns against the catalog,
migrates the kck schema and installs the capture triggers; no trigger SQL is written here.
"""

import json
import logging
import os
import shutil
import subprocess
import tempfile

from django.db import connections

from . import conf, problems
from .exceptions import KckSyncError
from .primer import registry
from .routing import kck_aliases, primers_by_alias

log = logging.getLogger("kck")

# Keys of Django's OPTIONS that are libpq connection parameters.
_LIBPQ_OPTIONS = {
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslcompression",
    "connect_timeout", "application_name", "options", "target_session_attrs", "keepalives",
    "keepalives_idle", "keepalives_interval", "keepalives_count", "passfile", "service",
    "channel_binding", "gssencmode", "krbsrvname", "requiressl", "tcp_user_timeout", "hostaddr",
}


def build_config(alias=None):
    """The config document of the Python primers of a database alias (default KCK['DATABASE'])."""
    primers = primers_by_alias().get(alias or conf.database_alias(), [])
    return {"source": "django", "primers": [p.to_spec() for p in primers]}


def _quote(value):
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(alias=None, skip=()):
    """(libpq key=value conninfo without the password, env additions) for a Django database alias.

    skip: OPTIONS keys to leave out."""
    settings = connections[alias or conf.database_alias()].settings_dict
    parts = []
    env = {}
    for key, setting in (("dbname", "NAME"), ("user", "USER"), ("host", "HOST"), ("port", "PORT")):
        value = settings.get(setting)
        if value not in (None, ""):
            parts.append("%s=%s" % (key, _quote(value)))
    for key, value in sorted((settings.get("OPTIONS") or {}).items()):
        if key in _LIBPQ_OPTIONS and key not in skip and value not in (None, ""):
            parts.append("%s=%s" % (key, _quote(value)))
    if settings.get("PASSWORD"):
        env["PGPASSWORD"] = str(settings["PASSWORD"])  # not on the command line, where ps shows it
    return " ".join(parts), env


class SyncResult:
    def __init__(self, config, returncode, stdout, stderr, argv):
        self.config, self.returncode, self.stdout, self.stderr, self.argv = (
            config, returncode, stdout, stderr, argv)


def sync(alias=None, dry_run=False, binary=None, timeout=120):
    """Runs `kck --db CONNINFO install --config FILE [--dry-run]`; raises KckSyncError on failure."""
    binary = binary or conf.binary_path()
    if not binary:
        raise KckSyncError("the kck binary was not found: set KCK['BINARY'] or $KCK_BINARY, or put kck on PATH")
    errors = [p.msg for p in problems.all_problems(registry()) if p.level == problems.ERROR]
    if errors:
        raise KckSyncError("primers with errors, nothing installed: " + "; ".join(errors))
    config = build_config(alias)
    db, env_add = conninfo(alias)
    env = dict(os.environ)
    env.update(env_add)
    env["KCK_DATABASE_URL"] = db  # the default of --db; also names the database for older CLIs
    fd, path = tempfile.mkstemp(prefix="kck-django-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(path, 0o644)  # the binary may run as another user
        # --db is an option of the kck command itself: it goes before the subcommand.
        argv = [binary, "--db", db, "install", "--config", path]
        if dry_run:
            argv.append("--dry-run")
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=env, timeout=timeout,
                                  universal_newlines=True)
        except OSError as e:
            raise KckSyncError("could not run %s: %s" % (binary, e)) from e
        except subprocess.TimeoutExpired as e:
            raise KckSyncError("%s install did not finish within %ss" % (binary, timeout)) from e
    finally:
        os.unlink(path)
    result = SyncResult(config, proc.returncode, proc.stdout, proc.stderr, argv)
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip() or "no output"
        message = problems.name_primers(message.replace(path + ": ", ""), registry())
        raise KckSyncError("database %r: kck install failed (exit %d): %s"
                           % (alias or conf.database_alias(), proc.returncode, message))
    return result


def sync_all(dry_run=False, binary=None):
    """sync() of every alias kck is installed in (kck.routing.kck_aliases); [(alias, SyncResult)]."""
    return [(alias, sync(alias=alias, dry_run=dry_run, binary=binary)) for alias in kck_aliases()]


def post_migrate_sync(sender, using=None, verbosity=1, **kwargs):
    """post_migrate handler: keeps kck.primers and the capture triggers current."""
    if not conf.get("SYNC_ON_MIGRATE"):
        return
    if (using or conf.database_alias()) not in kck_aliases():
        return
    binary = conf.binary_path()
    if binary and os.sep not in binary:
        binary = shutil.which(binary)
    if not binary or not os.access(binary, os.X_OK):
        log.warning("kck: the kck binary was not found; skipping kck_sync after migrate "
                    "(run `manage.py kck_sync` once it is installed)")
        return
    try:
        result = sync(alias=using, binary=binary)
    except KckSyncError as e:
        # Never abort `migrate`: a migration that renamed or dropped a column a primer depends on
        # is done; the capture triggers installed before stay and degrade (kck.E001 says why).
        log.warning("kck: kck_sync after migrate failed, the capture triggers installed before stay in "
                    "place; fix the primer and run `manage.py kck_sync`: %s", e)
        return
    if verbosity >= 1:
        out = result.stdout.strip()
        print("kck_sync: %d primer(s) registered%s" % (len(result.config["primers"]),
                                                         (":\n" + out) if out and verbosity >= 2 else ""))
