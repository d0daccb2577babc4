"""Primers that no Python code defines: those `kck install --config` registered (engine sql, http
or command) in kck.primers. Cache reads their products like any other.

A miss of a sql primer's product is computed in process, like a Python primer's (under the key's
lock, in the same REPEATABLE READ transaction, stored with kck.store): its compute runs as the
statement kck install stored in kck.primers.client_compute, where the daemon's scanner put a
DB-API placeholder for each `:name` (sql/011_client_compute.sql). Without one (engine http or
command, or a primer registered before schema 11) a miss runs the kck binary (`kck get KEY`,
`kck refresh KEY`), which computes and stores under the key's lock on its own connection.

Such a primer is looked up by name in kck.primers of KCK['DATABASE'] when the Python registry has
no primer of that name, and kept for the life of the process (a primer removed since makes its
misses fail with the binary's error, or, computed in process, with its SQL's error). It is never
part of the Python registry: kck_sync does not see it, and its class is made abstract so that it
does not register itself.
"""

import json
import threading

from django.db import DatabaseError, connections

from . import conf
from .codec import quote_for_error
from .exceptions import InvalidKey, KckError, PrimerComputeError, ProductDoesNotExist
from .jsonutil import loads
from .params import make_parameter
from .primer import Primer

# to_jsonb(p): a schema older than 11 has no client_compute column (NULL then).
_LOOKUP_SQL = ("SELECT engine, spec::text, to_jsonb(p) ->> 'client_compute', "
               "(SELECT generation FROM kck.registry_generation) FROM kck.primers p "
               "WHERE name = %s AND engine <> 'python'")
# Goes up with every kck install that changes a primer (sql/003_generation_and_primer_locks.sql).
_GENERATION_SQL = "SELECT generation FROM kck.registry_generation"

_found = {}
_lock = threading.Lock()


class ConfiguredPrimer(Primer):
    """A primer registered by `kck install --config`: computed by its client_compute statement in
    process, or else by the kck binary."""

    abstract = True
    engine = None
    statement = None  # kck.primers.client_compute
    generation = None  # kck.registry_generation when it was looked up

    @property
    def in_process(self):
        return self.statement is not None

    def compute(self, key):
        if not self.in_process:
            raise KckError("primer %r (engine %s) is computed by the kck binary, not in Python"
                           % (self.name, self.engine))
        return loads(self._kck_compute_json(key, self.database))

    def _kck_compute_json(self, key, alias):
        """The JSON text the primer's SQL computes for ``key`` on database ``alias`` (where the
        caller's transaction and snapshot are), exactly as the server wrote it. A kck install
        since the lookup may have redefined the primer: then it is looked up again, in the same
        snapshot, and computed as now defined (a product stored the old way would stay so)."""
        current = self._kck_as_registered(alias)
        if current is not self:
            return current._kck_compute_json(key, alias)
        params = dict(zip((p.name for p in self._kck_params), self.key_to_values(key)))
        with connections[alias].cursor() as cur:
            cur.execute(self.statement, params)
            rows = cur.fetchmany(2)
        if not rows:
            raise ProductDoesNotExist("product %s does not exist (primer %s computed no row)"
                                      % (quote_for_error(key), quote_for_error(self.name)), key=key)
        if len(rows) > 1:
            raise PrimerComputeError("primer %s: compute of key %s returned more than one row"
                                     % (quote_for_error(self.name), quote_for_error(key)), key=key)
        return rows[0][0] if rows[0][0] is not None else "null"


    def _kck_as_registered(self, alias):
        """This primer, or the one registered under its name now if the registry moved since it
        was looked up (UnknownPrimer-like KckError when it is gone)."""
        with connections[alias].cursor() as cur:
            cur.execute(_GENERATION_SQL)
            if cur.fetchone()[0] == self.generation:
                return self
        forget(self.name)
        current = lookup(self.name)
        if current is None or not current.in_process:
            raise KckError("primer %s was removed or redefined by kck install while it was being read"
                           % quote_for_error(self.name))
        return current


def _primer_class(name, engine, spec, alias, statement, generation):
    attrs = {"abstract": True, "engine": engine, "statement": statement, "database": alias,
             "generation": generation,
             "prime_on_cache_miss": True,
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
        return _found.setdefault(name, _primer_class(name, row[0], json.loads(row[1]), alias, row[2], row[3])())


def forget(name=None):
    """Drops the primers looked up so far, or the one named (tests, after a kck install changed
    them; a miss, once the registry generation moved)."""
    with _lock:
        if name is None:
            _found.clear()
        else:
            _found.pop(name, None)


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
