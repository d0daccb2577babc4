"""The two products every configuration serves, title_list/<author_id> and author_stats/<author_id>,
with the compute SQL of examples/bookstore/primers.json (one source for all five configurations),
and the kck configs made from that file. Imports no Django: compare.py uses it too."""
import copy
import json
from pathlib import Path

PRIMERS_JSON = Path(__file__).resolve().parents[3] / "examples" / "bookstore" / "primers.json"
NAMES = ("title_list", "author_stats")

# (b)'s augments. The example's title_list insert augment is kept; update and delete are added so
# that every store_book row change is applied in place. author_stats can be augmented exactly only
# for a new book (books + 1: it has no reviews yet); its avg_rating is rounded, so review changes
# cannot be applied to it exactly and are recomputed.
_ELEMENTS = "FROM jsonb_array_elements(:value) WITH ORDINALITY AS x(e, n)"
AUGMENTS = {
    "title_list": {"store_book": {
        "update": "SELECT coalesce(jsonb_agg(CASE WHEN (e->>'id')::bigint = (:new->>'id')::bigint "
                  "THEN jsonb_build_object('id', (:new->>'id')::bigint, 'title', :new->>'title') ELSE e END "
                  "ORDER BY n), '[]') " + _ELEMENTS,
        "delete": "SELECT coalesce(jsonb_agg(e ORDER BY n) FILTER (WHERE (e->>'id')::bigint <> "
                  "(:old->>'id')::bigint), '[]') " + _ELEMENTS,
    }},
    "author_stats": {"store_book": {
        "insert": "SELECT jsonb_set(:value, '{books}', to_jsonb((:value->>'books')::bigint + 1))",
    }},
}


def key(name, author_id):
    return "%s/%d" % (name, author_id)


def example_primers():
    """{name: spec} of the example's title_list and author_stats (top_books is left out: nothing
    reads it, and kck computes only products that are stored)."""
    specs = json.loads(PRIMERS_JSON.read_text())["primers"]
    return {s["name"]: s for s in specs if s["name"] in NAMES}


def compute_sql(name):
    """The primer's compute with a DB-API placeholder for :author_id (pass {"author_id": ...})."""
    return example_primers()[name]["compute"].replace(":author_id", "%(author_id)s")


def kck_config(augment):
    """(a): the example's primers without "augment" (every change recomputes); (b): with AUGMENTS."""
    primers = []
    for name, spec in example_primers().items():
        spec = copy.deepcopy(spec)
        spec.pop("augment", None)
        if augment:
            spec["augment"] = copy.deepcopy(AUGMENTS[name])
            if name == "title_list":
                spec["augment"]["store_book"]["insert"] = example_primers()[name]["augment"]["store_book"]["insert"]
        primers.append(spec)
    return {"primers": primers}
