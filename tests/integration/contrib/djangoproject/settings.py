"""Settings of the test project: one PostgreSQL connector named ``orders_db``.

The test passes the server and a unique ``application_name`` in the
environment; ``DJANGO_TEST_CONNECTORS_TOML`` replaces the mapping by a TOML
file (to test bad configurations).
"""

import os

SECRET_KEY = "dictamesh-connectors-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "tests.integration.contrib.djangoproject.urls"
INSTALLED_APPS = ["dictamesh_connectors.contrib.django"]
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

DICTAMESH_CONNECTORS = os.environ.get("DJANGO_TEST_CONNECTORS_TOML") or {
    "orders_db": {
        "url": os.environ.get("DJANGO_TEST_PG_URL", "postgresql://127.0.0.1:55432/x"),
        "application_name": os.environ.get("DJANGO_TEST_APP_NAME", "django-tests"),
        "max_open_conns": 8,
        "connect_timeout": 5,
    }
}
DICTAMESH_CONNECTORS_CLOSE_TIMEOUT = 10.0
