"""FakeHTTP against the real HTTPConnector on a real local HTTP server: one set of tests.

Each test programs the same routes on a ``Backend``: for the fake they go to
``FakeHTTP.add``; for the real connector a WSGI app serves them from a
threaded HTTP/1.1 server on 127.0.0.1 (``tests/integration/http/servers.py``),
over real sockets. The assertions (responses, error classes and codes,
retries and their waits, what the server received) are the same for both.

Deliberately different, and so not here: a request no route matches (the
fake raises INVALID_REQUEST, a server answers what it answers).
"""

from __future__ import annotations

import http
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, NotConnectedError
from dictamesh_connectors.http import (
    HTTPAuthenticationError,
    HTTPConfig,
    HTTPConnector,
    HTTPStatusError,
    LinkHeader,
)
from dictamesh_connectors.testing.fakes import FakeHTTP
from tests.integration.http.servers import LocalServer

pytestmark = pytest.mark.integration


class RouteApp:
    """A WSGI app answering from routes programmed like ``FakeHTTP.add`` (first match wins)."""

    def __init__(self) -> None:
        self.routes: list[list[Any]] = []  # [method, path, status, body, headers, times left]
        self.seen: list[tuple[str, str, bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read()
        method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        with self._lock:
            self.seen.append((method, path, body, headers))
            for route in self.routes:
                if route[0] in ("*", method) and route[1] == path:
                    if route[5] is not None:
                        route[5] -= 1
                        if route[5] == 0:
                            self.routes.remove(route)
                    break
            else:
                route = ["*", path, 418, b"unprogrammed", {}, None]
        status, payload, extra = route[2], route[3], route[4]
        start_response(
            f"{status} {http.HTTPStatus(status).phrase}",
            [*extra.items(), ("Content-Length", str(len(payload)))],
        )
        return [payload] if method != "HEAD" else []


class Backend:
    """One side of the comparison: a connected connector plus a way to program routes."""

    def __init__(self, kind: str, sleeps: list[float]) -> None:
        self.kind = kind
        self.app = RouteApp()
        self.server: LocalServer | None = None
        if kind == "fake":
            self.api: Any = FakeHTTP(sleep=sleeps.append, rand=lambda: 1.0)
        else:
            self.server = LocalServer(self.app).start()
            config = HTTPConfig(base_url=self.server.url)
            self.api = HTTPConnector(config, sleep=sleeps.append, rand=lambda: 1.0)

    @property
    def base(self) -> str:
        return self.api.base_url

    def add(
        self,
        method: str,
        path: str,
        status: int = 200,
        *,
        json_body: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        times: int | None = None,
    ) -> None:
        headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        if self.kind == "fake":
            self.api.add(method, path, status=status, body=body, headers=headers, times=times)
        else:
            self.app.routes.append([method, path, status, body, headers, times])

    def received(self) -> list[tuple[str, str, bytes]]:
        """(method, path, body) of every request that reached the server."""
        if self.kind == "fake":
            return [(r.method, r.path, r.body) for r in self.api.requests]
        return [(m, p, b) for m, p, b, _ in self.app.seen]

    def header(self, index: int, name: str) -> str | None:
        if self.kind == "fake":
            return self.api.requests[index].header(name)
        return self.app.seen[index][3].get(name.lower())

    def close(self) -> None:
        self.api.disconnect()
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest, sleeps: list[float]) -> Iterator[Backend]:
    side = Backend(str(request.param), sleeps)
    side.api.connect()
    yield side
    side.close()


def test_json_round_trip_and_what_the_server_got(backend: Backend):
    backend.add("GET", "/users/1", json_body={"id": 1, "name": "Ada"})
    backend.add("POST", "/users", 201, json_body={"id": 2})
    response = backend.api.get("/users/1", params={"expand": "x"})
    assert (response.status_code, response.json()) == (200, {"id": 1, "name": "Ada"})
    assert response.headers["content-type"] == "application/json"
    created = backend.api.post("/users", json={"name": "Grace"}, idempotency_key="k-1")
    assert created.status_code == 201 and created.json() == {"id": 2}
    assert backend.received() == [
        ("GET", "/users/1", b""),
        ("POST", "/users", b'{"name":"Grace"}'),
    ]
    assert backend.header(1, "Content-Type") == "application/json"
    assert backend.header(1, "Idempotency-Key") == "k-1"
    assert backend.header(0, "User-Agent").startswith("dictamesh-connectors/")


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, HTTPStatusError, ErrorCode.INVALID_REQUEST),
        (401, HTTPAuthenticationError, ErrorCode.AUTH_FAILED),
        (403, HTTPStatusError, ErrorCode.PERMISSION_DENIED),
        (404, HTTPStatusError, ErrorCode.NOT_FOUND),
        (409, HTTPStatusError, ErrorCode.CONFLICT),
        (422, HTTPStatusError, ErrorCode.INVALID_INPUT),
    ],
)
def test_error_statuses(backend: Backend, status, cls, code):
    backend.add("GET", "/e", status, json_body={"error": "no"})
    with pytest.raises(cls) as info:
        backend.api.get("/e")
    err = info.value
    assert (err.code, err.status_code, err.transient) == (code, status, False)
    assert err.response.json() == {"error": "no"}
    phrase = http.HTTPStatus(status).phrase
    assert str(err) == f"http: GET {backend.base}/e: {status} {phrase}"
    assert err.response.reason == phrase
    assert len(backend.received()) == 1
    assert backend.api.get("/e", raise_for_status=False).status_code == status


def test_503_is_retried_with_the_policy(backend: Backend, sleeps):
    backend.add("GET", "/flaky", 503, times=2)
    backend.add("GET", "/flaky", body=b"ok")
    assert backend.api.get("/flaky").text == "ok"
    assert len(backend.received()) == 3 and len(sleeps) == 2


def test_retry_after_is_honoured_for_a_post(backend: Backend, sleeps):
    backend.add("POST", "/busy", 429, headers={"Retry-After": "1"}, times=1)
    backend.add("POST", "/busy", 201)
    assert backend.api.post("/busy", json={}).status_code == 201
    assert sleeps == [1.0]


def test_500_on_a_post_is_not_retried_on_a_get_it_is(backend: Backend):
    backend.add("*", "/five", 500)
    with pytest.raises(HTTPStatusError) as info:
        backend.api.post("/five", json={"a": 1})
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.maybe_applied
    assert len(backend.received()) == 1
    with pytest.raises(HTTPStatusError):
        backend.api.get("/five")
    assert len(backend.received()) == 4  # 3 attempts of the GET


def test_redirect_and_head(backend: Backend):
    backend.add("GET", "/old", 302, headers={"Location": "/new"})
    backend.add("GET", "/new", json_body="here")
    backend.add("HEAD", "/new", headers={"X-Thing": "1"})
    response = backend.api.get("/old")
    assert response.json() == "here" and response.url == backend.base + "/new"
    assert [r.status_code for r in response.history] == [302]
    head = backend.api.head("/new")
    assert head.status_code == 200 and head.body == b"" and head.headers["x-thing"] == "1"


def test_stream_download_and_pagination(backend: Backend, tmp_path):
    backend.add("GET", "/big", body=b"z" * 300_000)
    with backend.api.stream("GET", "/big") as response:
        assert sum(len(chunk) for chunk in response.iter_bytes()) == 300_000
    assert backend.api.download("/big", tmp_path / "big") == 300_000
    backend.add("GET", "/p1", json_body=[1], headers={"Link": f'<{backend.base}/p2>; rel="next"'})
    backend.add("GET", "/p2", json_body=[2])
    assert [page.json() for page in backend.api.paginate("/p1", LinkHeader())] == [[1], [2]]


@pytest.mark.parametrize("kind", ["fake", "real"])
def test_payload_too_large_and_not_connected(kind, sleeps):
    side = Backend(kind, sleeps)
    config = HTTPConfig(base_url=side.base, max_response_bytes=10)
    api = FakeHTTP(config) if kind == "fake" else HTTPConnector(config)
    with pytest.raises(NotConnectedError):
        api.get("/big")
    if kind == "fake":
        api.add("GET", "/big", body=b"x" * 11)
    else:
        side.app.routes.append(["GET", "/big", 200, b"x" * 11, {}, None])
    with api:
        with pytest.raises(ConnectorError) as info:
            api.get("/big")
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    with pytest.raises(NotConnectedError):
        api.get("/big")
    side.close()
