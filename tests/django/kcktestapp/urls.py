"""URLs of tests/django (test_idioms: an async view reading products with Cache.aget)."""

from django.http import JsonResponse
from django.urls import path

from kck import Cache


async def echo_async(request, text):
    cache = Cache.get_instance()
    value = await cache.aget(cache.build_key("echo", text=text))
    entry = await cache.aget_entry(cache.build_key("echo", text=text))
    return JsonResponse({"value": value, "version": entry.version})


urlpatterns = [path("async/echo/<str:text>", echo_async)]
