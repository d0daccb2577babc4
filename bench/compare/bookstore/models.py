"""The tables of examples/bookstore/schema.sql (created by bench/compare/compare.py, not by
migrations), as Django's ForeignKey would index them."""
from django.db import models


class Author(models.Model):
    name = models.TextField()

    class Meta:
        managed = False
        db_table = "store_author"


class Book(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    title = models.TextField()
    published = models.DateField(null=True)

    class Meta:
        managed = False
        db_table = "store_book"


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    rating = models.IntegerField()
    body = models.TextField(default="")

    class Meta:
        managed = False
        db_table = "store_review"
