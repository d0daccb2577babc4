"""The torture's Python primers, computed by the real kck_worker.

py_titles/<author_id>      the titles of an author's books in id order   recomputed
py_book_count/<author_id>  the number of an author's books               augmented: +1 on insert,
                                                                         -1 on delete, else recomputed
py_review_total            the number of reviews                         augmented the same way

Bulk statements (recomputed, never augmented) touch store_book far more often than
store_review, so py_review_total is the count whose last changes before a drain are
most often augmented: a change applied twice or lost shows there.

The oracle (torture_helpers.h) checks every stored product against a fresh compute by a
kck_worker of its own, and py_book_count against count(*) in SQL.
"""

from kck import CannotAugment, Depends, IntParameter, Primer

from .models import Book, Review


class PyTitlesPrimer(Primer):
    key = "py_titles"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id")]

    def compute(self, key):
        author_id = self.key_to_param_dict(key)["author_id"]
        return list(Book.objects.filter(author_id=author_id).order_by("id").values_list("title", flat=True))


class PyBookCountPrimer(Primer):
    key = "py_book_count"
    parameters = [IntParameter("author_id")]
    depends_on = [Depends(Book, author_id="author_id")]

    def compute(self, key):
        return Book.objects.filter(author_id=self.key_to_param_dict(key)["author_id"]).count()

    def augment(self, key, value, change):
        if change.op == "I":
            return value + 1
        if change.op == "D":
            return value - 1
        raise CannotAugment()


class PyReviewTotalPrimer(Primer):
    key = "py_review_total"
    parameters = []
    depends_on = [Depends(Review)]  # any change: the one stored key

    def compute(self, key):
        return Review.objects.count()

    def augment(self, key, value, change):
        if change.op == "I":
            return value + 1
        if change.op == "D":
            return value - 1
        raise CannotAugment()
