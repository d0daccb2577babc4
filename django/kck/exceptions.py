"""Exception types of the kck Django app."""


class KckError(Exception):
    """Base class of every error kck raises on its own account."""


class InvalidKey(KckError, ValueError):
    """A key that is not the canonical key of any product (bad syntax, bad primer name)."""


class KeyParameterMismatch(InvalidKey):
    """A key (or build_key call) whose parameters do not match the primer's declaration."""


class UnknownPrimer(KckError, LookupError):
    """No Python primer with that name is registered in this process."""


class KeyNotSet(KckError, LookupError):
    """A miss for a primer with prime_on_cache_miss = False."""


# The original library's name for KeyNotSet.
KCKKeyNotSetException = KeyNotSet


class PrimerComputeError(KckError):
    """A primer's compute() raised (or returned a value that is not JSON).

    Nothing was stored. The original exception is ``__cause__`` and ``original``.
    """

    def __init__(self, message, key=None, original=None):
        super().__init__(message)
        self.key = key
        self.original = original


class ProductDoesNotExist(KckError, KeyError):
    """The product does not exist: its compute found nothing (a primer's compute raised
    ``django.core.exceptions.ObjectDoesNotExist``, a SQL compute returned no row).

    Nothing is stored, and a stored value of the key is removed. The original exception,
    if any, is ``__cause__``.
    """

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key

    def __str__(self):  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class PrimerDefinitionError(KckError, TypeError):
    """A Primer class or Depends rule that cannot be registered as written."""


class KckNotInstalled(KckError):
    """The kck schema is missing from the database: run ``manage.py kck_sync``."""


class KckSyncError(KckError):
    """``kck install`` failed or the kck binary could not be run."""


class CannotAugment(Exception):
    """Raised by Primer.augment() when a change cannot be applied in place:
    the product is recomputed instead."""
