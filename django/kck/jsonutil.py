"""JSON encoding of product values (DjangoJSONEncoder-compatible)."""

import json

from django.core.serializers.json import DjangoJSONEncoder


class KckJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder (dates, datetimes, Decimal, UUID, lazy strings) plus sets and tuples."""

    def default(self, o):
        if isinstance(o, (set, frozenset)):
            return list(o)
        return super().default(o)


def dumps(value):
    """Compact JSON text of ``value``; NaN and infinities are errors (they are not JSON)."""
    return json.dumps(value, cls=KckJSONEncoder, allow_nan=False, separators=(",", ":"),
                      ensure_ascii=False)


def loads(text):
    return None if text is None else json.loads(text)
