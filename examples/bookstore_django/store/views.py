from django.http import JsonResponse

from kck import Cache, KckError


def title_list(request, author_id):
    cache = Cache.get_instance()
    return JsonResponse(cache.get(f"title_list/{author_id}"), safe=False)


def author_stats(request, author_id):
    return JsonResponse(Cache.get_instance().get(f"author_stats/{author_id}"))


def top_books(request, n):
    return JsonResponse(Cache.get_instance().get(f"top_books/{n}"), safe=False)


def product(request, key):
    """Any product with its metadata: /products/title_list/5"""
    try:
        entry = Cache.get_instance().get_entry(key)
    except KckError as e:
        return JsonResponse({"error": str(e)}, status=400)
    return JsonResponse({"key": entry.key, "value": entry.value, "version": entry.version,
                         "computed_at": entry.computed_at})
