"""kck_worker: computes Python primers for the daemon (JSON lines over stdin/stdout).

On start it writes {"hello": "kck_worker", "protocol": 2, "primers": [...]}: with
`--database ALIAS` (as kck_listen and kck.testing.drain start it), the primers of that alias
only (kck.routing), and a request for a key of another alias's primer is refused. Then, per
request line (each with an integer "id"), one response line:

  {"id": 1, "op": "compute", "key": K}
      -> {"id": 1, "ok": true, "value": V, "snapshot": S, "compute_ms": 1.2}
      or {"id": 1, "ok": true, "gone": true} when the compute raised ObjectDoesNotExist
         (the product does not exist: the daemon removes it)
  {"id": 2, "op": "augment", "key": K, "value": V, "change": {"table", "op", "old", "new"}}
      -> {"id": 2, "ok": true, "value": V2}  or  {"id": 2, "ok": false, "cannot_augment": true}
  {"id": 7, "op": "augment", "key": K, "value": V, "changes": [{...}, ...]}   (protocol 2)
      -> the value after applying each change in order, each augment given the one before's
         value as JSON carries it; cannot_augment if any change cannot be augmented
  {"id": 3, "op": "keys", "primer": P, "rule": i, "old": {...}|null, "new": {...}|null}
      -> {"id": 3, "ok": true, "keys": [...]}
  {"id": 6, "op": "keys", "primer": P, "rule": i, "pairs": [[old, new], ...]}   (protocol 2)
      -> {"id": 6, "ok": true, "results": [{"keys": [...]} or {"error": "..."}, ...]}
         one result per pair, in order: a rule that raises for one pair fails that pair only
         (a transient database failure fails the whole request, as always)
  {"id": 4, "op": "ping"} -> {"id": 4, "ok": true}
  {"id": 5, "op": "warm", "primer": P} -> {"id": 5, "ok": true, "keys": [...]}  (the keys P.warm() lists)

Any failure is {"id": N, "ok": false, "error": "<type>: <message>"} (id null for a line
that is not a JSON object). The worker exits cleanly on EOF.
"""

import json
import logging
import time

from django.db import InterfaceError, OperationalError, connections

from . import jsonutil
from .cache import Cache
from .exceptions import CannotAugment, KckError, ProductDoesNotExist, UnknownPrimer
from .primer import Change, registry
from .routing import primer_alias

PROTOCOL = 2  # 2: keys with "pairs", augment with "changes"
log = logging.getLogger("kck.worker")


# SQLSTATE classes of failures that are not the primer's fault: connection,
# transaction rollback (deadlock, serialization), resources, operator
# intervention (statement_timeout); and lock_not_available. The daemon rolls
# its batch back and retries instead of recording them (docs/DESIGN.md).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")


def _pairs(req):
    """The "pairs" of a keys request: [[old, new], ...], each an object or null."""
    pairs = req["pairs"]
    if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(i is None or isinstance(i, dict) for i in p)
            for p in pairs):
        raise BadRequest("field 'pairs' must be a list of [old, new] pairs of objects or nulls")
    return [(p[0], p[1]) for p in pairs]


def _change_image(change):
    """The Change of one augment request's change, or None for one that is never augmented
    (a truncate, or a bulk statement's multi-row images: recomputed instead)."""
    op = change.get("op")
    old, new = change.get("old"), change.get("new")
    if op not in ("I", "U", "D") or isinstance(old, list) or isinstance(new, list):
        return None
    if (old is not None and not isinstance(old, dict)) or (new is not None and not isinstance(new, dict)):
        raise BadRequest("change.old and change.new must be objects or null")
    return Change(change.get("table"), op, old, new)


def _rule_keys(primer, rule, index, pairs):
    """The distinct keys the keys= rule ``rule`` (depends_on[index] of ``primer``) returns for
    the row pairs, in order; a key that is not one of ``primer``'s raises."""
    keys, seen = [], set()
    for o, n in pairs:
        for k in rule.keys(o, n) or ():
            if isinstance(k, dict):
                k = primer.param_dict_to_key(k)
            elif isinstance(k, str):
                primer.key_to_values(k)  # canonical and of this primer, or an error
            else:
                raise BadRequest("primer %r: depends_on[%d] keys() returned %r, not a key"
                                 % (primer.name, index, k))
            if k not in seen:
                seen.add(k)
                keys.append(k)
    return keys


def _is_broken(conn):
    """Whether Django connection ``conn`` is open but no longer usable."""
    return conn.connection is not None and not conn.is_usable()


def _is_transient(error):
    """Whether ``error`` (or what caused it) is a transient database failure."""
    seen = 0
    while error is not None and seen < 10:
        code = getattr(error, "pgcode", None)
        if code:
            return code[:2] in _TRANSIENT_CLASSES or code == "55P03"
        if isinstance(error, InterfaceError):
            return True
        if isinstance(error, OperationalError) and not code:  # no SQLSTATE: the connection failed
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


class BadRequest(KckError):
    """A request the worker cannot act on (missing or wrongly typed fields, unknown op)."""


def _one_line(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).replace("\r", " ").replace("\n", " ")


def _field(req, name, types, what):
    if name not in req:
        raise BadRequest("missing field %r" % name)
    value = req[name]
    allowed = types if isinstance(types, tuple) else (types,)
    if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
        raise BadRequest("field %r must be %s" % (name, what))
    return value


class Worker:
    def __init__(self, cache=None, alias=None):
        self.cache = cache or Cache.get_instance()
        self.alias = alias  # the database the daemon serves; None: every primer
        self.requests = 0

    def hello(self):
        names = registry().names()
        if self.alias is not None:
            names = [n for n in names if self._alias_of(n) == self.alias]
        return {"hello": "kck_worker", "protocol": PROTOCOL, "primers": names}

    @staticmethod
    def _alias_of(name):
        try:
            return primer_alias(registry().get(name))
        except KckError:
            return None

    def _served(self, primer):
        """``primer``, when it belongs to the database this worker serves."""
        name, alias = primer.name, primer_alias(primer)
        if self.alias is not None and alias != self.alias:
            raise BadRequest("primer %r belongs to database %r, not %r that this worker serves: "
                             "run manage.py kck_sync" % (name, alias, self.alias))
        return primer

    # -- one request ------------------------------------------------------------

    def handle_line(self, line):
        """The response (a dict) to one request line (bytes or str)."""
        try:
            if isinstance(line, bytes):
                line = line.decode("utf-8")
            req = json.loads(line)
        except (UnicodeDecodeError, ValueError) as e:
            return {"id": None, "ok": False, "error": "malformed request: " + _one_line(e)}
        if not isinstance(req, dict):
            return {"id": None, "ok": False,
                    "error": "malformed request: expected a JSON object, got %s" % type(req).__name__}
        return self.handle(req)

    def handle(self, req):
        rid = req.get("id")
        if isinstance(rid, bool) or not isinstance(rid, int):
            rid = None
        self.requests += 1
        for attempt in (1, 2):
            try:
                resp = self._dispatch(req)
                break
            except (InterfaceError, OperationalError) as e:
                # The connection broke (PostgreSQL restarted, ...): reconnect and retry once.
                self._reset_connection()
                if attempt == 2:
                    resp = {"ok": False, "error": _one_line(e), "transient": True}
            except Exception as e:
                # A connection that broke under the primer (PostgreSQL restarted, the
                # backend was terminated) is not the primer's fault, whatever the
                # exception it surfaced as.
                broken = self._reset_connection(only_if_broken=True)
                log.warning("kck_worker: request %s (%s) failed: %s", rid, req.get("op"), _one_line(e))
                resp = {"ok": False, "error": _one_line(e)}
                if broken or _is_transient(e):
                    resp["transient"] = True
                break
        out = {"id": rid}
        out.update(resp)
        return out

    def _reset_connection(self, only_if_broken=False):
        """Closes the connections (only broken ones, if asked); True when one was broken."""
        broken = False
        for conn in connections.all():
            try:
                if only_if_broken and not _is_broken(conn):
                    continue
                conn.close()
            except Exception:
                conn.connection = None
            broken = True
        return broken

    def _dispatch(self, req):
        op = req.get("op")
        if op == "ping":
            return {"ok": True}
        if op == "compute":
            return self._compute(req)
        if op == "augment":
            return self._augment(req)
        if op == "keys":
            return self._keys(req)
        if op == "warm":
            return self._warm(req)
        raise BadRequest("unknown op %r (expected compute, augment, keys, warm or ping)" % (op,))

    def _warm(self, req):
        name = _field(req, "primer", str, "a string")
        primer = self._served(registry().get(name))
        if not primer.has_warm():
            raise BadRequest("primer %r has no warm()" % name)
        with self.cache.without_storing():
            return {"ok": True, "keys": primer.warm_keys()}

    def _compute(self, req):
        key = _field(req, "key", str, "a string")
        self._served(registry().for_key(key))
        try:
            text, snapshot, ms = self.cache.compute_for_daemon(key)
        except ProductDoesNotExist:
            return {"ok": True, "gone": True}
        return {"ok": True, "value": json.loads(text), "snapshot": snapshot, "compute_ms": round(ms, 3)}

    def _augment(self, req):
        key = _field(req, "key", str, "a string")
        if "value" not in req:
            raise BadRequest("missing field 'value'")
        if "changes" in req:  # protocol 2: the key's changes of a batch, applied in order
            changes = _field(req, "changes", list, "a list")
            if not all(isinstance(c, dict) for c in changes):
                raise BadRequest("field 'changes' must be a list of objects")
        else:
            changes = [_field(req, "change", dict, "an object")]
        primer = self._served(registry().for_key(key))
        primer.key_to_values(key)  # the key must be canonical
        if not primer.has_augment():
            return {"ok": False, "cannot_augment": True}
        images = [_change_image(c) for c in changes]
        if None in images:
            return {"ok": False, "cannot_augment": True}
        value = req["value"]
        try:
            with self.cache.without_storing():
                for image in images:
                    # Each augment gets the value as JSON would carry it, as if sent one by one.
                    value = json.loads(jsonutil.dumps(primer.augment(key, value, image)))
        except CannotAugment:
            return {"ok": False, "cannot_augment": True}
        return {"ok": True, "value": value}

    def _keys(self, req):
        name = _field(req, "primer", str, "a string")
        index = _field(req, "rule", int, "an integer")
        primer = self._served(registry().get(name))
        rules = primer._kck_rules
        if not 0 <= index < len(rules):
            raise BadRequest("primer %r has no depends_on[%d]" % (name, index))
        rule = rules[index]
        if not rule.is_python_rule:
            raise BadRequest("primer %r: depends_on[%d] is not a keys= rule" % (name, index))
        if "pairs" in req:
            return {"ok": True, "results": self._keys_of_pairs(primer, rule, index, _pairs(req))}
        old, new = req.get("old"), req.get("new")
        if isinstance(old, list) or isinstance(new, list):
            # Bulk form: the distinct images of a large statement, one call per image.
            pairs = [(o, None) for o in (old or [])] + [(None, n) for n in (new or [])]
        else:
            pairs = [(old, new)]
        with self.cache.without_storing():
            return {"ok": True, "keys": _rule_keys(primer, rule, index, pairs)}

    def _keys_of_pairs(self, primer, rule, index, pairs):
        """One result per row pair: its keys, or the error the rule raised for it."""
        results = []
        with self.cache.without_storing():
            for pair in pairs:
                try:
                    results.append({"keys": _rule_keys(primer, rule, index, [pair])})
                except (InterfaceError, OperationalError):
                    raise  # the connection broke: the whole request is transient
                except Exception as e:
                    # Not the rule's fault either when its connection broke under it, whatever
                    # the exception it surfaced as: handle() makes the request transient.
                    if _is_transient(e) or any(_is_broken(c) for c in connections.all()):
                        raise
                    results.append({"error": _one_line(e)})
        return results

    # -- the loop -----------------------------------------------------------------

    def serve(self, infile, outfile):
        """Reads request lines from ``infile`` (binary) until EOF, answers on ``outfile`` (text)."""
        self._write(outfile, self.hello())
        for line in iter(infile.readline, b""):
            if not line.strip():
                continue
            t0 = time.perf_counter()
            resp = self.handle_line(line)
            self._write(outfile, resp)
            log.debug("kck_worker: %s in %.1f ms", resp.get("id"), (time.perf_counter() - t0) * 1000)

    @staticmethod
    def _write(outfile, obj):
        try:
            text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as e:
            text = json.dumps({"id": obj.get("id"), "ok": False, "error": "unencodable response: " + _one_line(e)})
        outfile.write(text + "\n")
        outfile.flush()


__all__ = ["Worker", "PROTOCOL", "UnknownPrimer"]
