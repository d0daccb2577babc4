"""A Django cache backend that reads products: caches['products'].get('title_list/5').

    CACHES = {
        "default": {...},
        "products": {"BACKEND": "kck.backends.ProductCache"},
    }

Reads go through Cache.get_instance() (a miss is computed and stored, like Cache.get), so
``get`` and ``get_many`` return products. Writes are allowed where Cache.set allows them:
``set``/``set_many`` store a value under the key of a registered primer and ``delete``/
``delete_many`` remove one (Cache.unset); the expiry is the primer's, so a timeout argument
other than the default is an error. ``add``, ``incr``, ``decr``, ``touch`` and ``clear`` raise
ProductCacheWriteError: products are owned by their primers. Keys are product keys as they
are: KEY_PREFIX, KEY_FUNCTION and VERSION do not apply.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache

from .exceptions import KckError, KeyNotSet, ProductDoesNotExist

_ABSENT = (KeyNotSet, ProductDoesNotExist)


class ProductCacheWriteError(KckError):
    """A write the product cache does not allow (add, incr, a timeout, another version, ...)."""


def _refuse(what: str, why: str) -> ProductCacheWriteError:
    return ProductCacheWriteError("kck.backends.ProductCache: %s is not allowed: %s" % (what, why))


class ProductCache(BaseCache):
    """Django's cache API over kck products (kck.Cache)."""

    def __init__(self, location: str = "", params: Optional[Dict[str, Any]] = None) -> None:
        super().__init__(params or {})

    @property
    def products(self):
        from .cache import Cache

        return Cache.get_instance()

    def make_key(self, key: str, version: Optional[int] = None) -> str:
        if version is not None:
            raise _refuse("version=%r" % (version,), "products have one version, the stored one")
        return key

    def validate_key(self, key: str) -> None:
        pass  # the codec validates product keys (InvalidKey, UnknownPrimer)

    def _no_timeout(self, what: str, timeout: Any) -> None:
        if timeout is not DEFAULT_TIMEOUT:
            raise _refuse("%s(timeout=%r)" % (what, timeout), "a product's expiry is its primer's")

    def get(self, key: str, default: Any = None, version: Optional[int] = None) -> Any:
        try:
            return self.products.get(self.make_key(key, version))
        except _ABSENT:
            return default

    def get_many(self, keys: Iterable[str], version: Optional[int] = None) -> Dict[str, Any]:
        keys = [self.make_key(k, version) for k in keys]
        try:
            return self.products.get_many(keys)
        except _ABSENT:  # some product does not exist: leave it out, as Django's caches do
            return {k: v for k, v in ((k, self.get(k, _ABSENT)) for k in keys) if v is not _ABSENT}

    def has_key(self, key: str, version: Optional[int] = None) -> bool:
        return self.products.is_set(self.make_key(key, version))

    def set(self, key: str, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Optional[int] = None) -> None:
        self._no_timeout("set", timeout)
        self.products.set(self.make_key(key, version), value)

    def set_many(self, data: Dict[str, Any], timeout: Any = DEFAULT_TIMEOUT,
                 version: Optional[int] = None) -> List[str]:
        self._no_timeout("set_many", timeout)
        for key, value in data.items():
            self.products.set(self.make_key(key, version), value)
        return []

    def delete(self, key: str, version: Optional[int] = None) -> bool:
        return self.products.unset(self.make_key(key, version))

    def delete_many(self, keys: Iterable[str], version: Optional[int] = None) -> None:
        for key in keys:
            self.delete(key, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        raise _refuse("add(%r)" % (key,), "a missing product is computed by its primer; use set()")

    def incr(self, key, delta=1, version=None):
        raise _refuse("incr(%r)" % (key,), "products are computed by their primers")

    def decr(self, key, delta=1, version=None):
        raise _refuse("decr(%r)" % (key,), "products are computed by their primers")

    def touch(self, key, timeout=DEFAULT_TIMEOUT, version=None):
        raise _refuse("touch(%r)" % (key,), "a product's expiry is its primer's")

    def clear(self):
        raise _refuse("clear()", "use Cache.unset(key) per product, or remove the primer and run kck_sync")
