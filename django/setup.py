"""The kck Django app. Install from a checkout (no PyPI needed): `pip install ./django`,
or put this directory on sys.path (the example's manage.py does that)."""

from setuptools import find_packages, setup

setup(
    name="kck-django",
    version="0.1.0",
    description="Django API of django-kck on top of the kck daemon",
    packages=find_packages(include=["kck", "kck.*"]),
    python_requires=">=3.7",
    install_requires=["Django>=3.2", "psycopg2>=2.8"],
)
