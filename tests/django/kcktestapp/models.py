"""Models used only by tests/django (test_checks: migrations that rename or drop a depended-on field)."""

from django.db import models


class Note(models.Model):
    title = models.TextField(default="")
    owner_id = models.IntegerField(null=True)
