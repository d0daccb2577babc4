"""pytest fixture `kck_drain`: kck installed in the test database, and kck.testing.drain.

    # conftest.py
    pytest_plugins = ["kck.testing.pytest_plugin"]

    def test_fresh_after_save(kck_drain):
        ...
        kck_drain()

Under pytest-django the fixture requests transactional_db: drain() applies committed changes only.
"""

import pytest

from . import drain, install


@pytest.fixture
def kck_drain(request):
    if request.config.pluginmanager.hasplugin("django"):
        request.getfixturevalue("transactional_db")
    install()
    return drain
