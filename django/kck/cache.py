"""The cache: kck.cache read and written through the SQL functions of sql/001_schema.sql.

    from kck import Cache
    cache = Cache.get_instance()
    cache.get('title_list/5')

Each key is read and written in its primer's database (kck.routing.primer_alias); a
Cache(using=ALIAS) uses that alias for every key.

get(key)
  hit: one indexed read of kck.cache.
  past soft_expire: the stored value, and the key is queued for the daemon (kck.queue_refresh).
  miss or past hard_expire: kck.lock_key_session(key); in a REPEATABLE READ transaction
    take pg_current_snapshot(), read the row again (another process may have stored it),
    compute with the primer in this process and kck.store() the value with that snapshot
    (version-checked); COMMIT; kck.unlock_key_session(key).
  A compute that raises stores nothing: PrimerComputeError reaches the caller.
  A compute that raises ObjectDoesNotExist (Book.DoesNotExist, ...): the product does not
    exist; ProductDoesNotExist reaches the caller, nothing is stored and a stored
    (hard-expired, or refreshed) value of the key is removed.

Inside a transaction the caller opened (transaction.atomic, ATOMIC_REQUESTS):
  if the transaction has written nothing yet, the miss is computed and stored on a
  separate connection (a short-lived thread), so it reads committed data only;
  if it has written, the product is computed in the caller's transaction (seeing its
  uncommitted rows) and returned without being stored.
Inside a compute (a primer calling Cache.get for another key, in this process or in
kck_worker) a miss never waits for a lock: kck.try_lock_key() in the compute's
transaction, and the product is stored only when that lock was free and no transaction
committed since the compute's snapshot; otherwise it is computed and not stored.
"""

from __future__ import annotations

import collections
import datetime
import functools
import logging
import threading
import time
from typing import Any, Dict, Iterable, Optional

from asgiref.sync import sync_to_async
from django.core.exceptions import ObjectDoesNotExist
from django.core.signals import setting_changed
from django.db import DatabaseError, connections, transaction

from . import conf, configured, jsonutil
from .codec import quote_for_error
from .exceptions import KckError, KckNotInstalled, KeyNotSet, PrimerComputeError, ProductDoesNotExist
from .primer import decode, registry
from .routing import primer_alias

log = logging.getLogger("kck")

CacheEntry = collections.namedtuple(
    "CacheEntry", "key primer value version computed_at soft_expire hard_expire compute_ms error stored")
CacheEntry.__doc__ = """A product as stored in kck.cache.

stored is False for a value computed but not stored (inside a transaction that
wrote, or a nested miss that could not take its lock); version is None then."""

_READ_SQL = (
    "SELECT value::text, version, computed_at, soft_expire, hard_expire, compute_ms, error, primer, "
    "coalesce(soft_expire <= statement_timestamp(), false), "
    "coalesce(hard_expire <= statement_timestamp(), false) "
    "FROM kck.cache WHERE key = %s")

# The hit path of get(): only what it needs, so a hit costs one narrow
# indexed read (bench/django_bench.py compares it with DatabaseCache.get).
# get_many(): the hits of many keys in one read.
_GET_MANY_SQL = (
    "SELECT key, value::text, coalesce(soft_expire <= statement_timestamp(), false), "
    "coalesce(hard_expire <= statement_timestamp(), false) FROM kck.cache WHERE key = ANY(%s)")

_GET_SQL = (
    "SELECT value::text, coalesce(soft_expire <= statement_timestamp(), false), "
    "coalesce(hard_expire <= statement_timestamp(), false) FROM kck.cache WHERE key = %s")

# A miss's REPEATABLE READ transaction opens in one round trip: the isolation level, then
# the snapshot (taken by this statement, so after the key's lock) and the key's row as _READ_SQL
# reads it (all NULL when there is none).
_OPEN_MISS_SQL = (
    "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; "
    "SELECT pg_current_snapshot()::text, c.key IS NOT NULL, c.value::text, c.version, c.computed_at, "
    "c.soft_expire, c.hard_expire, c.compute_ms, c.error, c.primer, "
    "coalesce(c.soft_expire <= statement_timestamp(), false), "
    "coalesce(c.hard_expire <= statement_timestamp(), false) "
    "FROM (SELECT 1) AS kck_one LEFT JOIN kck.cache c ON c.key = %s")

# kck.store, and what it wrote when it stored (computed_at is the transaction's now(), the
# expiries now() plus the intervals given): the entry needs no second read.
_STORE_SQL = (
    "SELECT value::text, version, stored, now(), now() + %s::interval, now() + %s::interval "
    "FROM kck.store(%s, %s, %s::jsonb, %s::pg_snapshot, %s::double precision, %s::interval, %s::interval, "
    "%s::bigint)")

_SET_SQL = (
    "SELECT value::text, version, stored FROM kck.store(%s, %s, %s::jsonb, pg_current_snapshot(), "
    "NULL::double precision, %s::interval, %s::interval, %s::bigint)")

# True when no transaction committed since the snapshot (conservative: unknown = false).
# Transactions in progress at snapshot time are in xip; those started since have ids
# from xmax up to our own (assigned here, just below the next one).
_QUIET_SINCE_SQL = """
SELECT CASE WHEN pg_current_xact_id()::text::bigint - pg_snapshot_xmax(s)::text::bigint > 1000 THEN false
       ELSE NOT EXISTS (
         SELECT 1 FROM (
           SELECT pg_snapshot_xip(s) AS x
           UNION ALL
           SELECT g::text::xid8
             FROM generate_series(pg_snapshot_xmax(s)::text::bigint,
                                  pg_current_xact_id()::text::bigint - 1) AS g
         ) t
         WHERE x <> pg_current_xact_id() AND pg_xact_status(x) = 'committed')
       END
FROM (SELECT %s::pg_snapshot AS s) q
"""


class _Frame:
    """One compute running on this thread: its key, its database alias and snapshot, and whether
    nested misses may store."""

    __slots__ = ("key", "alias", "snapshot", "store", "worker")

    def __init__(self, key, alias, snapshot, store, worker=False):
        self.key, self.alias, self.snapshot, self.store, self.worker = key, alias, snapshot, store, worker


_local = threading.local()


class _NoStore:
    def __enter__(self):
        _stack().append(_Frame(None, None, None, store=False, worker=True))

    def __exit__(self, *exc):
        _stack().pop()


def _stack():
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _interval(seconds):
    return None if seconds is None else datetime.timedelta(seconds=seconds)


def _one_line(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).replace("\r", " ").replace("\n", " ")


class _Row:
    __slots__ = ("entry", "soft_past", "hard_past")

    def __init__(self, entry, soft_past, hard_past):
        self.entry, self.soft_past, self.hard_past = entry, soft_past, hard_past

    @property
    def usable(self):
        return self.entry.value is not _MISSING and not self.hard_past


_MISSING = object()

# Bumped when settings that decide a primer's database change (tests: override_settings).
_routing_generation = [0]


def _routing_changed(setting, **kwargs):
    if setting in ("KCK", "DATABASES", "DATABASE_ROUTERS"):
        _routing_generation[0] += 1


setting_changed.connect(_routing_changed, dispatch_uid="kck.cache.routing_changed")


def _routed(method):
    """Runs ``method(key, ...)`` on the Cache of the key's database (an unbound Cache delegates)."""
    @functools.wraps(method)
    def wrapper(self, key, *args, **kwargs):
        if self._using is None:
            return getattr(self.on(decode(key)[0]), method.__name__)(key, *args, **kwargs)
        return method(self, key, *args, **kwargs)
    return wrapper


class Cache:
    """The product cache. Cache.get_instance() is the process-wide instance."""

    _instance = None
    _instance_lock = threading.Lock()

    def __init__(self, using=None):
        self._using = using
        self._queued = {}
        self._queued_lock = threading.Lock()
        self._checked, self._checked_registry = {}, None
        self._bound = {}

    @classmethod
    def get_instance(cls) -> "Cache":
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    # -- public API ---------------------------------------------------------

    @property
    def alias(self) -> str:
        """The alias of a Cache(using=ALIAS); of the unbound Cache, KCK['DATABASE']."""
        return self._using or conf.database_alias()

    def on(self, primer):
        """The Cache that reads and writes the products of ``primer`` (a Cache(using=its alias))."""
        if self._using is not None:
            return self
        alias = primer_alias(primer)
        bound = self._bound.get(alias)
        if bound is None:
            bound = Cache(using=alias)
            bound._queued, bound._queued_lock = self._queued, self._queued_lock  # one throttle
            bound = self._bound.setdefault(alias, bound)
        return bound

    def alias_for(self, key):
        """The database alias the product of ``key`` is read from and stored in."""
        return self.on(decode(key)[0]).alias

    @property
    def connection(self):
        return connections[self.alias]

    def build_key(self, name: str, **params: Any) -> str:
        """The canonical key of primer ``name`` for the given parameter values."""
        return registry().get(name).build_key(**params)

    def get(self, key: str, prime_on_cache_miss: Optional[bool] = None) -> Any:
        """The product stored under ``key``, computed and stored first on a miss."""
        cache = self._check_key(key)
        r = cache._fetch(_GET_SQL, key)
        if r is not None and r[0] is not None and not r[2]:
            if r[1]:
                cache._queue_refresh_throttled(key)
            return jsonutil.loads(r[0])
        return cache.get_entry(key, prime_on_cache_miss).value

    @_routed
    def get_entry(self, key: str, prime_on_cache_miss: Optional[bool] = None) -> CacheEntry:
        """Like get(), returning a CacheEntry (value, version, computed_at, expiries, ...)."""
        primer, _ = decode(key)
        row = self._read(key)
        if row is not None and row.usable:
            if row.soft_past:
                self._queue_refresh_throttled(key)
            return row.entry
        prime = primer.prime_on_cache_miss if prime_on_cache_miss is None else prime_on_cache_miss
        if not prime:
            raise KeyNotSet("key %s is not set (primer %s does not prime on a miss)"
                            % (quote_for_error(key), quote_for_error(primer.name)))
        return self._produce(primer, key, row, force=False)

    def get_many(self, keys: Iterable[str], prime_on_cache_miss: Optional[bool] = None) -> Dict[str, Any]:
        """{key: product} for ``keys`` (in their order): one read for the stored ones; each
        miss (or hard-expired one) is computed and stored as get() does, and raises as get() does."""
        keys = list(dict.fromkeys(keys))
        groups = {}  # alias -> (its Cache, its keys): one read per database
        for key in keys:
            cache = self._check_key(key)
            groups.setdefault(cache.alias, (cache, []))[1].append(key)
        found = {}
        for cache, group in groups.values():
            with cache._cursor() as cur:
                cur.execute(_GET_MANY_SQL, [group])
                found.update({r[0]: (cache, r[1:]) for r in cur.fetchall()})
        out = {}
        for key in keys:
            cache, r = found.get(key, (None, None))
            if r is not None and r[0] is not None and not r[2]:
                if r[1]:
                    cache._queue_refresh_throttled(key)
                out[key] = jsonutil.loads(r[0])
            else:
                out[key] = self.get_entry(key, prime_on_cache_miss).value
        return out

    async def aget(self, key: str, prime_on_cache_miss: Optional[bool] = None) -> Any:
        """get() for async views: runs in Django's thread for sync code (thread_sensitive)."""
        return await sync_to_async(self.get, thread_sensitive=True)(key, prime_on_cache_miss)

    async def aget_entry(self, key: str, prime_on_cache_miss: Optional[bool] = None) -> CacheEntry:
        """get_entry() for async views (thread_sensitive, like aget())."""
        return await sync_to_async(self.get_entry, thread_sensitive=True)(key, prime_on_cache_miss)

    @_routed
    def is_set(self, key: str) -> bool:
        """Whether a value is stored under ``key`` (and not past its hard expiry)."""
        decode(key)
        with self._cursor() as cur:
            cur.execute("SELECT EXISTS (SELECT 1 FROM kck.cache WHERE key = %s AND value IS NOT NULL "
                        "AND (hard_expire IS NULL OR hard_expire > statement_timestamp()))", [key])
            return cur.fetchone()[0]

    @_routed
    def set(self, key: str, value: Any) -> int:
        """Stores ``value`` under ``key`` (a new version), whatever was stored before."""
        primer, _ = decode(key)
        text = jsonutil.dumps(value)
        soft, hard = _interval(primer.soft_expire_period()), _interval(primer.hard_expire_period())
        with self._cursor() as cur:
            for _ in range(10):
                cur.execute("SELECT version FROM kck.cache WHERE key = %s", [key])
                found = cur.fetchone()
                cur.execute(_SET_SQL, [key, primer.name, text, soft, hard, found[0] if found else None])
                stored_value, version, stored = cur.fetchone()
                if stored:
                    return version
        raise KckError("key %s: could not set, other writers kept changing it" % quote_for_error(key))

    @_routed
    def unset(self, key: str) -> bool:
        """Removes the product stored under ``key``; True when there was one."""
        decode(key)
        with self._cursor() as cur:
            cur.execute("DELETE FROM kck.cache WHERE key = %s", [key])
            return cur.rowcount > 0

    @_routed
    def refresh(self, key: str, queued: bool = True) -> Any:
        """Queued: asks the daemon to recompute ``key`` soon (kck.queue_refresh).
        Not queued: recomputes it now in this process, stores it and returns the value."""
        primer, _ = decode(key)
        if queued:
            with self._cursor() as cur:
                cur.execute("SELECT kck.queue_refresh(ARRAY[%s]::text[])", [key])
            return None
        return self._produce(primer, key, self._read(key), force=True).value

    # -- the worker's entry point ---------------------------------------------

    @_routed
    def compute_for_daemon(self, key):
        """Computes ``key`` for the daemon (kck_worker's compute op), storing nothing itself.

        Returns (value JSON text, snapshot text, compute_ms). The compute runs in a
        REPEATABLE READ transaction; the snapshot is that transaction's. The daemon
        holds the key's lock, so none is taken here.
        """
        primer, _ = decode(key)
        conn = self.connection
        if conn.in_atomic_block or not conn.get_autocommit():
            raise KckError("compute_for_daemon() must run outside a transaction")
        with transaction.atomic(using=self.alias):
            snapshot = self._begin_repeatable_read()
            frame = _Frame(key, self.alias, snapshot, store=True, worker=True)
            text, ms = self._run_compute(primer, key, frame)
        return text, snapshot, ms

    def without_storing(self):
        """A context in which misses are computed but never stored nor locked.

        kck_worker runs augment() and keys rules in it: they run while the daemon holds
        key locks, so a Cache.get() there must not wait for one."""
        return _NoStore()

    # -- internals ------------------------------------------------------------

    def _cursor(self):
        return self.connection.cursor()

    def _check_key(self, key):
        """Rejects a bad key before any SQL and returns the Cache of its database; keys seen
        before (with the same primer registry and routing settings) are remembered, so a hit
        costs a dict lookup."""
        current = (registry(), _routing_generation[0])
        if self._checked_registry == current:
            cache = self._checked.get(key)
            if cache is not None:
                return cache
        cache = self.on(decode(key)[0])
        if self._checked_registry != current or len(self._checked) >= 100000:
            self._checked, self._checked_registry = {}, current
        self._checked[key] = cache
        return cache

    def _fetch(self, sql, key):
        """One row of a read of kck.cache by key, or None."""
        try:
            with self._cursor() as cur:
                cur.execute(sql, [key])
                return cur.fetchone()
        except DatabaseError as e:
            cause = getattr(e, "__cause__", None)
            if getattr(cause, "pgcode", None) in ("42P01", "3F000", "42883"):
                raise KckNotInstalled("the kck schema is not installed in database %r: run "
                                      "`manage.py kck_sync` (%s)" % (self.alias, _one_line(e))) from e
            raise

    def _read(self, key):
        r = self._fetch(_READ_SQL, key)
        return None if r is None else self._row(key, r)

    @staticmethod
    def _row(key, r):
        """The _Row of the columns _READ_SQL reads."""
        value = _MISSING if r[0] is None else jsonutil.loads(r[0])
        entry = CacheEntry(key=key, primer=r[7], value=value, version=r[1], computed_at=r[2],
                           soft_expire=r[3], hard_expire=r[4], compute_ms=r[5], error=r[6], stored=True)
        return _Row(entry, r[8], r[9])

    def _queue_refresh_throttled(self, key):
        every = conf.get("REFRESH_QUEUE_SECONDS") or 0
        now = time.monotonic()
        with self._queued_lock:
            last = self._queued.get(key)
            if last is not None and now - last < every:
                return
            self._queued[key] = now
            if len(self._queued) > 10000:
                for stale in [k for k, t in self._queued.items() if now - t >= every]:
                    del self._queued[stale]
        with self._cursor() as cur:
            cur.execute("SELECT kck.queue_refresh(ARRAY[%s]::text[])", [key])

    def _open_miss(self, key):
        """First statements of the transaction atomic() just opened for a miss of ``key``: RR
        isolation, its snapshot and the key's row (or None), in one round trip."""
        with self._cursor() as cur:
            cur.execute(_OPEN_MISS_SQL, [key])
            r = cur.fetchone()
        return r[0], (self._row(key, r[2:]) if r[1] else None)

    def _begin_repeatable_read(self):
        """First statements of a transaction atomic() just opened: RR isolation, its snapshot."""
        with self._cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; SELECT pg_current_snapshot()::text")
            return cur.fetchone()[0]

    def _produce(self, primer, key, row, force):
        """Computes ``key`` (a miss, a hard expiry, or a forced refresh) and stores it when safe."""
        if isinstance(primer, configured.ConfiguredPrimer) and not primer.in_process:
            return self._produce_configured(primer, key, force)
        stack = _stack()
        if stack:
            frame = stack[-1]
            if not frame.store or frame.alias != self.alias:
                # A compute on another database: its snapshot and locks say nothing about this one.
                return self._compute_unstored(primer, key, frame.snapshot)
            return self._nested(primer, key, row, frame)
        conn = self.connection
        if conn.in_atomic_block or not conn.get_autocommit():
            if not force and self._transaction_wrote():
                # The caller's transaction holds uncommitted writes: compute in it, store nothing.
                return self._compute_unstored(primer, key, None)
            return self._in_thread(self._locked_compute, primer, key, force)
        return self._locked_compute(primer, key, force)

    def _produce_configured(self, primer, key, force):
        """A product of a primer of `kck install --config`: the kck binary computes and stores it on
        its own connection (under the key's lock, as _locked_compute does), whatever transaction
        this one is in; its entry is read back, or, when this transaction's snapshot cannot see
        it yet, made from the value the binary printed."""
        value = jsonutil.loads(configured.compute(key, self.alias, force))
        row = self._read(key)
        if row is not None and row.entry.value == value:
            return row.entry
        return CacheEntry(key=key, primer=primer.name, value=value, version=None, computed_at=None,
                          soft_expire=None, hard_expire=None, compute_ms=None, error=None, stored=True)

    def _transaction_wrote(self):
        with self._cursor() as cur:
            cur.execute("SELECT pg_current_xact_id_if_assigned() IS NOT NULL")
            return cur.fetchone()[0]

    def _locked_compute(self, primer, key, force):
        conn = self.connection
        with conn.cursor() as cur:
            cur.execute("SELECT kck.lock_key_session(%s)", [key])
        try:
            with transaction.atomic(using=self.alias):
                snapshot, row = self._open_miss(key)
                if not force and row is not None and row.usable:
                    return row.entry  # stored by someone else while we waited for the lock
                expected = row.entry.version if row is not None else None
                try:
                    text, ms = self._run_compute(primer, key, _Frame(key, self.alias, snapshot, store=True))
                except ProductDoesNotExist as e:
                    gone = e
                    if row is not None:
                        self._delete(key, expected)
                else:
                    return self._store(primer, key, text, snapshot, ms, expected)
        finally:
            self._unlock(key)
        raise gone

    def _delete(self, key, version):
        """Removes the product of ``key`` stored at ``version`` (not a newer one)."""
        with self._cursor() as cur:
            cur.execute("DELETE FROM kck.cache WHERE key = %s AND version = %s", [key, version])

    def _unlock(self, key):
        conn = self.connection
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT kck.unlock_key_session(%s)", [key])
        except Exception as e:  # never mask the compute's own error
            log.warning("kck: unlocking key %s failed (%s); closing the connection to release it",
                        quote_for_error(key), _one_line(e))
            try:
                conn.close()
            except Exception:
                pass

    def _nested(self, primer, key, row, frame):
        """A miss inside a compute that may store: never wait for a lock."""
        with transaction.atomic(using=self.alias):  # a savepoint: a failure here leaves the outer txn usable
            with self._cursor() as cur:
                cur.execute("SELECT kck.try_lock_key(%s)", [key])
                locked = cur.fetchone()[0]
            text, ms = self._run_compute(primer, key, _Frame(key, self.alias, frame.snapshot, store=True,
                                                             worker=frame.worker))
            if locked:
                with self._cursor() as cur:
                    cur.execute(_QUIET_SINCE_SQL, [frame.snapshot])
                    quiet = cur.fetchone()[0]
                if quiet:
                    expected = row.entry.version if row is not None else None
                    return self._store(primer, key, text, frame.snapshot, ms, expected)
        return self._unstored_entry(primer, key, text, ms)

    def _compute_unstored(self, primer, key, snapshot):
        # In a savepoint (or a transaction of its own): a compute that fails on a database
        # error leaves the caller's transaction usable.
        with transaction.atomic(using=self.alias):
            text, ms = self._run_compute(primer, key, _Frame(key, self.alias, snapshot, store=False))
        return self._unstored_entry(primer, key, text, ms)

    @staticmethod
    def _unstored_entry(primer, key, text, ms):
        return CacheEntry(key=key, primer=primer.name, value=jsonutil.loads(text), version=None,
                          computed_at=None, soft_expire=None, hard_expire=None, compute_ms=ms,
                          error=None, stored=False)

    def _run_compute(self, primer, key, frame):
        """Runs primer.compute(key) with ``frame`` on the stack; returns (JSON text, ms)."""
        stack = _stack()
        if any(f.key == key for f in stack):
            chain = " -> ".join([f.key for f in stack] + [key])
            raise PrimerComputeError("key %s depends on itself: %s" % (quote_for_error(key), chain), key=key)
        stack.append(frame)
        t0 = time.perf_counter()
        try:
            text = primer._kck_compute_json(key, frame.alias)
        except (PrimerComputeError, ProductDoesNotExist):
            raise
        except ObjectDoesNotExist as e:
            raise ProductDoesNotExist("product %s does not exist (primer %s: %s)"
                                      % (quote_for_error(key), quote_for_error(primer.name), _one_line(e)),
                                      key=key) from e
        except Exception as e:
            raise PrimerComputeError("primer %s: compute of key %s failed: %s"
                                     % (quote_for_error(primer.name), quote_for_error(key), _one_line(e)),
                                     key=key, original=e) from e
        finally:
            stack.pop()
        return text, (time.perf_counter() - t0) * 1000.0

    def _store(self, primer, key, text, snapshot, ms, expected):
        soft, hard = _interval(primer.soft_expire_period()), _interval(primer.hard_expire_period())
        with self._cursor() as cur:
            cur.execute(_STORE_SQL, [soft, hard, key, primer.name, text, snapshot, ms, soft, hard, expected])
            stored = cur.fetchone()
        if stored[2]:
            return CacheEntry(key=key, primer=primer.name, value=jsonutil.loads(stored[0]), version=stored[1],
                              computed_at=stored[3], soft_expire=stored[4], hard_expire=stored[5], compute_ms=ms,
                              error=None, stored=True)
        log.info("kck: key %s moved to version %s meanwhile; kept it", quote_for_error(key), stored[1])
        row = self._read(key)
        if row is None or row.entry.value is _MISSING:
            # Not stored and what is stored has no value (an error-only row): ours, unstored.
            return self._unstored_entry(primer, key, text, ms)
        return row.entry

    def _in_thread(self, fn, *args):
        """Runs fn on a short-lived thread: its own connection, outside the caller's transaction."""
        result = {}

        def run():
            try:
                result["value"] = fn(*args)
            except BaseException as e:  # re-raised in the caller
                result["error"] = e
            finally:
                connections.close_all()

        t = threading.Thread(target=run, name="kck-compute", daemon=True)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["value"]
