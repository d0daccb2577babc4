"""Primers that no Python code defines: those `kck install --config` registered (engine sql, http
or command) in kck.primers. Cache reads their products like any other; a miss, a hard expiry or
refresh(queued=False) runs the kck binary (`kck get KEY`, `kck refresh KEY`), the one
implementation of their computes, which stores what it computed under the key's lock as a
Python compute does.

Such a primer is looked up by name in kck.primers of KCK['DATABASE'] when the Python registry has
no primer of that name, and kept for the life of the process (a primer removed since makes its
misses fail with the binary's error). It is never part of the Python registry: kck_sync does not
see it, and its class is made abstract so that it does not register itself.
"""

import json
import threading

from django.db import DatabaseError, connections

from . import conf
from .exceptions import InvalidKey, KckError, ProductDoesNotExist
from .params import make_parameter
from .primer import Primer

_LOOKUP_SQL = "SELECT engine, spec::text FROM kck.primers WHERE name = %s AND engine <> 'python'"

_found = {}
_lock = threading.Lock()


class ConfiguredPrimer(Primer):
    """A primer registered by `kck install --config`: its products are computed by the kck binary."""

    abstract = True
    engine = None

    def compute(self, key):
        raise KckError("primer %r (engine %s) is computed by the kck binary, not in Python" % (self.name, self.engine))


def _primer_class(name, engine, spec, alias):
    attrs = {"abstract": True, "engine": engine, "database": alias, "prime_on_cache_miss": True,
             "soft_expire": spec.get("soft_expire"), "hard_expire": spec.get("hard_expire"),
             "refresh_every": spec.get("refresh_every"), "__module__": __name__}
    cls = type("Configured_" + name, (ConfiguredPrimer,), attrs)
    cls.key = cls._kck_name = name
    cls._kck_params = [make_parameter(p, name) for p in spec.get("parameters") or []]
    cls._kck_param_pairs = [(p.name, p.type) for p in cls._kck_params]
    cls._kck_rules = []
    return cls


def lookup(name):
    """The ConfiguredPrimer registered as ``name`` in KCK['DATABASE'], or None (none there, no kck
    schema, or the database cannot be asked)."""
    found = _found.get(name)
    if found is not None:
        return found
    alias = conf.database_alias()
    try:
        with connections[alias].cursor() as cur:
            cur.execute(_LOOKUP_SQL, [name])
            row = cur.fetchone()
    except DatabaseError:
        return None
    if row is None:
        return None
    with _lock:
        return _found.setdefault(name, _primer_class(name, row[0], json.loads(row[1]), alias)())


def forget():
    """Drops the primers looked up so far (tests, after a kck install changed them)."""
    with _lock:
        _found.clear()


def compute(key, alias, force):
    """The product's JSON text: `kck get KEY` for the alias's database, which computes and stores it
    unless one is stored already (with force, `kck refresh KEY` first: computed and stored whatever
    is stored). Raises what the binary reports."""
    if force:
        _run(["refresh", key], alias)
    return _run(["get", key], alias).strip()


def _run(args, alias):
    from . import run  # run imports sync, which imports this package's primer registry
    done = run.run(args, alias=alias)
    if done.returncode == 0:
        return done.stdout
    message = (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1]
    if message.startswith("kck: "):
        message = message[len("kck: "):]
    if done.returncode == 2:
        raise InvalidKey(message)
    if "computed no row" in message:
        raise ProductDoesNotExist(message)
    raise KckError(message)
