"""Mistakes in Python primers that Django's system checks report (`manage.py check`, no database).

Each problem names the primer class and its module, the way a reader finds it:

    blog/primers.py: TitleListPrimer: Depends(Post, author_id='author_id'): Post has no field "author_id"

kck_sync refuses to install primers with an Error (after `migrate` it warns and leaves the
capture triggers installed before in place), and names install failures the same way.
"""

import re

from .primer import Primer, _is_model

ERROR, WARNING = "error", "warning"


class Problem:
    __slots__ = ("level", "id", "msg", "hint", "cls")

    def __init__(self, level, id, msg, hint, cls):
        self.level, self.id, self.msg, self.hint, self.cls = level, id, msg, hint, cls


def where(cls):
    """'blog/primers.py: TitleListPrimer' for a primer class."""
    return "%s.py: %s" % (cls.__module__.replace(".", "/"), cls.__qualname__)


def _concrete_field(model, name):
    """The model field named ``name`` or whose column is ``name``, or None."""
    for field in model._meta.concrete_fields:
        if name in (field.name, field.attname, field.column):
            return field
    return None


def _rule_problems(cls, rule, reg):
    label = "%s: %s" % (where(cls), rule.describe())
    if rule.primer_name is not None:
        if rule.primer_name not in reg:
            return [Problem(ERROR, "kck.E004", '%s: no primer "%s" is registered' % (label, rule.primer_name),
                            "define it, or depend on a primer that exists", cls)]
        theirs = [p.name for p in reg.get(rule.primer_name)._kck_params]
        return [Problem(ERROR, "kck.E004", '%s: primer "%s" has no parameter "%s"' % (label, rule.primer_name, target),
                        "its parameters: %s" % (", ".join(theirs) or "none"), cls)
                for target in rule.params.values() if target not in theirs]
    if not _is_model(rule.source):
        return []  # a table name: `kck install` checks it against the catalog
    names = list(rule.params.values()) + list(rule.columns or []) + list(rule.update_of or [])
    model = rule.source.__name__
    return [Problem(ERROR, "kck.E002", '%s: %s has no field "%s"' % (label, model, name),
                    "name a field or column of %s (was it renamed or removed by a migration?)" % model, cls)
            for name in names if _concrete_field(rule.source, name) is None]


def _database_problems(cls):
    from .exceptions import PrimerDefinitionError
    from .routing import primer_alias

    try:
        primer_alias(cls)
    except PrimerDefinitionError as e:
        return [Problem(ERROR, "kck.E005", str(e), "a primer's products, registry row and capture "
                        "triggers live in one database", cls)]
    return []


def primer_problems(cls, reg):
    """The Problems of one registered primer class."""
    out = []
    for rule in cls._kck_rules:
        out.extend(_rule_problems(cls, rule, reg))
    if getattr(cls, "compute", None) is Primer.compute:
        out.append(Problem(ERROR, "kck.E003", "%s: no compute(self, key)" % where(cls),
                           "define compute(self, key) returning the product's value", cls))
    out.extend(_database_problems(cls))
    if not cls._kck_rules and reg.get(cls._kck_name).refresh_every_period() is None:
        out.append(Problem(WARNING, "kck.W001",
                           "%s: neither depends_on nor refresh_every: its products are never refreshed" % where(cls),
                           "add depends_on rules or a refresh_every period", cls))
    return out


def all_problems(reg):
    out = []
    for name in reg.names():
        out.extend(primer_problems(type(reg.get(name)), reg))
    return out


def name_primers(message, reg):
    """``message`` (from `kck install`) with each registered primer "x" named by class and module."""
    def repl(m):
        name = m.group(1)
        if name not in reg:
            return m.group(0)
        return '%s (primer "%s")' % (where(type(reg.get(name))), name)

    return re.sub(r'primer "([a-z_][a-z0-9_]*)"', repl, message)
