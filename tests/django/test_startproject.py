"""A new user's path, end to end: `django-admin startproject`, an app with models and a
primers.py, `makemigrations` + `migrate` (which syncs kck), `manage.py check`, then a
save that `kck.testing.drain()` makes visible in `Cache.get` — following only the
READMEs, in a fresh project in a temp directory and a database of its own."""

import os
import subprocess
import textwrap
import uuid

import pytest
from django.db import connection

from conftest import BINARY_LISTENS, NO_LISTEN_REASON, PYTHON, ROOT, SOCKET_DIR

pytestmark = pytest.mark.skipif(not BINARY_LISTENS, reason=NO_LISTEN_REASON)

MODELS = """
from django.db import models


class Author(models.Model):
    name = models.CharField(max_length=100)


class Post(models.Model):
    author = models.ForeignKey(Author, on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
"""

PRIMERS = """
from kck import Depends, Primer

from .models import Post


class TitleListPrimer(Primer):
    key = 'title_list'
    parameters = [{"name": "author_id", "from_str": int}]
    depends_on = [Depends(Post, author_id='author_id')]

    def compute(self, key):
        author_id = self.key_to_param_dict(key)['author_id']
        return [p.title for p in Post.objects.filter(author_id=author_id).order_by('id')]
"""

SETTINGS = """

INSTALLED_APPS += ['kck', 'posts']
DATABASES = {{'default': {{'ENGINE': 'django.db.backends.postgresql', 'NAME': {name!r},
                          'HOST': {host!r}, 'PORT': '5432', 'USER': 'postgres'}}}}
"""

SCRIPT = """
from kck import Cache
from kck.testing import drain
from posts.models import Author, Post

a = Author.objects.create(name='Ann')
Post.objects.create(author=a, title='First')
key = 'title_list/%d' % a.id
print('before', Cache.get_instance().get(key))
Post.objects.create(author=a, title='Second')
drain()
print('after', Cache.get_instance().get(key))
"""


def _run(argv, cwd, env):
    p = subprocess.run(argv, cwd=str(cwd), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, timeout=180)
    assert p.returncode == 0, "%s failed (%d):\n%s" % (" ".join(map(str, argv)), p.returncode, p.stdout)
    return p.stdout


@pytest.fixture
def blog_database(db):
    name = "blog_%s" % uuid.uuid4().hex[:8]
    with connection.cursor() as cur:
        cur.execute("CREATE DATABASE %s" % name)
    yield name
    with connection.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % name)


def test_a_new_project_following_the_readmes(tmp_path, blog_database):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "django"), DJANGO_SETTINGS_MODULE="blog.settings")
    env.pop("KCK_TEST_SYNC_ON_MIGRATE", None)
    _run([PYTHON, "-m", "django", "startproject", "blog", str(tmp_path)], tmp_path, env)
    _run([PYTHON, "manage.py", "startapp", "posts"], tmp_path, env)
    (tmp_path / "posts" / "models.py").write_text(MODELS)
    (tmp_path / "posts" / "primers.py").write_text(PRIMERS)
    with open(tmp_path / "blog" / "settings.py", "a") as f:
        f.write(SETTINGS.format(name=blog_database, host=str(SOCKET_DIR)))

    _run([PYTHON, "manage.py", "makemigrations", "posts"], tmp_path, env)
    migrated = _run([PYTHON, "manage.py", "migrate"], tmp_path, env)
    assert "Applying posts.0001_initial" in migrated
    checked = _run([PYTHON, "manage.py", "check"], tmp_path, env)
    assert "no issues" in checked, checked
    out = _run([PYTHON, "manage.py", "shell", "-c", textwrap.dedent(SCRIPT)], tmp_path, env)
    assert "before ['First']" in out, out
    assert "after ['First', 'Second']" in out, out
