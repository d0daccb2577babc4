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
