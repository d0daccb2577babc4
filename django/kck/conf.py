"""The ``KCK`` settings dict, with defaults.

    KCK = {
        "DATABASE": "default",     # alias of primers that no router or `database` places (kck.routing)
        "BINARY": None,            # path of the kck binary; default: $KCK_BINARY, then `kck` on PATH
        "SOFT_EXPIRE": None,       # default expiries/refresh for primers that set none: "10m", 600, timedelta
        "HARD_EXPIRE": None,
        "REFRESH_EVERY": None,
        "SYNC_ON_MIGRATE": True,   # run kck_sync after `migrate` on DATABASE
        "REFRESH_QUEUE_SECONDS": 5,  # a soft-expired key is queued at most once per this many seconds
    }
"""

import datetime
import os
import re
import shutil

from .exceptions import PrimerDefinitionError

DEFAULTS = {
    "DATABASE": "default",
    "BINARY": None,
    "SOFT_EXPIRE": None,
    "HARD_EXPIRE": None,
    "REFRESH_EVERY": None,
    "SYNC_ON_MIGRATE": True,
    "REFRESH_QUEUE_SECONDS": 5,
}

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_PERIOD_RE = re.compile(r"([0-9]+)([smhd])")
MAX_PERIOD_SECONDS = 36500 * 86400


def get(name):
    from django.conf import settings

    user = getattr(settings, "KCK", None) or {}
    if name in user:
        return user[name]
    return DEFAULTS[name]


def database_alias():
    return get("DATABASE")


def binary_path():
    """The kck binary to run, or None when none is found."""
    configured = get("BINARY") or os.environ.get("KCK_BINARY")
    if configured:
        return configured
    return shutil.which("kck")


def period_seconds(value, what="period"):
    """Seconds of a period given as "90s"/"10m"/"1h"/"1d", a number of seconds or a timedelta."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise PrimerDefinitionError("%s: %r is not a period" % (what, value))
    elif isinstance(value, (int, float)):
        seconds = value
    elif isinstance(value, str):
        m = _PERIOD_RE.fullmatch(value)
        if m is None:
            raise PrimerDefinitionError(
                "%s: period %r is not valid (expected a positive number followed by s, m, h or d)"
                % (what, value))
        seconds = int(m.group(1)) * dict(_UNITS)[m.group(2)]
    else:
        raise PrimerDefinitionError("%s: %r is not a period" % (what, value))
    if seconds != int(seconds) or seconds < 1:
        raise PrimerDefinitionError("%s: %r is not a whole, positive number of seconds" % (what, value))
    if seconds > MAX_PERIOD_SECONDS:
        raise PrimerDefinitionError("%s: %r is too long (at most 36500d)" % (what, value))
    return int(seconds)


def format_period(seconds):
    """The config spelling of a period: the largest unit that divides it."""
    for suffix, unit in _UNITS:
        if seconds % unit == 0:
            return "%d%s" % (seconds // unit, suffix)
    return "%ds" % seconds


def _check_type(name, value, types, expected):
    if value is not None and (isinstance(value, bool) and bool not in types or not isinstance(value, types)):
        return "settings.KCK[%r]: expected %s, got %r" % (name, expected, value)
    return None


def _check_database(value):
    from django.conf import settings

    if value not in settings.DATABASES:
        return "settings.KCK['DATABASE']: %r is not an alias in settings.DATABASES (%s)" % (
            value, ", ".join(sorted(settings.DATABASES)) or "none")
    return None


def _check_period(name, value):
    try:
        period_seconds(value, "settings.KCK[%r]" % name)
    except PrimerDefinitionError as e:
        return str(e)
    return None


def setting_problems():
    """One line per bad entry of settings.KCK (an unknown name, a wrong type, a bad period)."""
    from django.conf import settings

    user = getattr(settings, "KCK", None)
    if user is None:
        return []
    if not isinstance(user, dict):
        return ["settings.KCK: expected a dict, got %s" % type(user).__name__]
    out = ["settings.KCK[%r]: unknown setting (known: %s)" % (name, ", ".join(sorted(DEFAULTS)))
           for name in user if name not in DEFAULTS]
    out.append(_check_type("DATABASE", get("DATABASE"), (str,), "a database alias (str)")
               or _check_database(get("DATABASE")))
    out.append(_check_type("BINARY", get("BINARY"), (str, os.PathLike), "a path (str) or None"))
    out.append(_check_type("SYNC_ON_MIGRATE", get("SYNC_ON_MIGRATE"), (bool,), "True or False"))
    out.append(_check_type("REFRESH_QUEUE_SECONDS", get("REFRESH_QUEUE_SECONDS"), (int, float),
                           "a number of seconds")
               or ("settings.KCK['REFRESH_QUEUE_SECONDS']: must not be negative, got %r"
                   % get("REFRESH_QUEUE_SECONDS") if (get("REFRESH_QUEUE_SECONDS") or 0) < 0 else None))
    out.extend(_check_period(name, get(name)) for name in ("SOFT_EXPIRE", "HARD_EXPIRE", "REFRESH_EVERY"))
    return [line for line in out if line]


def validate():
    """Raises ImproperlyConfigured naming the first bad entry of settings.KCK (run at startup)."""
    from django.core.exceptions import ImproperlyConfigured

    problems = setting_problems()
    if problems:
        raise ImproperlyConfigured(problems[0] + ("" if len(problems) == 1 else " (and %d more)" % (len(problems) - 1)))
