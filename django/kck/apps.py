from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class KckConfig(AppConfig):
    name = "kck"
    verbose_name = "kck"

    def ready(self):
        from . import conf

        conf.validate()  # a bad settings.KCK entry stops startup with a message naming it
        # Like admin.py: import every installed app's primers.py, registering its primers.
        autodiscover_modules("primers")
        from . import checks  # noqa: F401  (registers the system checks)
        from .sync import post_migrate_sync

        post_migrate.connect(post_migrate_sync, sender=self, dispatch_uid="kck.post_migrate_sync")
