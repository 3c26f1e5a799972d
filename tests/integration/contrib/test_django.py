"""The Django app in a real minimal project: a real threaded WSGI server, real PostgreSQL.

The project (tests/integration/contrib/djangoproject) runs in its own
process, as a Django site does: ``django-admin runserver --noreload`` serves
it with Django's ``ThreadedWSGIServer`` (a thread per request), and
``django-admin connectors_check`` is the real management command.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse

import pytest

pytest.importorskip("django")

from tests.integration.contrib import helpers

pytestmark = pytest.mark.integration

SETTINGS = "tests.integration.contrib.djangoproject.settings"


def _django(*argv: str, **env: str) -> list[str]:
    return [helpers.PYTHON, "-m", "django", *argv, f"--settings={SETTINGS}"]


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        env=helpers.python_env(**env),
        cwd=helpers.REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_32_concurrent_requests_on_a_threaded_wsgi_server(postgres_dsn):
    app_name = helpers.unique_name("django")
    port = helpers.free_port()
    process = subprocess.Popen(
        _django("runserver", f"127.0.0.1:{port}", "--noreload"),
        env=helpers.python_env(DJANGO_TEST_PG_URL=postgres_dsn, DJANGO_TEST_APP_NAME=app_name),
        cwd=helpers.REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        helpers.wait_until_serving(f"{url}/not-a-page", process)  # a 404: connects nothing
        assert helpers.backends(postgres_dsn, app_name) == []  # lazy: nothing connected yet
        results = helpers.fan_out([f"{url}/query/{i}" for i in range(32)], workers=32)
        assert [status for status, _ in results] == [200] * 32, results
        bodies = [body for _, body in results]
        assert [b["doubled"] for b in bodies] == [2 * i for i in range(32)]
        assert len({b["connector"] for b in bodies}) == 1  # one shared connector
        assert len({b["thread"] for b in bodies}) > 1 and max(b["peak"] for b in bodies) > 1
        used = {b["backend"] for b in bodies}
        open_backends = set(helpers.backends(postgres_dsn, app_name))
        assert used <= open_backends and 1 <= len(open_backends) <= 8
        status, health = helpers.get_json(f"{url}/health")
        assert status == 200 and health["healthy"] is True
        assert health["connectors"]["orders_db"]["state"] == "connected"
        process.send_signal(signal.SIGINT)  # Ctrl-C: runserver exits, atexit closes
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output
    assert helpers.wait_no_backends(postgres_dsn, app_name) == []


def test_connectors_check_command_exit_codes(postgres_dsn, tmp_path):
    app_name = helpers.unique_name("django_check")
    env = {"DJANGO_TEST_PG_URL": postgres_dsn, "DJANGO_TEST_APP_NAME": app_name}
    result = _run(_django("connectors_check"), env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["ok", "orders_db", "postgresql"]
    result = _run(_django("connectors_check", "--json"), env)
    assert result.returncode == 0, result.stderr
    (db,) = json.loads(result.stdout)["connectors"]
    assert db["healthy"] is True and db["latency_ms"] > 0

    parts = urllib.parse.urlsplit(postgres_dsn)
    wrong = postgres_dsn.replace(f":{parts.password}@", ":WRONG-DJANGO-SECRET@")
    result = _run(_django("connectors_check", "--json"), {**env, "DJANGO_TEST_PG_URL": wrong})
    assert result.returncode == 1, result.stderr
    (db,) = json.loads(result.stdout)["connectors"]
    assert db["error_code"] == "AUTH_FAILED" and db["transient"] is False
    assert "WRONG-DJANGO-SECRET" not in result.stdout + result.stderr

    bad = tmp_path / "bad.toml"
    bad.write_text(f'[connectors.orders_db]\nurl = "{postgres_dsn}"\nmax_open_conns = "lots"\n')
    result = _run(_django("connectors_check"), {**env, "DJANGO_TEST_CONNECTORS_TOML": str(bad)})
    assert result.returncode == 2
    assert "connector 'orders_db', field 'max_open_conns'" in result.stderr
    assert "dictamesh-test-pw" not in result.stdout + result.stderr
    # Any other command (and the site itself) refuses to start on that configuration.
    result = _run(_django("check"), {**env, "DJANGO_TEST_CONNECTORS_TOML": str(bad)})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "connector 'orders_db', field 'max_open_conns'" in result.stderr
    assert helpers.wait_no_backends(postgres_dsn, app_name) == []
