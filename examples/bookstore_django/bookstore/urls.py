from django.urls import path

from store import views

urlpatterns = [
    path("authors/<int:author_id>/titles/", views.title_list),
    path("authors/<int:author_id>/stats/", views.author_stats),
    path("top/<int:n>/", views.top_books),
    path("products/<path:key>", views.product),
]
