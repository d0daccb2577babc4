"""Primers, dependency rules and the process-wide primer registry.

    from kck import Primer, Depends, CannotAugment

    class TitleListPrimer(Primer):
        key = 'title_list'
        parameters = [{"name": "author_id", "from_str": int}]
        depends_on = [Depends(Book, author_id='author_id')]

        def compute(self, key):
            p = self.key_to_param_dict(key)
            return [{'title': b.title} for b in Book.objects.filter(author_id=p['author_id'])]

A class that sets ``key`` (or the original library's ``key_base``) in its own
body is registered when it is defined; classes in each installed app's
``primers.py`` are imported when Django starts.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import codec, conf, jsonutil
from .exceptions import (InvalidKey, KeyParameterMismatch, PrimerDefinitionError, UnknownPrimer)
from .params import make_parameter


class Change:
    """One changed source row as given to Primer.augment().

    ``table`` is "schema.name", ``op`` one of "I", "U", "D"; ``old``/``new`` are
    row images (dicts of the captured columns and the primary key) or None.
    Also readable as a dict: change["new"].
    """

    __slots__ = ("table", "op", "old", "new")

    def __init__(self, table: str, op: str, old: Optional[Dict[str, Any]] = None,
                 new: Optional[Dict[str, Any]] = None) -> None:
        self.table, self.op, self.old, self.new = table, op, old, new

    def __getitem__(self, name):
        if name not in self.__slots__:
            raise KeyError(name)
        return getattr(self, name)

    def get(self, name, default=None):
        return getattr(self, name, default) if name in self.__slots__ else default

    def is_table(self, table: Union[type, str]) -> bool:
        """Whether the change is to ``table`` (a model class or a table name, qualified or not)."""
        name = table._meta.db_table if _is_model(table) else table
        if "." in name:
            return self.table == name
        return self.table == name or (self.table or "").endswith("." + name)

    def __repr__(self):
        return "Change(table=%r, op=%r, old=%r, new=%r)" % (self.table, self.op, self.old, self.new)


def _is_model(obj):
    return isinstance(obj, type) and hasattr(obj, "_meta") and hasattr(obj._meta, "db_table")


def _is_primer_class(obj):
    return isinstance(obj, type) and issubclass(obj, Primer)


def _column_names(argument, names):
    """A list of column names given as `argument`= (None when not given)."""
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(c, str) and c for c in names):
        raise PrimerDefinitionError("Depends(): %s= must be a list of column names, got %r" % (argument, names))
    return list(names)


class Depends:
    """A dependency rule of a primer.

    Depends(Book, author_id='author_id')   changed Book rows map to keys by column: the
                                           primer parameter author_id takes the row's
                                           author_id (OLD and NEW). A parameter left out
                                           matches every stored key agreeing on the others.
    Depends(Review)                        any change: every stored key of the primer.
    Depends(Book, author_id='author_id',   also captures title: augment() gets it in
            columns=['title'])             change.old / change.new (insert, update, delete).
    Depends(Review, keys=fn, columns=[..]) fn(old, new) returns the affected keys (or
                                           dicts of parameters); it runs in kck_worker.
                                           columns: the columns fn reads (default: the
                                           whole row is captured).
    Depends(Book, author_id='author_id',   an UPDATE reaches the products only when it
            update_of=['price'])           changes price (or a column the rule maps or its
                                           keys read); inserts and deletes always do.
    Depends(OtherPrimer, p='q')            products depend on products of another primer.

    The source is a model class, a table name ("store_book", "public.store_book")
    or, for product dependencies, a Primer class or Depends.on_primer("name", ...).
    A param value that names a model field is mapped to its column (author -> author_id).
    """

    def __init__(self, source: Union[type, str], keys: Optional[Callable[..., Any]] = None,
                 columns: Optional[Sequence[str]] = None, update_of: Optional[Sequence[str]] = None,
                 **params: str) -> None:
        self.source = source
        self.keys = keys
        self.columns = _column_names("columns", columns)
        self.update_of = _column_names("update_of", update_of)
        if self.update_of == []:
            raise PrimerDefinitionError("Depends(): update_of= must name at least one column (leave it out: "
                                        "every UPDATE)")
        self.params = dict(params)
        self.primer_name = None
        if _is_primer_class(source):
            self.primer_name = getattr(source, "_kck_name", None)
            if self.primer_name is None:
                raise PrimerDefinitionError("Depends(%s): that primer class has no key" % source.__name__)
        elif not (_is_model(source) or isinstance(source, str)):
            raise PrimerDefinitionError("Depends(): the source must be a model class, a table name or a "
                                        "Primer class, got %r" % (source,))
        if keys is not None and not callable(keys):
            raise PrimerDefinitionError("Depends(): keys must be a callable keys(old, new)")
        if keys is not None and self.params:
            raise PrimerDefinitionError("Depends(): a rule has either parameters or keys=, not both")
        for name in ("columns", "update_of"):
            if getattr(self, name) is not None and self.primer_name is not None:
                raise PrimerDefinitionError("Depends(): %s= is for rules on tables, not on another primer" % name)
        if self.update_of is not None and keys is not None and self.columns is None:
            raise PrimerDefinitionError("Depends(): update_of= with keys= needs columns=, the columns keys() "
                                        "reads: without them an UPDATE that moves the row to other keys cannot "
                                        "be told apart")
        if self.primer_name is not None and keys is not None:
            raise PrimerDefinitionError("Depends(): a rule on another primer maps keys with parameters, "
                                        "not keys=")
        for param, target in self.params.items():
            if not isinstance(target, str) or not target:
                raise PrimerDefinitionError("Depends(): %s= must name a column" % param)

    @classmethod
    def on_primer(cls, name: str, **params: str) -> "Depends":
        rule = cls("kck.cache", **params)
        rule.primer_name = name
        rule.source = None
        return rule

    @property
    def is_python_rule(self):
        return self.keys is not None

    def table_name(self):
        if _is_model(self.source):
            return self.source._meta.db_table
        return self.source

    def _column(self, name):
        if _is_model(self.source):
            from django.core.exceptions import FieldDoesNotExist

            try:
                field = self.source._meta.get_field(name)
            except FieldDoesNotExist:
                return name
            column = getattr(field, "column", None)
            return column or name
        return name

    def to_spec(self, index):
        """The JSON rule of kck.primers (DESIGN.md, "Primer config")."""
        if self.primer_name is not None:
            return {"primer": self.primer_name, "params": dict(self.params)}
        spec = {"table": self.table_name()}
        if self.keys is not None:
            spec["python_rule"] = index
            if self.columns is not None:
                spec["columns"] = [self._column(c) for c in self.columns]
        else:
            spec["params"] = {param: self._column(col) for param, col in self.params.items()}
            if self.columns is not None:
                spec["columns"] = [self._column(c) for c in self.columns]  # captured for augment
        if self.update_of is not None:
            spec["update_of"] = [self._column(c) for c in self.update_of]
        return spec

    def describe(self):
        """The rule as written: Depends(Post, author_id='author_id')."""
        if self.primer_name is not None:
            what = self.primer_name
        elif _is_model(self.source):
            what = self.source.__name__
        else:
            what = self.source
        extra = "".join(", %s=%r" % kv for kv in self.params.items())
        if self.keys is not None:
            extra += ", keys=%s" % getattr(self.keys, "__name__", "...")
        if self.columns is not None:
            extra += ", columns=%r" % (self.columns,)
        if self.update_of is not None:
            extra += ", update_of=%r" % (self.update_of,)
        return "Depends(%s%s)" % (what, extra)

    def __repr__(self):
        what = self.primer_name or self.table_name()
        extra = "".join(", %s=%r" % kv for kv in self.params.items())
        if self.keys is not None:
            extra += ", keys=%r" % (self.keys,)
        return "Depends(%s%s)" % (what, extra)


class Primer:
    """Base class of Python primers. Subclasses set ``key`` and define compute(self, key)."""

    abstract = True
    key = None
    parameters = []
    depends_on = []
    soft_expire = None        # "10m", seconds or timedelta; default KCK["SOFT_EXPIRE"]
    hard_expire = None        # default KCK["HARD_EXPIRE"]
    refresh_every = None      # default KCK["REFRESH_EVERY"]
    warm_every = None         # with warm(): the daemon warms again this often
    soft_expire_seconds = None  # the original library's spellings
    hard_expire_seconds = None
    refresh_every_seconds = None
    prime_on_cache_miss = True
    augment_max_changes = None  # more changes for one key in one batch: recompute (default 100)
    database = None           # alias; default: its models' router, then KCK["DATABASE"] (kck.routing)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__
        if own.get("abstract", False):
            return
        name = own.get("key") or own.get("key_base")
        if name is None:
            # No name of its own: a base class or mixin, not registered.
            return
        if not isinstance(name, str) or not codec.is_valid_primer_name(name):
            raise PrimerDefinitionError(
                "%s.%s: key %r is not a valid primer name (expected [a-z_][a-z0-9_]*, at most 63 bytes)"
                % (cls.__module__, cls.__qualname__, name))
        cls.key = name
        cls._kck_name = name
        cls._kck_params = [make_parameter(p, name) for p in (cls.parameters or [])]
        names = [p.name for p in cls._kck_params]
        if len(set(names)) != len(names):
            raise PrimerDefinitionError("primer %r: duplicate parameter names" % name)
        cls._kck_param_pairs = [(p.name, p.type) for p in cls._kck_params]
        rules = list(cls.depends_on or [])
        for i, rule in enumerate(rules):
            if not isinstance(rule, Depends):
                raise PrimerDefinitionError("primer %r: depends_on[%d] is not a Depends(...)" % (name, i))
            for param in rule.params:
                if param not in names:
                    raise PrimerDefinitionError("primer %r: depends_on[%d]: unknown parameter %r"
                                                % (name, i, param))
        cls._kck_rules = rules
        for attr in ("soft_expire", "hard_expire", "refresh_every", "soft_expire_seconds",
                     "hard_expire_seconds", "refresh_every_seconds", "warm_every"):
            conf.period_seconds(getattr(cls, attr), "primer %r: %s" % (name, attr))
        limit = cls.augment_max_changes
        if limit is not None and (type(limit) is not int or not 1 <= limit <= 1000000):
            raise PrimerDefinitionError("primer %r: augment_max_changes %r is not an integer from 1 to 1000000"
                                        % (name, limit))
        registry().register(cls)

    # -- identity and keys ------------------------------------------------

    @property
    def name(self) -> str:
        return self._kck_name

    @classmethod
    def has_augment(cls) -> bool:
        return callable(getattr(cls, "augment", None))

    @classmethod
    def has_warm(cls) -> bool:
        return callable(getattr(cls, "warm", None))

    def warm_keys(self) -> List[str]:
        """The canonical keys warm() lists (parameter dicts or keys), each once, in its order."""
        keys = []
        for item in self.warm() or ():
            if isinstance(item, Mapping):
                keys.append(self.param_dict_to_key(item))
            elif isinstance(item, str):
                self.key_to_values(item)  # canonical and of this primer, or an error
                keys.append(item)
            else:
                raise KeyParameterMismatch("primer %s: warm() listed %r, not a dict of parameters or a key"
                                           % (codec.quote_for_error(self._kck_name), item))
        return list(dict.fromkeys(keys))

    def key_to_values(self, key: str) -> List[str]:
        """The canonical text values of a key of this primer, in declared order."""
        return codec.decode_key(key, self._kck_name, self._kck_param_pairs)

    def key_to_param_dict(self, key: str) -> Dict[str, Any]:
        """{parameter name: value} of a key of this primer, values typed (int, str, bool, date)."""
        values = self.key_to_values(key)
        return {p.name: p.from_text(v) for p, v in zip(self._kck_params, values)}

    def param_dict_to_key(self, params: Mapping[str, Any]) -> str:
        """The canonical key of this primer for {parameter name: value}."""
        params = dict(params)
        missing = [p.name for p in self._kck_params if p.name not in params]
        extra = sorted(set(params) - {p.name for p in self._kck_params})
        if missing or extra:
            what = []
            if missing:
                what.append("missing " + ", ".join(missing))
            if extra:
                what.append("unknown " + ", ".join(extra))
            raise KeyParameterMismatch("primer %s: parameters do not match (%s)"
                                       % (codec.quote_for_error(self._kck_name), "; ".join(what)))
        texts = [p.to_text(params[p.name], self._kck_name) for p in self._kck_params]
        return codec.encode_key(self._kck_name, self._kck_param_pairs, texts)

    def build_key(self, **params: Any) -> str:
        return self.param_dict_to_key(params)

    # -- periods ------------------------------------------------------------

    def _period(self, attr):
        cls = type(self)
        value = getattr(cls, attr)
        if value is None:
            value = getattr(cls, attr + "_seconds", None)
        if value is None:
            value = conf.get(attr.upper())
        return conf.period_seconds(value, "primer %r: %s" % (self._kck_name, attr))

    def soft_expire_period(self) -> Optional[int]:
        return self._period("soft_expire")

    def hard_expire_period(self) -> Optional[int]:
        return self._period("hard_expire")

    def refresh_every_period(self) -> Optional[int]:
        return self._period("refresh_every")

    # -- the work -------------------------------------------------------------

    def compute(self, key: str) -> Any:
        raise NotImplementedError("primer %r defines no compute(self, key)" % self._kck_name)

    def _kck_compute_json(self, key: str, alias: str) -> str:
        """The JSON text of compute(key), computed for a product of database ``alias``; a primer
        whose compute is SQL runs it there and returns the server's text."""
        return jsonutil.dumps(self.compute(key))

    # augment(self, key, value, change) is optional: define it in a subclass to
    # apply a change in place (return the new value) or raise CannotAugment.
    # warm(self) is optional: the keys worth computing before anyone asks, as
    # parameter dicts ({"author_id": 5}) or keys; the daemon (and manage.py
    # kck_warm) computes those not stored yet.

    # -- registration -------------------------------------------------------

    def to_spec(self) -> Dict[str, Any]:
        """The primer's entry in the config that kck_sync hands to `kck install`."""
        spec = {
            "name": self._kck_name,
            "engine": "python",
            "parameters": [p.spec() for p in self._kck_params],
            "depends_on": [rule.to_spec(i) for i, rule in enumerate(self._kck_rules)],
            "augment": self.has_augment(),
        }
        if self.augment_max_changes is not None:
            spec["augment_max_changes"] = self.augment_max_changes
        if self.has_warm():
            spec["warm"] = True
        warm_every = conf.period_seconds(self.warm_every, "primer %r: warm_every" % self._kck_name)
        if warm_every is not None:
            if not self.has_warm():
                raise PrimerDefinitionError("primer %r: warm_every needs a warm() method" % self._kck_name)
            spec["warm_every"] = conf.format_period(warm_every)
        for field, seconds in (("refresh_every", self.refresh_every_period()),
                               ("soft_expire", self.soft_expire_period()),
                               ("hard_expire", self.hard_expire_period())):
            if seconds is not None:
                spec[field] = conf.format_period(seconds)
        if ("soft_expire" in spec and "hard_expire" in spec
                and self.soft_expire_period() > self.hard_expire_period()):
            raise PrimerDefinitionError("primer %r: soft_expire is longer than hard_expire" % self._kck_name)
        return spec


class Registry:
    """The Python primers of this process, by name."""

    def __init__(self):
        self._classes = {}
        self._instances = {}
        self._lock = threading.Lock()

    def register(self, cls):
        name = cls._kck_name
        with self._lock:
            old = self._classes.get(name)
            if old is not None and old is not cls and (
                    old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
                raise PrimerDefinitionError("primer %r is defined twice: %s.%s and %s.%s"
                                            % (name, old.__module__, old.__qualname__,
                                               cls.__module__, cls.__qualname__))
            self._classes[name] = cls
            self._instances.pop(name, None)

    def unregister(self, name):
        with self._lock:
            self._classes.pop(name, None)
            self._instances.pop(name, None)

    def get(self, name: str) -> Primer:
        """The primer instance named ``name``; UnknownPrimer when there is none."""
        inst = self._instances.get(name)
        if inst is not None:
            return inst
        with self._lock:
            cls = self._classes.get(name)
        if cls is None:
            from .configured import lookup  # a primer of `kck install --config`
            configured = lookup(name)
            if configured is not None:
                return configured
            with self._lock:
                registered = ", ".join(sorted(self._classes)) or "none"
            raise UnknownPrimer("unknown primer %s (no Python primer with that name is registered, and "
                                "kck.primers has none; registered in Python: %s)"
                                % (codec.quote_for_error(name), registered))
        with self._lock:
            inst = self._instances.get(name)
            if inst is None:
                inst = self._instances[name] = cls()
            return inst

    def for_key(self, key):
        """The primer of a key (InvalidKey when the key names no valid primer)."""
        return self.get(codec.key_primer_name(key))

    def names(self) -> List[str]:
        return sorted(self._classes)

    def primers(self):
        return [self.get(n) for n in self.names()]

    def __contains__(self, name):
        return name in self._classes


_registries = [Registry()]


def registry() -> Registry:
    """The current primer registry."""
    return _registries[-1]


@contextlib.contextmanager
def isolated_registry() -> Iterator[Registry]:
    """A fresh, empty registry for the duration of the block (tests, scripts)."""
    reg = Registry()
    _registries.append(reg)
    try:
        yield reg
    finally:
        _registries.remove(reg)


def get_primer(name):
    return registry().get(name)


def decode(key):
    """(primer, {param: value}) of a key; raises InvalidKey/UnknownPrimer/KeyParameterMismatch."""
    primer = registry().for_key(key)
    return primer, primer.key_to_param_dict(key)


__all__ = ["Primer", "Depends", "Change", "Registry", "registry", "isolated_registry", "get_primer",
           "InvalidKey"]
