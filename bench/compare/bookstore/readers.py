"""One read path per configuration: read_function(mode) returns get(name, author_id) -> value,
each as a Django application would read the product."""
import json

from django.db import connection

from .products import NAMES, compute_sql, key


def _kck_reader():
    """kck's Django library: Cache.get_instance().get(key), a hit being one indexed read of kck.cache.
    Cache.get knows only Python primers, so primers of the same names and SQL are registered in this
    process (they would compute a miss; the products are stored before every run, so reads hit)."""
    from kck import Cache, Primer

    def primer_class(name):
        def compute(self, k):
            return _compute(name, self.key_to_param_dict(k)["author_id"])
        return type(name, (Primer,), {"key": name, "compute": compute,
                                      "parameters": [{"name": "author_id", "from_str": int}]})

    for name in NAMES:
        primer_class(name)
    cache = Cache.get_instance()
    return lambda name, author_id: cache.get(key(name, author_id))


def _cache_reader():
    from django.core.cache import cache
    return lambda name, author_id: cache.get(key(name, author_id))


def _matview_reader():
    def get(name, author_id):
        with connection.cursor() as cur:
            cur.execute("SELECT value FROM mv_%s WHERE author_id = %%s" % name, [author_id])
            row = cur.fetchone()
            return json.loads(row[0]) if row else None
    return get


def _compute(name, author_id):
    with connection.cursor() as cur:
        cur.execute(compute_sql(name), {"author_id": author_id})
        return json.loads(cur.fetchone()[0])


READERS = {"kck": _kck_reader, "cache": _cache_reader, "matview": _matview_reader,
           "compute": lambda: _compute}


def read_function(mode):
    return READERS[mode]()


def compute(name, author_id):
    """A fresh compute (for checking a configuration's values at the end of a run)."""
    return _compute(name, author_id)
