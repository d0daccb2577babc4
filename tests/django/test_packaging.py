"""django/ installs the way Python projects do: pyproject.toml (setuptools backend) into a
virtualenv made with --system-site-packages (Django and psycopg2 from Debian), without network;
and the README shows how, with the seed's Basic Usage fixed."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PYTHON, ROOT

DJANGO_DIR = ROOT / "django"


def _venv_unavailable():
    p = subprocess.run([PYTHON, "-c", "import venv, ensurepip"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    return p.returncode != 0 and "%s has no venv/ensurepip (Debian: apt-get install python3-venv): %s" % (
        PYTHON, p.stdout.strip().splitlines()[-1])


def _run(argv, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")  # never the network
    p = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True, env=env, timeout=300, **kw)
    assert p.returncode == 0, "%s failed (%d):\n%s" % (" ".join(map(str, argv)), p.returncode, p.stdout)
    return p.stdout


def test_pip_install_into_a_system_site_packages_venv(tmp_path):
    reason = _venv_unavailable()
    if reason:
        pytest.skip(reason)
    # A copy: building writes build/ and *.egg-info next to pyproject.toml.
    src = shutil.copytree(DJANGO_DIR, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    venv = tmp_path / "venv"
    _run([PYTHON, "-m", "venv", "--system-site-packages", venv])
    _run([venv / "bin" / "pip", "install", "--no-build-isolation", "--no-deps", src])
    out = _run([venv / "bin" / "python", "-c",
                "import kck, pathlib, django, psycopg2; p = pathlib.Path(kck.__file__).parent; "
                "print(p); print(kck.__version__); "
                "print(all((p / f).is_file() for f in ('py.typed', 'templatetags/kck_tags.py', 'backends.py', "
                "'management/commands/kck_sync.py', 'testing/pytest_plugin.py')))"], cwd=str(tmp_path))
    where, version, files = out.split()
    assert Path(where).is_relative_to(venv) and "site-packages" in where, where
    assert version == "0.1.0" and files == "True"
    assert "Name: kck-django" in _run([venv / "bin" / "pip", "show", "kck-django"])


def test_readme_shows_install_and_the_fixed_basic_usage():
    readme = (DJANGO_DIR / "README.md").read_text()
    assert "python3 -m venv --system-site-packages" in readme
    assert "pip install --no-build-isolation --no-deps ./django" in readme
    assert "## Basic Usage" in readme
    section = readme.split("## Basic Usage", 1)[1].split("\n## ", 1)[0]
    usage = "".join(section.split("```")[1::2])  # the code blocks
    assert "def compute(self, key):" in usage and "def first_data_product_view" in usage
    assert "id_list" not in usage and "param_dict['id']" in usage
    assert "JsonResponse(title_list, safe=False)" in usage
