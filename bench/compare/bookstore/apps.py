from django.apps import AppConfig


class BookstoreConfig(AppConfig):
    name = "bookstore"
    label = "store"
    default_auto_field = "django.db.models.BigAutoField"
