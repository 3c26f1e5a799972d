"""The conformance suite on HTTPConnector, against a real local threaded HTTP server.

Basic-auth credentials with the marker password ride in the URL; the server
answers ``/ok`` at once, ``/slow?seconds=S`` after S seconds and ``/missing``
with a 404.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance
from dictamesh_connectors.testing.conformance.suite import closed_port
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-http-conformance"


def _slow(environ: dict[str, Any]) -> Any:
    query = dict(urllib.parse.parse_qsl(environ["QUERY_STRING"]))
    time.sleep(min(float(query.get("seconds", "1")), 30.0))
    return 200, [("Content-Type", "text/plain")], b"slept"


@pytest.fixture(scope="module")
def http_server() -> Iterator[LocalServer]:
    app = ScriptedApp(default=ScriptedApp.status(404, b"not here"))
    app.route("/", ScriptedApp.status(200, b"up"))
    app.route("/ok", ScriptedApp.status(200, b"ok"))
    app.route("/slow", _slow)
    with LocalServer(app) as server:
        yield server


class TestHTTPConformance(ConnectorConformance):
    connector_class = HTTPConnector
    secret_marker = MARKER

    @pytest.fixture(autouse=True)
    def _server(self, http_server: LocalServer) -> None:
        parts = urllib.parse.urlsplit(http_server.url)
        self.url = f"http://conformance:{MARKER}@{parts.netloc}/"

    def make_config(self) -> BaseConfig:
        return HTTPConfig.from_url(
            self.url, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01), timeout=60
        )

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(base_url=f"http://127.0.0.1:{closed_port()}/")

    def operation(self, connector: HTTPConnector) -> object:
        return connector.get("/ok").content

    def slow_operation(self, connector: HTTPConnector, seconds: float) -> object:
        return connector.get("/slow", params={"seconds": str(seconds)}).content

    def failing_operation(self, connector: HTTPConnector) -> object:
        return connector.get("/missing")
