import datetime

from django.core.management.base import BaseCommand
from django.db import transaction

from store.models import Author, Book, Review


class Command(BaseCommand):
    help = "Fills the bookstore with deterministic sample data (authors, books, reviews)."

    def add_arguments(self, parser):
        parser.add_argument("--authors", type=int, default=3)
        parser.add_argument("--books", type=int, default=4, help="books per author")
        parser.add_argument("--reviews", type=int, default=3, help="reviews per book")

    @transaction.atomic
    def handle(self, *args, **o):
        for a in range(o["authors"]):
            author = Author.objects.create(name="Author %d" % (a + 1))
            for b in range(o["books"]):
                book = Book.objects.create(author=author, title="Book %d.%d" % (a + 1, b + 1),
                                           published=datetime.date(2000 + b, 1 + a % 12, 1))
                Review.objects.bulk_create(
                    Review(book=book, rating=1 + (a + b + r) % 5, body="review %d" % (r + 1))
                    for r in range(o["reviews"]))
        self.stdout.write("seeded %d authors, %d books, %d reviews" % (
            Author.objects.count(), Book.objects.count(), Review.objects.count()))
