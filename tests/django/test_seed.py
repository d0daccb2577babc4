"""The seed README's example (django-kck), run as written apart from its own bugs.

Bug 1 (named in the issue): compute reads param_dict['id_list'] where the primer
declares the parameter "id"; we read [param_dict['id']].
Bug 2: JsonResponse(title_list) refuses a list unless safe=False; the view as written
raises TypeError in any Django, so we also run it with safe=False.
"""

import json
import re
from pathlib import Path

import pytest
from django.test import RequestFactory

from conftest import query
from kck import isolated_registry

SEED_FILE = Path("/work/shared/seed/000_93f11fc7d7d55fdd.txt")

SEED_PRIMERS = '''# myapp/primers.py

from kck import Primer


class TitleListPrimer(Primer):
    key = 'title_list'
    parameters = [
        {"name": "id", "from_str": int}
    ]

    def compute(self, key):
        param_dict = self.key_to_param_dict(key)
        results = [{ 'title': lkp_title(id) } for id in param_dict['id_list']]
        return results
'''

SEED_VIEWS = '''# myapp/views.py

from kck import Cache
from django.http import JsonResponse

def first_data_product_view(request, author_id):
    cache = Cache.get_instance()
    title_list = cache.get(f'title_list/{author_id}')
    return JsonResponse(title_list)

'''

TYPO_FIX = ("param_dict['id_list']", "[param_dict['id']]")
VIEW_FIX = ("JsonResponse(title_list)", "JsonResponse(title_list, safe=False)")


def test_embedded_copy_is_the_seed():
    if not SEED_FILE.exists():
        pytest.skip("seed README not at %s" % SEED_FILE)
    blocks = re.findall(r"```\n(.*?)```", SEED_FILE.read_text(), re.S)
    assert SEED_PRIMERS in blocks
    assert SEED_VIEWS in blocks


def _lkp_title(id):
    from store.models import Book

    return Book.objects.filter(author_id=id).order_by("id").values_list("title", flat=True).first()


def _load(code, module, **names):
    ns = {"__name__": module}
    ns.update(names)
    exec(compile(code, module.replace(".", "/") + ".py", "exec"), ns)
    return ns


@pytest.fixture
def seed(db):
    from store.models import Author, Book

    author = Author.objects.create(name="Tolstoy")
    Book.objects.create(author=author, title="War and Peace")
    with isolated_registry() as reg:
        primers = _load(SEED_PRIMERS.replace(*TYPO_FIX), "myapp.primers", lkp_title=_lkp_title)
        yield author, reg, primers


def test_seed_primer_as_written(seed):
    from kck import Cache

    author, reg, primers = seed
    assert reg.names() == ["title_list"]
    primer = reg.get("title_list")
    assert isinstance(primer, primers["TitleListPrimer"])
    assert primer.key_to_param_dict("title_list/%d" % author.id) == {"id": author.id}
    assert primer.to_spec()["parameters"] == [{"name": "id", "type": "int"}]

    cache = Cache.get_instance()
    assert cache.get(f"title_list/{author.id}") == [{"title": "War and Peace"}]
    assert query("SELECT key, primer, version FROM kck.cache") == [("title_list/%d" % author.id, "title_list", 1)]
    assert cache.get(f"title_list/{author.id}") == [{"title": "War and Peace"}]


def test_seed_typo_as_written_is_a_clear_compute_error(db):
    from kck import Cache, PrimerComputeError

    with isolated_registry():
        _load(SEED_PRIMERS, "myapp.primers", lkp_title=_lkp_title)
        with pytest.raises(PrimerComputeError, match="KeyError: 'id_list'"):
            Cache.get_instance().get("title_list/1")
    assert query("SELECT count(*) FROM kck.cache") == [(0,)]


def test_seed_view(seed):
    author, reg, primers = seed
    request = RequestFactory().get("/")
    views = _load(SEED_VIEWS.replace(*VIEW_FIX), "myapp.views")
    response = views["first_data_product_view"](request, author.id)
    assert response.status_code == 200
    assert json.loads(response.content) == [{"title": "War and Peace"}]

    as_written = _load(SEED_VIEWS, "myapp.views")
    with pytest.raises(TypeError, match="safe parameter to False"):
        as_written["first_data_product_view"](request, author.id)
