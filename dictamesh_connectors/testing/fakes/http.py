"""``FakeHTTP``: the real ``HTTPConnector`` with an in-memory server behind it.

Only the transport is fake. ``FakeHTTP`` is an ``HTTPConnector`` whose
handle answers each request from programmed routes instead of a socket;
everything above the transport is the real code: building headers and
bodies, auth, Idempotency-Keys, the retry loop and its policy, redirects,
``Response``, and the status table of ``http/errors.py`` (a route answering
503 raises the same ``HTTPStatusError``, UNAVAILABLE, retried the same way).

Operation names for ``fail_next`` / ``set_latency`` are the lower-case HTTP
methods (``"get"``, ``"post"``, ...: a request through ``get()``,
``request("GET", ...)``, ``stream("GET", ...)`` or ``paginate()`` alike),
plus ``"connect"`` and ``"ping"``. A fault is checked once per attempt, so
a programmed UNAVAILABLE on an idempotent request is retried like a real one.
A request through ``session()`` is checked too, and meets its fault as a
real ``requests`` session would (``session_fault``): a ``requests``
exception or the status a server gives for the code, never a
``ConnectorError`` the real session cannot raise.

``ping()`` sends the real health check (``health_method`` on
``health_path``); with no route programmed for it the fake answers 200.
Any other request no route matches raises ``InvalidRequestError`` (code
INVALID_REQUEST, ``details["unmatched"]``), never a fake 404: adapter code
that treats 404 as "not there" must not swallow a route the test forgot.
"""

from __future__ import annotations

import http
import io
import json as jsonlib
import math
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import requests
from urllib3 import BaseHTTPResponse, HTTPHeaderDict, HTTPResponse, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    DecodeError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from dictamesh_connectors import _fork
from dictamesh_connectors.config import redact_url
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.http.config import HTTPConfig, is_sensitive_header
from dictamesh_connectors.http.connector import HTTPConnector
from dictamesh_connectors.http.errors import InvalidRequestError, invalid_request
from dictamesh_connectors.http.transport import Transport
from dictamesh_connectors.testing.fakes._faults import FaultInjection, FaultPlan, fault_operations

__all__ = ["DEFAULT_BASE_URL", "FakeHTTP", "RecordedRequest", "Reply", "Route", "session_fault"]

# The method names a fault may name besides the fake's own methods: a
# request's fault is checked under its method in lower case (another
# method, say PROPFIND, is reached with "*").
_HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options", "trace")

DEFAULT_BASE_URL = "http://fake.test"
"""The base URL of a ``FakeHTTP()`` built without a config (a reserved name: never resolvable)."""

_NO_JSON = object()


@attrs.frozen
class Reply:
    """What a route answers: status, headers and a body (or a JSON value).

    ``Content-Length`` is added unless given; with ``json`` the body is the
    JSON text and ``Content-Type`` defaults to ``application/json``.

    Example::

        fake.add("GET", "/users/1", lambda request: Reply(200, json={"id": 1}))
    """

    status: int = 200
    json: Any = attrs.field(default=_NO_JSON, kw_only=True)
    body: bytes | str = attrs.field(default=b"", kw_only=True)
    headers: Mapping[str, str] = attrs.field(factory=dict, kw_only=True)
    reason: str | None = attrs.field(default=None, kw_only=True)

    def _raw(self, method: str) -> BaseHTTPResponse:
        """The urllib3 response the connector reads (body unread, like a socket's)."""
        headers = HTTPHeaderDict(dict(self.headers))
        body = self.body.encode("utf-8") if isinstance(self.body, str) else bytes(self.body)
        if self.json is not _NO_JSON:
            body = jsonlib.dumps(self.json).encode("utf-8")
            if "Content-Type" not in headers:
                headers["Content-Type"] = "application/json"
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            headers["Content-Length"] = str(len(body))
        if method == "HEAD":
            body = b""
        reason = self.reason
        if reason is None:
            try:
                reason = http.HTTPStatus(self.status).phrase
            except ValueError:
                reason = ""
        return HTTPResponse(
            body=io.BytesIO(body),
            headers=headers,
            status=self.status,
            reason=reason,
            preload_content=False,
            decode_content=False,
            request_method=method,
        )


@attrs.frozen
class RecordedRequest:
    """One request the fake received, with credentials masked.

    Attributes:
        method: The HTTP method (upper case).
        url: The full URL; secret query parameters (API keys...) as ``***``.
        headers: The headers sent; credential-looking ones (``Authorization``,
            ``X-API-Key``, cookies, ``sensitive_headers``) as ``***``.
        body: The body as bytes (``b""`` without one).
    """

    method: str
    url: str
    headers: Mapping[str, str] = attrs.field(repr=False)
    body: bytes = attrs.field(repr=False)

    @property
    def path(self) -> str:
        """The URL's path."""
        return urllib.parse.urlsplit(self.url).path

    @property
    def params(self) -> dict[str, list[str]]:
        """The query parameters (every value of each name)."""
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.url).query, keep_blank_values=True)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: The body is not JSON.
        """
        return jsonlib.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (case-insensitive), or ``None``."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return None


Responder = Callable[[RecordedRequest], Reply]
"""A callable route: receives the (masked) request, returns the ``Reply``."""


class Route:
    """A programmed route: which requests it matches, what it answers, how often.

    Attributes:
        method: Upper-case method, or ``"*"`` for any.
        calls: How many requests it answered.
    """

    def __init__(
        self,
        method: str,
        url: str | None,
        pattern: re.Pattern[str] | None,
        answer: Reply | Responder,
        times: int | None,
    ) -> None:
        self.method = method
        self._url = url
        self._pattern = pattern
        self._answer = answer
        self._left = times  # guarded by the fake's routes lock
        self.calls = 0  # guarded by the fake's routes lock

    def _matches(self, method: str, url: str) -> bool:
        if self.method != "*" and self.method != method:
            return False
        if self._pattern is not None:
            return self._pattern.search(url) is not None
        target = self._url or ""
        if "?" not in target:
            url = url.split("?", 1)[0]
        return url.split("#", 1)[0] == target

    def __repr__(self) -> str:
        where = self._pattern.pattern if self._pattern is not None else self._url
        return f"<Route {self.method} {where!r} calls={self.calls}>"


class _MemoryTransport(Transport):
    """The fake's handle: a ``Transport`` whose every request is answered in memory.

    ``urlopen`` serves the connector, ``send`` the ``requests`` sessions of
    ``session()``; neither opens a socket.
    """

    def __init__(self, fake: FakeHTTP) -> None:
        super().__init__(fake.config, verify=False, cert=None, base_url=fake.base_url)
        self._fake = fake

    def urlopen(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> BaseHTTPResponse:
        """Answer one request from the fake's routes (the body is left unread)."""
        return self._fake._answer(method, url, headers, body)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Answer a ``requests`` session's request (``session()``) from the routes.

        The fault plan applies, under the method's lower-case name (see
        ``session_fault``): a programmed fault arrives as what a real
        session would get for it.
        """
        method = str(request.method or "GET")
        try:
            self._fake._faults.check(method.lower())
        except ConnectorError as err:
            reply = session_fault(err, request)  # raises the requests exception, or:
            return self.build_response(request, reply._raw(method))
        raw = self.urlopen(
            method,
            str(request.url or ""),
            dict(request.headers or {}),
            request.body,
            Timeout(),
        )
        return self.build_response(request, raw)


# What a server answers for an injected code, on a session (the status table of
# http/errors.py read backwards).
_SESSION_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.AUTH_FAILED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.INVALID_INPUT: 422,
    ErrorCode.LOCK_TIMEOUT: 423,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNSUPPORTED: 501,
    ErrorCode.UNAVAILABLE: 503,
}


def session_fault(err: ConnectorError, request: requests.PreparedRequest) -> Reply:
    """What a ``requests`` session gets for the injected error ``err``.

    A session sees the network and the server, not ``ConnectorError``: a
    transport code is raised as the ``requests`` exception a real socket
    gives (translated by the connector's table, it is ``err.code`` again),
    a code a server status gives is answered with that status (its body the
    error's message; ``Retry-After`` from ``retry_after``), so adapter code
    on ``session()`` (zeep...) meets the fault as it would meet the real one:

    ==================  ==================================================
    TIMEOUT             ``requests.ConnectTimeout`` (``ReadTimeout`` with
                        ``maybe_applied``)
    CONNECTION_FAILED   ``requests.ConnectionError`` (connection refused)
    CONNECTION_LOST     ``requests.ConnectionError`` (connection reset)
    PROTOCOL_ERROR      ``requests.exceptions.ContentDecodingError``
    UNAVAILABLE         503 (502 with ``maybe_applied``)
    RATE_LIMITED ...    429, and each code of the status table its status
    ==================  ==================================================

    Any other code has no session equivalent: the ``ConnectorError`` itself
    is raised.

    Raises:
        requests.RequestException: A transport fault.
        ConnectorError: A code no server or socket gives.
    """
    code = err.code
    message = str(err)
    if code is ErrorCode.TIMEOUT:
        if err.maybe_applied:
            raise requests.exceptions.ReadTimeout(
                ReadTimeoutError(None, str(request.url or ""), message),  # type: ignore[arg-type]
                request=request,
            ) from err
        raise requests.exceptions.ConnectTimeout(
            ConnectTimeoutError(message), request=request
        ) from err
    if code is ErrorCode.CONNECTION_FAILED:
        refused = NewConnectionError(None, f"{message}: [Errno 111] Connection refused")  # type: ignore[arg-type]
        raise requests.exceptions.ConnectionError(refused, request=request) from err
    if code is ErrorCode.CONNECTION_LOST:
        reset = ProtocolError(
            "Connection aborted.", ConnectionResetError(104, f"{message}: Connection reset by peer")
        )
        raise requests.exceptions.ConnectionError(reset, request=request) from err
    if code is ErrorCode.PROTOCOL_ERROR:
        raise requests.exceptions.ContentDecodingError(
            DecodeError(message), request=request
        ) from err
    status = _SESSION_STATUS.get(code)
    if status is None:
        raise err
    if code is ErrorCode.UNAVAILABLE and err.maybe_applied:
        status = 502
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(err.retry_after)))
    return Reply(status, body=message, headers=headers)


class FakeHTTP(FaultInjection, HTTPConnector):
    """An ``HTTPConnector`` answering from programmed routes: no server, same behaviour.

    Thread safety: as ``HTTPConnector``; routes may be added and requests
    inspected from any thread while others send. Responders run in the
    sending thread, without any lock held.

    Example::

        from dictamesh_connectors.testing.fakes import FakeHTTP

        with FakeHTTP() as api:
            api.add("GET", "/users/1", json={"id": 1, "name": "Ada"})
            api.add("POST", "/users", status=201, json={"id": 2})
            assert api.get("/users/1").json()["name"] == "Ada"
            api.post("/users", json={"name": "Grace"})
            assert api.requests[-1].json() == {"name": "Grace"}

    Args:
        config: An ``HTTPConfig``, a base URL, or ``None`` for
            ``HTTPConfig(base_url="http://fake.test")``.
        sleep, clock, rand: As ``HTTPConnector`` (pass a fake ``sleep`` to
            make retry backoffs instant).

    Raises:
        InvalidConfigError: ``config`` is invalid.
    """

    def __init__(
        self,
        config: HTTPConfig | str | None = None,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if config is None:
            config = HTTPConfig(base_url=DEFAULT_BASE_URL)
        elif isinstance(config, str):
            config = HTTPConfig(base_url=config)
        super().__init__(config, sleep=sleep, clock=clock, rand=rand)
        self._faults = FaultPlan(
            self.name,
            classes={ErrorCode.INVALID_REQUEST: InvalidRequestError},
            # request(method, ...) checks the method's name, in lower case.
            operations=fault_operations(type(self), *_HTTP_METHODS),
        )
        # Guards _routes and _requests (and each Route's counters); never
        # held while a responder runs.
        self._routes_lock = _fork.create_lock()
        self._routes: list[Route] = []  # guarded by _routes_lock
        self._requests: list[RecordedRequest] = []  # guarded by _routes_lock
        self._pinging = threading.local()

    # ------------------------------------------------------------ programming

    def add(
        self,
        method: str,
        path: str | re.Pattern[str],
        responder: Responder | None = None,
        *,
        status: int = 200,
        json: Any = _NO_JSON,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        times: int | None = None,
    ) -> Route:
        """Program a route: requests for ``method`` and ``path`` get this answer.

        Routes are tried in the order they were added; a route with
        ``times`` answers that many requests and is then used up, so
        ``add("GET", "/x", status=503, times=1)`` then ``add("GET", "/x")``
        answers one 503 (retried by the connector) and then 200s.

        Args:
            method: The HTTP method, or ``"*"`` for any.
            path: A path as passed to ``get()`` (joined to ``base_url``; an
                absolute URL works too), matched without the query string
                unless it has one; or a compiled regex, searched in the full
                URL (query included).
            responder: A callable computing the ``Reply`` from the
                ``RecordedRequest`` (it may also raise what a real transport
                raises, e.g. ``ConnectionResetError``, which the real error
                table then translates). Replaces ``status``/``json``/``body``.
            status: The status code.
            json: A JSON value for the body.
            body: The raw body (``str`` is sent as UTF-8).
            headers: Response headers.
            times: How many requests it answers (``None``: any number).

        Returns:
            The ``Route`` (its ``calls`` counts the requests it answered).

        Raises:
            InvalidRequestError: ``path`` is not a valid path for this
                connector, or ``times`` is below 1.
            TypeError: Arguments of the wrong type.
        """
        if not isinstance(method, str):
            raise TypeError(f"method must be a str, got {type(method).__name__}")
        if times is not None and (isinstance(times, bool) or not isinstance(times, int)):
            raise TypeError("times must be an int or None")
        if times is not None and times < 1:
            raise invalid_request("fake http: times must be at least 1", connector=self.name)
        answer: Reply | Responder
        if responder is not None:
            if not callable(responder):
                raise TypeError("responder must be callable")
            answer = responder
        else:
            answer = Reply(status, json=json, body=body, headers=dict(headers or {}))
        verb = "*" if method == "*" else self._check_method(method)
        if isinstance(path, re.Pattern):
            route = Route(verb, None, path, answer, times)
        elif isinstance(path, str):
            route = Route(verb, self._resolve(path, None, verb), None, answer, times)
        else:
            raise TypeError(f"path must be a str or a compiled regex, got {type(path).__name__}")
        with self._routes_lock:  # routes
            self._routes.append(route)
        return route

    @property
    def routes(self) -> list[Route]:
        """The routes still in use, in matching order."""
        with self._routes_lock:  # routes
            return list(self._routes)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (retries and redirects included)."""
        with self._routes_lock:  # request record
            return list(self._requests)

    def reset(self) -> None:
        """Forget every route, recorded request, fault and latency."""
        with self._routes_lock:  # routes, request record
            self._routes.clear()
            self._requests.clear()
        self._faults.clear()

    # ------------------------------------------------------------------ hooks

    def _open(self) -> Transport:
        self._faults.check("connect")
        return _MemoryTransport(self)

    def _ping(self, handle: Transport, timeout: float | None) -> None:
        self._pinging.active = True
        try:
            super()._ping(handle, timeout)
        finally:
            self._pinging.active = False

    def _perform(self, transport: Transport, call: Any) -> Any:
        # One attempt of a request: where the real one would open a socket.
        pinging = getattr(self._pinging, "active", False)
        self._faults.check("ping" if pinging else call.method.lower())
        return super()._perform(transport, call)

    # ------------------------------------------------------------- the server

    def _answer(
        self, method: str, url: str, headers: Mapping[str, str], body: Any
    ) -> BaseHTTPResponse:
        """Record the request, find its route and build the raw response."""
        marked = self.config.sensitive_headers
        keep = self.config.idempotency_header.lower()
        recorded = RecordedRequest(
            method,
            redact_url(url, self._secret_params),
            {
                name: "***" if is_sensitive_header(name, marked, keep=keep) else value
                for name, value in headers.items()
            },
            _read_body(body),
        )
        with self._routes_lock:  # request record, routes and their counters
            self._requests.append(recorded)
            route = self._match(method, url)
        if route is None and getattr(self._pinging, "active", False):
            return Reply(200)._raw(method)  # a fake server is up unless told otherwise
        if route is None:
            err = invalid_request(
                f"{self.name}: {method} {recorded.url}: no route programmed on the fake "
                f"(fake.add({method!r}, {recorded.path!r}, ...))",
                connector=self.name,
            )
            err.details["unmatched"] = True
            raise err
        answer = route._answer
        reply = answer if isinstance(answer, Reply) else answer(recorded)  # no lock held
        if not isinstance(reply, Reply):
            raise TypeError(f"a responder must return a Reply, got {type(reply).__name__}")
        return reply._raw(method)

    def _match(self, method: str, url: str) -> Route | None:
        """The first route for this request, its use counted (called with the lock held)."""
        for index, route in enumerate(self._routes):
            if route._matches(method, url):
                route.calls += 1
                if route._left is not None:
                    route._left -= 1
                    if route._left <= 0:
                        del self._routes[index]
                return route
        return None


def _read_body(body: Any) -> bytes:
    """The whole request body as bytes (a file or an iterator is consumed, as a socket would)."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, bytearray | memoryview):
        return bytes(body)
    read = getattr(body, "read", None)
    if read is not None:
        data = read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if isinstance(body, Iterable):
        return b"".join(
            chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk) for chunk in body
        )
    return bytes(body)
