"""The secret scan across every auth scheme and every failure path (issue #8).

For basic, bearer, API key (header and query) and OAuth2 credentials, each
failure path (refused, reset mid-body, 500, 401, a TLS record broken after
the request ran, a read timeout, a cross-origin redirect, header text that
cannot be sent, hostile JSON, ``session()``) is run against real local
servers and ``tests/secretscan.py`` looks at everything observable: the
error chain and its attributes, the traceback, the pickle, DEBUG logs of
every logger, the connector's and config's reprs. The marker secret is in
none of it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy
from tests.secretscan import SecretScan

from .servers import LocalServer, ScriptedApp, corrupt_tls_after, server_tls_context, tls_files

pytestmark = pytest.mark.integration

MARKER = "MARKER-Scan-Secret-8"
FAST = RetryPolicy(max_attempts=2, initial_backoff=0.0, max_backoff=0.0, jitter=False)


def _credentials(scheme: str, token_url: str) -> dict[str, Any]:
    return {
        "basic": {"username": "user", "password": MARKER},
        "bearer": {"token": MARKER},
        "apikey-header": {"api_key": MARKER, "api_key_name": "X-Api-Key"},
        "apikey-query": {"api_key": MARKER, "api_key_name": "key", "api_key_in": "query"},
        "oauth2": {"token_url": token_url, "client_id": "app", "client_secret": MARKER},
    }[scheme]


SCHEMES = ["basic", "bearer", "apikey-header", "apikey-query", "oauth2"]


def _token(environ: dict[str, Any]) -> Any:
    body = {"access_token": MARKER + "-access", "token_type": "Bearer", "expires_in": 3600}
    return 200, [("Content-Type", "application/json")], json.dumps(body).encode()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return tls_files(tmp_path_factory.mktemp("tls-scan"))


@pytest.fixture(scope="module")
def servers(tls: Any) -> Iterator[dict[str, Any]]:
    foreign = ScriptedApp(ScriptedApp.status(500, b"foreign"))
    app = ScriptedApp()
    app.route("/token", _token)
    app.route("/500", ScriptedApp.status(500, b"boom"))
    app.route("/401", ScriptedApp.status(401, b"no", [("WWW-Authenticate", "Bearer")]))
    app.route("/reset", ScriptedApp.reset_mid_body())
    app.route("/slow", ScriptedApp.slow(1.0))
    app.route("/deep", ScriptedApp.status(200, b"[" * 100_000 + b"]" * 100_000))
    tls_app = ScriptedApp()
    tls_app.route("/token", _token)
    with (
        LocalServer(foreign) as foreign_srv,
        LocalServer(app) as srv,
        LocalServer(
            corrupt_tls_after(
                tls_app, lambda e: e["REQUEST_METHOD"] == "POST" and e["PATH_INFO"] != "/token"
            ),
            tls=server_tls_context(tls),
        ) as tls_srv,
    ):
        app.route("/away", ScriptedApp.redirect(foreign_srv.url + "/x", code=307))
        yield {"plain": srv, "tls": tls_srv}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _connector(scheme: str, base_url: str, token_base: str, **extra: Any) -> HTTPConnector:
    config = HTTPConfig(
        base_url=base_url,
        credentials=_credentials(scheme, token_base + "/token"),
        retry=FAST,
        **extra,
    )
    connector = HTTPConnector(config)
    connector.connect()
    return connector


FAILURES: dict[str, Callable[[HTTPConnector], object]] = {
    "500": lambda api: api.get("/500"),
    "401": lambda api: api.get("/401"),
    "post-500": lambda api: api.post("/500", json={"a": 1}),
    "reset-mid-body": lambda api: api.get("/reset"),
    "read-timeout": lambda api: api.get("/slow", timeout=0.2),
    "cross-origin-redirect": lambda api: api.post("/away", json={}),
    "header-text": lambda api: api.get("/x", headers={"X-Note": "caf\u00e9-\u20ac"}),
    "deep-json": lambda api: api.get("/deep").json(),
    "bad-timeout": lambda api: api.get("/x", timeout=float("nan")),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_secret_in_any_failure(servers: dict[str, Any], scheme: str, failure: str) -> None:
    base = servers["plain"].url
    api = _connector(scheme, base, base)
    try:
        with SecretScan() as scan, pytest.raises(ConnectorError) as info:
            FAILURES[failure](api)
        scan.assert_clean(MARKER, info.value, texts=[repr(api), repr(api.config), str(api.config)])
    finally:
        api.disconnect()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_secret_when_refused(servers: dict[str, Any], scheme: str) -> None:
    port = _free_port()
    api = _connector(scheme, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    try:
        with SecretScan() as scan, pytest.raises(ConnectorError) as info:
            api.post("/x", json={})
        scan.assert_clean(MARKER, info.value, texts=[repr(api)])
        session = api.session()
        # requests' own exceptions (an OAuth2 token fetch that fails is a ConnectorError)
        with (
            SecretScan() as scan,
            pytest.raises((requests.RequestException, ConnectorError)) as raw,
        ):
            session.get(f"http://127.0.0.1:{port}/x")
        scan.assert_clean(MARKER, raw.value)
    finally:
        api.disconnect()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_secret_when_tls_breaks_after_the_request(
    servers: dict[str, Any], tls: Any, scheme: str
) -> None:
    srv = servers["tls"]
    api = _connector(scheme, srv.url, srv.url, ca_bundle=tls.ca_pem)
    try:
        with SecretScan() as scan, pytest.raises(ConnectorError) as info:
            api.post("/pay", json={})
        assert info.value.maybe_applied
        scan.assert_clean(MARKER, info.value, texts=[repr(api)])
    finally:
        api.disconnect()
