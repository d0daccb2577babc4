"""Which database a primer belongs to: its products, its registry row and its capture triggers
live in that database only.

    1. declared on the primer:    database = 'analytics'
    2. else its dependencies:     for every model in depends_on, the first DATABASE_ROUTERS
                                  entry whose db_for_write(model) answers (a model no router
                                  answers for is in KCK['DATABASE']); the database of every
                                  primer it depends on; all must agree
    3. else (no model, no primer in depends_on) KCK['DATABASE'] (default 'default')
"""

from django.db import connections, router

from . import conf
from .exceptions import PrimerDefinitionError
from .primer import _is_model, registry


def _where(cls):
    return "%s.py: %s" % (cls.__module__.replace(".", "/"), cls.__qualname__)


def routed_alias(model):
    """The alias a router gives for writes of ``model``, or None when no router has an opinion."""
    for r in router.routers:
        method = getattr(r, "db_for_write", None)
        chosen = method(model) if method is not None else None
        if chosen:
            return chosen
    return None


def _rule_aliases(cls, seen):
    found = {}
    for rule in cls._kck_rules:
        if rule.primer_name is not None:
            if rule.primer_name in registry() and rule.primer_name not in seen:
                other = type(registry().get(rule.primer_name))
                found.setdefault(primer_alias(other, seen), "primer %s" % rule.primer_name)
        elif _is_model(rule.source):
            alias = routed_alias(rule.source) or conf.database_alias()
            found.setdefault(alias, rule.source.__name__)
    return found


def primer_alias(cls, _seen=None):
    """The database alias of a primer class (or instance); PrimerDefinitionError when ambiguous."""
    cls = cls if isinstance(cls, type) else type(cls)
    declared = getattr(cls, "database", None)
    if declared:
        if declared not in connections.databases:
            raise PrimerDefinitionError("%s: database = %r is not in DATABASES" % (_where(cls), declared))
        return declared
    seen = (_seen or set()) | {cls._kck_name}
    found = _rule_aliases(cls, seen)
    if len(found) > 1:
        raise PrimerDefinitionError(
            "%s: its dependencies route to different databases (%s): set database = '...' on the primer"
            % (_where(cls), ", ".join("%s -> %r" % (what, alias) for alias, what in sorted(found.items()))))
    return next(iter(found)) if found else conf.database_alias()


def primers_by_alias():
    """{alias: [primer, ...]} of the registered primers; primers whose database is ambiguous are left out
    (kck.E005 reports them)."""
    out = {}
    for primer in registry().primers():
        try:
            alias = primer_alias(primer)
        except PrimerDefinitionError:
            continue
        out.setdefault(alias, []).append(primer)
    return out


def kck_aliases():
    """The aliases kck is installed in: KCK['DATABASE'] first, then every other alias with primers."""
    default = conf.database_alias()
    return [default] + sorted(a for a in primers_by_alias() if a != default)
