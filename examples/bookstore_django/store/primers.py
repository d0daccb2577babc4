"""The bookstore's products.

title_list/<author_id>    the titles of an author's books       recomputed on Book changes
author_stats/<author_id>  books, reviews and average rating     augmented in place on Book
                                                                inserts and Review changes
top_books/<n>             the n best-rated books                recomputed on any Book/Review change
"""

from django.db.models import Avg, Count, Sum

from kck import CannotAugment, Depends, IntParameter, Primer

from .models import Book, Review


class TitleListPrimer(Primer):
    key = "title_list"
    parameters = [{"name": "author_id", "from_str": int}]
    depends_on = [Depends(Book, author_id="author")]  # the column author_id of store_book

    def compute(self, key):
        param_dict = self.key_to_param_dict(key)
        books = Book.objects.filter(author_id=param_dict["author_id"]).order_by("id")
        return [{"id": b.id, "title": b.title} for b in books]


def authors_of_reviewed_books(old, new):
    """Keys rule: a Review row changed -> the author_stats of its book's author(s)."""
    book_ids = {row["book_id"] for row in (old, new) if row and row.get("book_id") is not None}
    authors = Book.objects.filter(id__in=book_ids).values_list("author_id", flat=True).distinct()
    return ["author_stats/%d" % a for a in sorted(authors)]


def _stats(author_id, books, reviews, rating_total):
    return {
        "author_id": author_id,
        "books": books,
        "reviews": reviews,
        "rating_total": rating_total,
        "average_rating": round(rating_total / reviews, 2) if reviews else None,
    }


class AuthorStatsPrimer(Primer):
    key = "author_stats"
    parameters = [IntParameter("author_id")]
    depends_on = [
        Depends(Book, author_id="author_id"),
        Depends(Review, keys=authors_of_reviewed_books, columns=["book_id", "rating"]),
    ]

    def compute(self, key):
        author_id = self.key_to_param_dict(key)["author_id"]
        books = Book.objects.filter(author_id=author_id).count()
        agg = Review.objects.filter(book__author_id=author_id).aggregate(n=Count("id"), total=Sum("rating"))
        return _stats(author_id, books, agg["n"], agg["total"] or 0)

    def augment(self, key, value, change):
        books, reviews, total = value["books"], value["reviews"], value["rating_total"]
        if change.is_table(Book):
            if change.op == "I":
                books += 1  # a new book has no reviews yet
            elif change.op == "U" and change.old["author_id"] == change.new["author_id"]:
                return value  # a title or date changed: nothing counted here did
            else:
                raise CannotAugment()  # a deleted or moved book takes its reviews along
        elif change.is_table(Review):
            old, new = change.old, change.new
            if change.op == "U" and old["book_id"] != new["book_id"]:
                raise CannotAugment()
            if old is not None:
                reviews, total = reviews - 1, total - old["rating"]
            if new is not None:
                reviews, total = reviews + 1, total + new["rating"]
        else:
            raise CannotAugment()
        return _stats(value["author_id"], books, reviews, total)


class TopBooksPrimer(Primer):
    key = "top_books"
    parameters = [IntParameter("n")]
    depends_on = [Depends(Review), Depends(Book)]  # any change: every stored top_books/<n>

    def compute(self, key):
        n = self.key_to_param_dict(key)["n"]
        if not 1 <= n <= 1000:
            raise ValueError("top_books/<n> needs 1 <= n <= 1000, got %d" % n)
        books = (Book.objects.annotate(avg=Avg("reviews__rating"), count=Count("reviews"))
                 .filter(count__gt=0).order_by("-avg", "-count", "id")[:n])
        return [{"id": b.id, "title": b.title, "author_id": b.author_id,
                 "average_rating": round(b.avg, 2), "reviews": b.count} for b in books]
