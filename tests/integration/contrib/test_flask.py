"""The Flask extension on a real threaded Werkzeug server, real sockets, real PostgreSQL."""

from __future__ import annotations

import signal
import subprocess
import threading

import pytest

pytest.importorskip("flask")

from werkzeug.serving import make_server

from tests.integration.contrib import helpers
from tests.integration.contrib.flask_app import create_app

pytestmark = pytest.mark.integration


class ThreadedServer:
    """``werkzeug.serving.make_server(threaded=True)`` on an ephemeral port, in a thread."""

    def __init__(self, app):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def test_32_concurrent_requests_share_one_postgresql_connector(postgres_dsn):
    app_name = helpers.unique_name("flask")
    config = {"orders_db": {"url": postgres_dsn, "application_name": app_name, "max_open_conns": 8}}
    app, _ = create_app(config)
    connectors = app.extensions["dictamesh_connectors"]
    assert connectors.built() == {}  # lazy: nothing built or connected by init_app
    with ThreadedServer(app) as server:
        results = helpers.fan_out([f"{server.url}/query/{i}" for i in range(32)], workers=32)
        assert [status for status, _ in results] == [200] * 32, results
        bodies = [body for _, body in results]
        assert [b["doubled"] for b in bodies] == [2 * i for i in range(32)]
        assert len({b["connector"] for b in bodies}) == 1  # one connector for every thread
        assert len({b["thread"] for b in bodies}) > 1  # served by many threads...
        assert max(b["peak"] for b in bodies) > 1  # ...at the same time
        used = {b["backend"] for b in bodies}
        assert 1 <= len(used) <= 8  # the one pool, bounded by max_open_conns
        open_backends = set(helpers.backends(postgres_dsn, app_name))
        assert used <= open_backends and len(open_backends) <= 8
        status, health = helpers.get_json(f"{server.url}/health")
        assert status == 200 and health["healthy"] is True
        db = health["connectors"]["orders_db"]
        assert db["state"] == "connected" and db["kind"] == "postgresql"
        assert "dictamesh-test-pw" not in str(health) and ":***@" in db["target"]
    connectors.close_all(timeout=10)
    assert helpers.wait_no_backends(postgres_dsn, app_name) == []


def test_health_blueprint_answers_503_with_the_classified_error(postgres_dsn):
    port = helpers.free_port()  # nothing listens there
    config = {
        "orders_db": {"url": postgres_dsn, "application_name": helpers.unique_name("flask")},
        "gone": {"url": f"postgresql://nobody@127.0.0.1:{port}/x", "connect_timeout": 2},
    }
    app, _ = create_app(config)
    with ThreadedServer(app) as server:
        status, health = helpers.get_json(f"{server.url}/health")
    app.extensions["dictamesh_connectors"].close_all(timeout=10)
    assert status == 503 and health["healthy"] is False
    assert health["connectors"]["orders_db"]["healthy"] is True
    gone = health["connectors"]["gone"]
    assert gone["healthy"] is False and gone["error_code"] == "CONNECTION_FAILED"
    assert gone["transient"] is True


def test_connectors_are_closed_when_the_app_process_exits(postgres_dsn):
    app_name = helpers.unique_name("flask_exit")
    port = helpers.free_port()
    process = subprocess.Popen(
        [helpers.PYTHON, str(helpers.REPO / "tests/integration/contrib/flask_app.py"), str(port)],
        env=helpers.python_env(FLASK_TEST_PG_URL=postgres_dsn, FLASK_TEST_APP_NAME=app_name),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        helpers.wait_until_serving(f"{url}/health", process)
        results = helpers.fan_out([f"{url}/query/{i}" for i in range(32)], workers=32)
        assert [status for status, _ in results] == [200] * 32, results
        assert helpers.backends(postgres_dsn, app_name)  # the pool is open
        process.send_signal(signal.SIGINT)  # Ctrl-C: Werkzeug stops, the process exits
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "stopped after" in output and "Traceback" not in output
    assert helpers.wait_no_backends(postgres_dsn, app_name) == []


def test_bad_configuration_fails_init_app_naming_connector_and_field():
    from dictamesh_connectors.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError) as info:
        create_app({"orders_db": {"url": "postgresql://h/db", "max_open_conns": "many"}})
    assert info.value.details == {"connector": "orders_db", "field": "max_open_conns"}
