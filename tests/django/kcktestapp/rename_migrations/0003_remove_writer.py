"""Then drops it."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("kcktestapp", "0002_rename_owner")]
    operations = [migrations.RemoveField("note", "writer_id")]
