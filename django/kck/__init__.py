"""kck for Django: the API of django-kck on top of the kck daemon.

    INSTALLED_APPS = [..., "kck"]
    KCK = {"DATABASE": "default"}          # optional, see kck.conf

    # myapp/primers.py
    from kck import Primer, Depends, CannotAugment

    # myapp/views.py
    from kck import Cache
    Cache.get_instance().get('title_list/5')
"""

from .exceptions import (CannotAugment, InvalidKey, KckError, KckNotInstalled, KckSyncError,
                         KCKKeyNotSetException, KeyNotSet, KeyParameterMismatch, PrimerComputeError,
                         PrimerDefinitionError, ProductDoesNotExist, UnknownPrimer)
from .params import BoolParameter, DateParameter, IntParameter, Parameter, StrParameter
from .primer import Change, Depends, Primer, isolated_registry, registry


def __getattr__(name):
    # Cache imports django.db, which needs settings: load it on first use only, so that
    # `from kck import Primer` works before Django is set up.
    if name in ("Cache", "CacheEntry"):
        from . import cache

        return getattr(cache, name)
    raise AttributeError("module 'kck' has no attribute %r" % name)


__version__ = "0.1.0"
__all__ = [
    "Primer", "Depends", "Change", "CannotAugment", "Cache", "CacheEntry",
    "Parameter", "IntParameter", "StrParameter", "BoolParameter", "DateParameter",
    "KckError", "InvalidKey", "KeyParameterMismatch", "UnknownPrimer", "KeyNotSet",
    "KCKKeyNotSetException", "PrimerComputeError", "PrimerDefinitionError", "ProductDoesNotExist",
    "KckNotInstalled",
    "KckSyncError", "registry", "isolated_registry",
]
