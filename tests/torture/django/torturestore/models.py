"""The torture's tables (created by TortureSchema() in torture_helpers.h), unmanaged."""

from django.db import models


class Author(models.Model):
    name = models.TextField()

    class Meta:
        managed = False
        db_table = "store_author"


class Book(models.Model):
    author_id = models.BigIntegerField(null=True)
    title = models.TextField()
    price = models.DecimalField(max_digits=20, decimal_places=2)

    class Meta:
        managed = False
        db_table = "store_book"


class Review(models.Model):
    author_id = models.BigIntegerField(null=True)
    stars = models.IntegerField()

    class Meta:
        managed = False
        db_table = "store_review"
