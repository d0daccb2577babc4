"""kcktest_settings with a database password and an OPTIONS entry: what kck_listen must pass on
(the cluster trusts every local connection, so the password is never checked)."""

from kcktest_settings import *  # noqa: F401,F403
from kcktest_settings import DATABASES

PASSWORD = "kck-test-secret-pw"
DATABASES = {"default": dict(DATABASES["default"], PASSWORD=PASSWORD,
                             OPTIONS={"sslmode": "disable", "application_name": "someapp"})}
