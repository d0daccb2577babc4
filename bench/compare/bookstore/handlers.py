"""Signal handlers of configurations (c) and (d): after a Book or Review is saved or deleted,
(c) recomputes the author's products that the change can reach into Django's cache (DatabaseCache:
a review reaches author_stats, a book's title edit title_list, any other book change both), (d) runs
REFRESH MATERIALIZED VIEW CONCURRENTLY on both views. The work is queued with
transaction.on_commit, once per author (per transaction for (d)): in autocommit it runs right
after the statement commits, and a cascading delete (a book and its reviews, one transaction)
recomputes once, after its COMMIT."""
import json
import threading

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models.signals import post_delete, post_save

from .models import Book, Review
from .products import NAMES, compute_sql, key

_local = threading.local()
MATVIEWS = ("mv_title_list", "mv_author_stats")


def compute(name, author_id):
    """The product's value, as the primer's SQL computes it."""
    with connection.cursor() as cur:
        cur.execute(compute_sql(name), {"author_id": author_id})
        return json.loads(cur.fetchone()[0])


def recompute_into_cache(product):
    name, author_id = product
    cache.set(key(name, author_id), compute(name, author_id))


def _names_for(instance, update_fields):
    """The products a saved or deleted row can change, as kck's rules tell them apart: a review
    only its author's author_stats, a book's title edit only title_list (update_of)."""
    if isinstance(instance, Review):
        return ("author_stats",)
    if update_fields is not None and set(update_fields) <= {"title"}:
        return ("title_list",)
    return NAMES


def refresh_matviews(_):
    with connection.cursor() as cur:
        for view in MATVIEWS:
            cur.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY " + view)


def _once_after_commit(work, arg):
    """Runs work(arg) after the current transaction commits, once however often it is asked."""
    pending = getattr(_local, "pending", None)
    if pending is None:
        pending = _local.pending = set()
    if (work, arg) in pending:
        return
    pending.add((work, arg))

    def run():
        pending.discard((work, arg))
        work(arg)
    transaction.on_commit(run)


def _author_of(instance):
    if isinstance(instance, Book):
        return instance.author_id
    return Book.objects.filter(id=instance.book_id).values_list("author_id", flat=True).first()


def connect(mode):
    """mode "cache": (c); "matview": (d); "none": no handler (kck and (e))."""
    if mode == "none":
        return
    if mode == "cache":
        def handler(sender, instance, update_fields=None, **kwargs):
            author_id = _author_of(instance)
            if author_id is not None:
                for name in _names_for(instance, update_fields):
                    _once_after_commit(recompute_into_cache, (name, author_id))
    elif mode == "matview":
        def handler(sender, instance, **kwargs):
            _once_after_commit(refresh_matviews, None)
    else:
        raise ValueError("unknown handler mode %r" % mode)
    for model in (Book, Review):
        post_save.connect(handler, sender=model, weak=False)
        post_delete.connect(handler, sender=model, weak=False)
