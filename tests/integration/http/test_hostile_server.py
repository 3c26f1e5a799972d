"""A hostile server: HTTP, GraphQL and SOAP only ever raise ConnectorErrors (issue #8).

A raw TCP server on 127.0.0.1 answers every request with a scripted or
fuzzed reply: broken status lines, malformed and huge headers, truncated
and oversized bodies, invalid UTF-8, huge nesting, resets (RST) at random
points. Whatever it does, each public call returns or raises a
``ConnectorError``; afterwards no operation is left counted in flight and
the connector still works against a sane answer.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy

pytestmark = pytest.mark.integration

NO_WAIT = RetryPolicy(max_attempts=2, initial_backoff=0, max_backoff=0, deadline=10)
DEEP = b"[" * 100_000 + b"]" * 100_000
SEED = 8
FUZZ_ROUNDS = 60

Reply = Callable[[socket.socket], None]


def _rst(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def send(data: bytes, *, reset: bool = False) -> Reply:
    """Write ``data``, then close (FIN) or reset (RST)."""

    def reply(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(data)
        if reset:
            _rst(conn)

    return reply


def response(
    status: bytes = b"200 OK",
    headers: list[bytes] | None = None,
    body: bytes = b"",
    *,
    length: int | None = None,
) -> bytes:
    lines = [b"HTTP/1.1 " + status]
    lines += headers if headers is not None else [b"Content-Type: application/json"]
    lines.append(b"Content-Length: %d" % (len(body) if length is None else length))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


SCRIPTED: dict[str, Reply] = {
    "close-at-once": send(b""),
    "reset-at-once": send(b"", reset=True),
    "garbage-status": send(b"FOO BAR\r\n\r\n"),
    "non-numeric-status": send(b"HTTP/1.1 abc Nope\r\nContent-Length: 0\r\n\r\n"),
    "huge-status": send(b"HTTP/1.1 99999999999999999999 X\r\nContent-Length: 0\r\n\r\n"),
    "http-0.9": send(b"just bytes, no status line"),
    "half-status-reset": send(b"HTTP/1.1 20", reset=True),
    "header-no-colon": send(b"HTTP/1.1 200 OK\r\nno colon here\r\nContent-Length: 2\r\n\r\n{}"),
    "huge-header": send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n"),
    "many-headers": send(
        b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(2000)) + b"\r\n"
    ),
    "negative-length": send(response(length=-1, body=b"{}")),
    "huge-length": send(response(body=b"{}", length=10**20)),
    "two-lengths": send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}"),
    "truncated-body": send(response(body=b'{"a": 1', length=1000)),
    "truncated-body-reset": send(response(body=b'{"a": 1', length=1000), reset=True),
    "bad-chunk-size": send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n"),
    "chunked-truncated": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", reset=True
    ),
    "oversized": send(response(body=b"x" * 300_000)),
    "oversized-chunked": send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"10000\r\n" + b"y" * 0x10000 + b"\r\n" for _ in range(6))
        + b"0\r\n\r\n"
    ),
    "invalid-utf8-json": send(response(body=b'{"a": "\xff\xfe\xc3"}')),
    "invalid-utf8-text": send(
        response(b"200 OK", [b"Content-Type: text/plain; charset=utf-8"], b"\xff\xc3(")
    ),
    "bad-charset": send(
        response(b"200 OK", [b"Content-Type: text/plain; charset=no-such-\xff"], b"hi")
    ),
    **{
        f"charset-{name}": send(
            response(b"200 OK", [b"Content-Type: text/plain; charset=" + name], b"\xff{}\r\n")
        )
        for name in (b"base64", b"zlib", b"idna", b"punycode")
    },
    "deep-json": send(response(body=DEEP)),
    "deep-xml": send(
        response(b"200 OK", [b"Content-Type: text/xml"], b"<a>" * 50_000 + b"</a>" * 50_000)
    ),
    "bad-gzip": send(response(b"200 OK", [b"Content-Encoding: gzip"], b"not gzip at all")),
    "gzip-bomb": send(
        response(b"200 OK", [b"Content-Encoding: gzip"], gzip.compress(b"0" * 5_000_000))
    ),
    "retry-after-huge": send(response(b"429 Too Many", [b"Retry-After: " + b"9" * 400], b"")),
    "retry-after-junk": send(response(b"503 Busy", [b"Retry-After: \xff\xfe soon"], b"")),
    "redirect-garbage": send(response(b"302 Found", [b"Location: \x00javascript:\xff"], b"")),
    "redirect-no-location": send(response(b"301 Moved", [], b"")),
    "redirect-loop": send(response(b"307 Again", [b"Location: /again"], b"")),
    "status-1xx-forever": send(b"HTTP/1.1 100 Continue\r\n\r\n" * 50),
    "graphql-errors-not-list": send(response(body=_json({"errors": "boom"}))),
    "graphql-data-list": send(response(body=_json({"data": [1, 2]}))),
    "graphql-retry-after": send(
        response(
            b"429 Slow",
            body=b'{"errors":[{"message":"x","extensions":{"code":"THROTTLED","retryAfter":'
            + b"9" * 400
            + b"}}]}",
        )
    ),
    "graphql-nan": send(response(body=b'{"data": {"x": NaN}, "errors": [{"message": 1}]}')),
    "graphql-deep-errors": send(
        response(body=b'{"errors":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
    ),
    "soap-not-xml": send(response(b"200 OK", [b"Content-Type: text/xml"], b"<<<not xml")),
    "soap-fault-garbage": send(
        response(
            b"500 Internal Server Error",
            [b"Content-Type: text/xml"],
            b"<Envelope><Body><Fault>\xff\xfe</Fault></Body></Envelope>",
        )
    ),
    "soap-empty-envelope": send(
        response(
            b"200 OK",
            [b"Content-Type: text/xml"],
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/>'
            b"</e:Envelope>",
        )
    ),
}


def fuzzed(rng: random.Random) -> Reply:
    """A plausible response, then mutated: cut, bytes flipped, junk headers, reset."""
    body = rng.choice([b'{"data": {"hello": "hi"}}', b'{"ok": true}', b"<x/>", b"line\n" * 20])
    headers = [b"Content-Type: " + rng.choice([b"application/json", b"text/xml", b"text/plain"])]
    if rng.random() < 0.3:
        headers.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))))
    status = rng.choice([b"200 OK", b"201 Created", b"404 Nope", b"500 Err", b"503 Busy"])
    data = bytearray(response(status, headers, body))
    for _ in range(rng.randrange(4)):
        if data:
            data[rng.randrange(len(data))] = rng.randrange(256)
    if rng.random() < 0.5:
        data = data[: rng.randrange(len(data) + 1)]
    return send(bytes(data), reset=rng.random() < 0.5)


class HostileServer:
    """A raw TCP server on 127.0.0.1: each request gets ``self.reply`` (one per connection).

    A ``GET`` of a path ending in ``?wsdl`` gets ``self.wsdl`` instead (so a
    SOAP client can load its service description), and ``self.reply = None``
    answers a sane ``200`` with ``self.sane_body``.
    """

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.reply: Reply | None = None
        self.wsdl = b""
        self.sane_body = b'{"data": {"hello": "hi"}}'
        self.sane_type = b"application/json"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                head += chunk
            head, _, body = head.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            request_line = head.split(b"\r\n", 1)[0]
            if request_line.startswith(b"GET ") and b"?wsdl" in request_line:
                conn.sendall(response(b"200 OK", [b"Content-Type: text/xml"], self.wsdl))
            elif self.reply is None:
                conn.sendall(
                    response(b"200 OK", [b"Content-Type: " + self.sane_type], self.sane_body)
                )
            else:
                self.reply(conn)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                conn.close()


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileServer]:
    with HostileServer() as server:
        yield server


def _config(server: HostileServer, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": server.url,
        "retry": NO_WAIT,
        "timeout": 5,
        "max_response_bytes": 256 * 1024,
        "max_redirects": 3,
        **extra,
    }


def _replies() -> list[tuple[str, Reply]]:
    rng = random.Random(SEED)
    return [*SCRIPTED.items(), *((f"fuzz-{i}", fuzzed(rng)) for i in range(FUZZ_ROUNDS))]


def _only_connector_errors(name: str, action: Callable[[], object]) -> None:
    try:
        action()
    except ConnectorError:
        pass
    except Exception as exc:  # the property: nothing else may escape
        raise AssertionError(f"{name}: {type(exc).__name__} escaped: {exc!r:.300}") from exc


def _assert_idle(connector: Any) -> None:
    assert connector.stats().in_flight == 0
    assert connector._inflight == 0


def test_http_survives_a_hostile_server(hostile: HostileServer) -> None:
    def consume(method: str, **kwargs: Any) -> Callable[[], object]:
        def run() -> object:
            result = api.request(method, "/x", **kwargs)
            result.text  # noqa: B018 - decoding must not raise either
            try:
                return result.json()
            finally:
                list(result.iter_lines())

        return run

    def streamed() -> None:
        with api.stream("GET", "/s") as result:
            for _ in result.iter_lines():
                pass

    with HTTPConnector(HTTPConfig(**_config(hostile))) as api:
        for name, reply in _replies():
            hostile.reply = reply
            _only_connector_errors(name, consume("GET"))
            _only_connector_errors(name, consume("POST", json={"a": 1}))
            _only_connector_errors(name, streamed)
            _only_connector_errors(name, lambda: api.ping())
            _assert_idle(api)
        hostile.reply = None
        assert api.get("/ok").json() == {"data": {"hello": "hi"}}
        _assert_idle(api)


def test_graphql_survives_a_hostile_server(hostile: HostileServer) -> None:
    pytest.importorskip("graphql")
    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector

    config = GraphQLConfig(**_config(hostile, base_url=hostile.url + "/graphql"))
    with GraphQLConnector(config) as gql:
        for name, reply in _replies():
            hostile.reply = reply
            _only_connector_errors(name, lambda: gql.query("{ hello }"))
            _only_connector_errors(name, lambda: gql.mutation("mutation { increment }"))
            _only_connector_errors(name, lambda: list(gql.pages("{ items }", path="items")))
            _assert_idle(gql)
            _assert_idle(gql._handle)
        hostile.reply = None
        assert gql.query("{ hello }") == {"hello": "hi"}
        _assert_idle(gql)


def test_soap_survives_a_hostile_server(hostile: HostileServer) -> None:
    pytest.importorskip("zeep")
    from dictamesh_connectors.soap import SOAPClient

    from ..soap.server import build_wsdl

    hostile.wsdl = build_wsdl(hostile.url + "/soap11", hostile.url + "/soap12").encode()
    with HTTPConnector(HTTPConfig(**_config(hostile))) as http:
        soap = SOAPClient(http, hostile.url + "/calculator?wsdl")
        for name, reply in _replies():
            hostile.reply = reply
            _only_connector_errors(name, lambda: soap.call("Add", 1, 2))
            _only_connector_errors(name, lambda: soap.call("WhoAmI", idempotent=True))
            _assert_idle(http)
        hostile.reply = None
        hostile.sane_type = b"text/xml; charset=utf-8"
        hostile.sane_body = (
            b'<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="'
            b'http://schemas.xmlsoap.org/soap/envelope/" xmlns:tns="urn:dictamesh:test:calculator">'
            b"<env:Body><tns:AddResponse><tns:result>3</tns:result></tns:AddResponse>"
            b"</env:Body></env:Envelope>"
        )
        assert soap.call("Add", 1, 2) == 3
        _assert_idle(http)
