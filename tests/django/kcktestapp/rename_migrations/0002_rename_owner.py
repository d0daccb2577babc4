"""A deploy's migration: renames the field NoteOwnerPrimer depends on (primers.py not updated yet)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("kcktestapp", "0001_initial")]
    operations = [migrations.RenameField("note", "owner_id", "writer_id")]
