"""Real local HTTP(S) servers for integration tests (and the docs and benchmark).

Reusable by any test that needs a real server on 127.0.0.1 (the GraphQL and
SOAP tests import it). Nothing is mocked: these are real sockets, a real
HTTP/1.1 parser (``http.server``), real TLS (``ssl`` + ``trustme``).

* ``LocalServer(app, tls=None)``: a threaded HTTP/1.1 server (keep-alive,
  chunked request bodies) on ``127.0.0.1`` port 0 that runs any WSGI
  ``app``. Use it as a context manager; ``server.url`` is its base URL.
  Pass ``tls=server_tls_context(ca, require_client_cert=...)`` for HTTPS.
  The WSGI environ carries ``"dictamesh.socket"`` (the connection's socket,
  to misbehave on purpose) and ``"dictamesh.request_id"``.
* ``ScriptedApp``: a WSGI app with routes you add per test
  (``app.route("/x", handler)``), that records every request it sees
  (``app.requests``: method, path, query, headers, body, arrival time) and
  offers canned handlers: ``echo``, ``status``, ``sequence``, ``slow``,
  ``big``, ``reset_mid_body``, ``redirect``.
* ``OAuth2Server``: a token endpoint issuing short-lived bearer tokens (client
  credentials grant) plus ``bearer_required`` to protect routes with them.
* ``corrupt_tls_after(app)``: WSGI middleware that lets ``app`` process the
  request in full, then writes a corrupt TLS record instead of its answer
  (the client fails *after* its request was sent and run).
* ``tls_files(tmp_path)``: a trustme CA, server certificate and client
  certificate written to PEM files (``TLSFiles``).

Example::

    app = ScriptedApp()
    app.route("/hello", ScriptedApp.status(200, b"hi"))
    with LocalServer(app) as server:
        requests.get(server.url + "/hello")
        assert app.requests[0].path == "/hello"
"""

from __future__ import annotations

import base64
import collections
import email.utils
import http.server
import io
import itertools
import json
import os
import select
import socket
import socketserver
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "LocalServer",
    "OAuth2Server",
    "RecordedRequest",
    "ScriptedApp",
    "TLSFiles",
    "corrupt_tls_after",
    "server_tls_context",
    "tls_files",
]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Handler = Callable[[dict[str, Any]], tuple[int, list[tuple[str, str]], Iterable[bytes] | bytes]]

_ids = itertools.count(1)
_REASONS = {s.value: s.phrase for s in http.HTTPStatus}


class _ChunkedReader(io.RawIOBase):
    """Decodes a ``Transfer-Encoding: chunked`` request body for ``wsgi.input``."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._left == 0:
            line = self._rfile.readline(65537)
            size = int(line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self._rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                self._done = True
                return 0
            self._left = size
        data = self._rfile.read(min(len(buffer), self._left))
        buffer[: len(data)] = data
        self._left -= len(data)
        if self._left == 0:
            self._rfile.readline(65537)  # the CRLF after the chunk
        return len(data)


class _ResetConnection(Exception):
    """Raised by a handler's body to make the server reset (RST) the connection."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()  # in this thread, not the accept loop
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except _ResetConnection:
            self.server.to_reset.add(id(self.connection))
            self.close_connection = True
        except (OSError, ssl.SSLError, ValueError):
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _run_app(self) -> None:
        request_id = next(_ids)
        path, _, query = self.path.partition("?")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body_stream: Any = io.BufferedReader(_ChunkedReader(self.rfile))
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body_stream = io.BytesIO(self.rfile.read(length) if length else b"")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path),
            "RAW_PATH": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "REMOTE_PORT": str(self.client_address[1]),
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": self.headers.get("Content-Length", ""),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https" if self.server.tls else "http",
            "wsgi.input": body_stream,
            "wsgi.errors": io.StringIO(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "dictamesh.socket": self.connection,
            "dictamesh.request_id": request_id,
            "dictamesh.headers": self.headers,
        }
        if isinstance(self.connection, ssl.SSLSocket):
            environ["dictamesh.peercert"] = self.connection.getpeercert()
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = value if key not in environ else environ[key] + "," + value
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            started[:] = [status, headers]
            return lambda data: None

        result = self.server.app(environ, start_response)
        try:
            status, headers = started
            names = {k.lower() for k, _ in headers}
            code, _, reason = status.partition(" ")
            if "content-length" not in names and self.command != "HEAD":
                # Buffer to give the length (simple and keep-alive friendly),
                # unless the app asked for chunked output.
                if "transfer-encoding" in names:
                    self._write_head(int(code), reason, headers)
                    for chunk in result:
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\n\r\n")
                    return
                data = b"".join(result)
                headers = [*headers, ("Content-Length", str(len(data)))]
                self._write_head(int(code), reason, headers)
                self.wfile.write(data)
                return
            self._write_head(int(code), reason, headers)
            if self.command != "HEAD":
                for chunk in result:
                    if chunk:
                        self.wfile.write(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            # Drain an unread request body so keep-alive stays in sync.
            if isinstance(body_stream, io.BufferedReader):
                while body_stream.read(65536):
                    pass

    def _write_head(self, code: int, reason: str, headers: list[tuple[str, str]]) -> None:
        self.send_response_only(code, reason or _REASONS.get(code, ""))
        for name, value in headers:
            self.send_header(name, value)
            if name.lower() == "connection" and value.lower() == "close":
                self.close_connection = True
        self.end_headers()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):
            return self._run_app
        raise AttributeError(name)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, app: WSGIApp, tls: ssl.SSLContext | None) -> None:
        self.app = app
        self.tls = tls
        self.to_reset: set[int] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        if id(request) in self.to_reset:
            self.to_reset.discard(id(request))
            self.close_request(request)  # linger 0: the close sends RST
            return
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up or fail TLS are part of the tests


class LocalServer:
    """A threaded HTTP/1.1 server for ``app`` on 127.0.0.1 (port chosen by the OS).

    Example::

        with LocalServer(app) as server:
            ...  # server.url == "http://127.0.0.1:<port>"

    Args:
        app: A WSGI application.
        tls: A server-side ``SSLContext`` (see ``server_tls_context``) for HTTPS.
    """

    def __init__(self, app: WSGIApp, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self._server = _Server(app, tls)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.port: int = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.origin = self.url

    def start(self) -> LocalServer:
        """Start serving in a daemon thread; returns ``self``."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ServiceServer:
    """Base of a test service (GraphQL, SOAP) whose WSGI app is its own ``_app``.

    It is served by a ``LocalServer`` on 127.0.0.1:<random port> (HTTPS with
    ``ssl_context``), wrapped by ``middleware`` when given (e.g.
    ``corrupt_tls_after``). ``requests`` counts arrivals by name (``count``);
    ``_script`` queues the canned responses a subclass's ``script()`` adds;
    ``_lock`` guards both and the subclass's own counters.

    Args:
        ssl_context: Serve HTTPS with this server-side context (plain HTTP if None).
        middleware: Wraps the WSGI app.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        middleware: Callable[[WSGIApp], WSGIApp] | None = None,
    ) -> None:
        self._lock = threading.Lock()  # guards the counters and the script
        self.requests: collections.Counter[str] = collections.Counter()
        self._script: collections.deque[Any] = collections.deque()
        app = self._app if middleware is None else middleware(self._app)
        self._server = LocalServer(app, tls=ssl_context)
        self.port = self._server.port
        self.base_url = self._server.url

    def __enter__(self) -> Any:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    def count(self, name: str) -> int:
        """How many requests named ``name`` arrived (what a name is: the subclass says)."""
        with self._lock:
            return self.requests[name]

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise NotImplementedError


@dataclass
class RecordedRequest:
    """One request as ``ScriptedApp`` saw it."""

    id: int
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    client_port: int = 0
    at: float = field(default_factory=time.monotonic)

    def header(self, name: str) -> str | None:
        """A header, case-insensitively (``None`` when absent)."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class ScriptedApp:
    """A WSGI app: per-path handlers plus a record of every request.

    A handler takes the WSGI environ (the request body already read into
    ``environ["dictamesh.body"]``) and returns ``(status, headers, body)``
    where body is ``bytes`` or an iterable of ``bytes``. Unknown paths get
    the ``default`` handler (``echo``).

    Thread safety: handlers run in the server's threads; the record is
    guarded by a lock.
    """

    def __init__(self, default: Handler | None = None) -> None:
        self.routes: dict[str, Handler] = {}
        self.default = default or ScriptedApp.echo()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def route(self, path: str, handler: Handler) -> ScriptedApp:
        """Serve ``path`` (exact match on the decoded path) with ``handler``."""
        self.routes[path] = handler
        return self

    def hits(self, path: str) -> list[RecordedRequest]:
        """The recorded requests for ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = environ["wsgi.input"].read()
        environ["dictamesh.body"] = body
        record = RecordedRequest(
            id=environ.get("dictamesh.request_id", 0),
            method=environ["REQUEST_METHOD"],
            path=environ["PATH_INFO"],
            query=dict(urllib.parse.parse_qsl(environ["QUERY_STRING"], keep_blank_values=True)),
            headers=dict(environ["dictamesh.headers"].items()),
            body=body,
            client_port=int(environ.get("REMOTE_PORT") or 0),
        )
        with self._lock:
            self.requests.append(record)
        handler = self.routes.get(environ["PATH_INFO"], self.default)
        status, headers, payload = handler(environ)
        start_response(f"{status} {_REASONS.get(status, 'Unknown')}", headers)
        return [payload] if isinstance(payload, bytes) else payload

    # ------------------------------------------------------- canned handlers

    @staticmethod
    def echo() -> Handler:
        """200 with JSON: method, path, query, headers, body (text), request id."""

        def handle(environ: dict[str, Any]) -> Any:
            payload = {
                "id": environ.get("dictamesh.request_id"),
                "method": environ["REQUEST_METHOD"],
                "path": environ["PATH_INFO"],
                "query": dict(urllib.parse.parse_qsl(environ["QUERY_STRING"])),
                "headers": dict(environ["dictamesh.headers"].items()),
                "body": environ["dictamesh.body"].decode("utf-8", "replace"),
            }
            return 200, [("Content-Type", "application/json")], json.dumps(payload).encode()

        return handle

    @staticmethod
    def status(
        code: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None
    ) -> Handler:
        """Always answer ``code`` with ``body`` and ``headers``."""
        return lambda environ: (code, list(headers or []), body)

    @staticmethod
    def sequence(*handlers: Handler) -> Handler:
        """Answer with each handler in turn; the last one repeats."""
        lock = threading.Lock()
        index = [0]

        def handle(environ: dict[str, Any]) -> Any:
            with lock:
                i = min(index[0], len(handlers) - 1)
                index[0] += 1
            return handlers[i](environ)

        return handle

    @staticmethod
    def retry_after(code: int, value: str) -> Handler:
        """``code`` with ``Retry-After: value``."""
        return ScriptedApp.status(code, b"busy", [("Retry-After", value)])

    @staticmethod
    def retry_after_date(code: int, seconds: float) -> Handler:
        """``code`` with an HTTP-date ``Retry-After`` ``seconds`` from now (rounded up)."""

        def handle(environ: dict[str, Any]) -> Any:
            when = email.utils.formatdate(time.time() + seconds + 1, usegmt=True)
            return code, [("Retry-After", when)], b"busy"

        return handle

    @staticmethod
    def slow(seconds: float, body: bytes = b"slow") -> Handler:
        """Wait ``seconds`` before answering 200."""

        def handle(environ: dict[str, Any]) -> Any:
            time.sleep(seconds)
            return 200, [], body

        return handle

    @staticmethod
    def big(size: int, chunk: int = 65536, declare_length: bool = True) -> Handler:
        """200 with ``size`` bytes, streamed (Content-Length, or chunked when not declared)."""

        def body() -> Iterator[bytes]:
            left = size
            while left > 0:
                n = min(chunk, left)
                left -= n
                yield b"x" * n

        def handle(environ: dict[str, Any]) -> Any:
            if declare_length:
                headers = [("Content-Length", str(size))]
            else:
                headers = [("Transfer-Encoding", "chunked")]
            return 200, headers, body()

        return handle

    @staticmethod
    def reset_mid_body(sent: int = 100, declared: int = 10_000) -> Handler:
        """Declare ``declared`` bytes, send ``sent``, then reset the connection (RST)."""

        def handle(environ: dict[str, Any]) -> Any:
            sock = environ["dictamesh.socket"]

            def body() -> Iterator[bytes]:
                yield b"y" * sent
                # SO_LINGER 0 + close = RST instead of FIN; the server skips its
                # usual shutdown(SHUT_WR) for this socket (see _Server).
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raise _ResetConnection(sock)

            return 200, [("Content-Length", str(declared))], body()

        return handle

    @staticmethod
    def redirect(location: str, code: int = 302) -> Handler:
        """``code`` with ``Location: location``."""
        return ScriptedApp.status(code, b"", [("Location", location)])


class OAuth2Server:
    """An OAuth2 token endpoint (client credentials) issuing short-lived tokens.

    Serve ``token_endpoint`` at some path of a ``ScriptedApp``; protect other
    routes with ``bearer_required(handler)``. ``token_requests`` counts the
    token requests; ``issued`` holds every token with its expiry.

    Args:
        client_id, client_secret: The credentials the endpoint accepts
            (HTTP Basic or form fields).
        ttl: Token lifetime in seconds (``expires_in``).
        delay: Seconds each token request takes (to widen races).
    """

    def __init__(
        self,
        client_id: str = "client",
        client_secret: str = "s3cret-client",
        ttl: float = 60.0,
        delay: float = 0.0,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.ttl = ttl
        self.delay = delay
        self.issued: dict[str, float] = {}
        self.token_requests = 0
        self.revoked: set[str] = set()
        self._lock = threading.Lock()

    def token_endpoint(self, environ: dict[str, Any]) -> Any:
        """The token endpoint handler."""
        with self._lock:
            self.token_requests += 1
            number = self.token_requests
        if self.delay:
            time.sleep(self.delay)
        form = dict(urllib.parse.parse_qsl(environ["dictamesh.body"].decode()))
        client = (form.get("client_id"), form.get("client_secret"))
        auth = environ.get("HTTP_AUTHORIZATION", "")
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            client = (urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password))
        if form.get("grant_type") != "client_credentials":
            return (
                400,
                [("Content-Type", "application/json")],
                b'{"error":"unsupported_grant_type"}',
            )
        if client != (self.client_id, self.client_secret):
            return 401, [("Content-Type", "application/json")], b'{"error":"invalid_client"}'
        token = f"tok-{number}-{time.monotonic_ns()}"
        with self._lock:
            self.issued[token] = time.monotonic() + self.ttl
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl}
        return 200, [("Content-Type", "application/json")], json.dumps(body).encode()

    def valid(self, token: str) -> bool:
        """Whether ``token`` was issued here, is not revoked and has not expired."""
        with self._lock:
            expiry = self.issued.get(token)
            return expiry is not None and token not in self.revoked and time.monotonic() < expiry

    def revoke_all(self) -> None:
        """Make every token issued so far invalid (the next use gets 401)."""
        with self._lock:
            self.revoked.update(self.issued)

    def bearer_required(self, handler: Handler) -> Handler:
        """Wrap ``handler``: 401 unless the request has a valid bearer token."""

        def handle(environ: dict[str, Any]) -> Any:
            auth = environ.get("HTTP_AUTHORIZATION", "")
            if not auth.startswith("Bearer ") or not self.valid(auth[7:]):
                return 401, [("WWW-Authenticate", 'Bearer error="invalid_token"')], b"no"
            return handler(environ)

        return handle


CORRUPT_TLS_RECORD_HEADER = b"\x17\x03\x03\x00\x20"  # application data, TLS 1.2, 32 bytes


def write_corrupt_tls_record(environ: dict[str, Any]) -> None:
    """Write a TLS record that cannot be decrypted on the request's socket, then hang up.

    The bytes go to the TCP socket under the TLS layer, so the client's TLS
    library fails while reading the response (``DECRYPTION_FAILED`` / bad
    record MAC): the request was sent and processed, no answer can be read.
    Waits (up to 5 s) for the client to close first, so the record is read,
    not lost to a reset. Raises ``ConnectionAbortedError`` to make the server
    drop the connection without writing anything more.
    """
    sock = environ["dictamesh.socket"]
    fd = sock.fileno()
    os.write(fd, CORRUPT_TLS_RECORD_HEADER + os.urandom(32))
    select.select([fd], [], [], 5)
    raise ConnectionAbortedError("corrupt TLS record sent instead of the response")


def corrupt_tls_after(
    app: WSGIApp, when: Callable[[dict[str, Any]], bool] | None = None
) -> WSGIApp:
    """WSGI middleware: ``app`` handles the request (its answer discarded), then a corrupt record.

    Serve it with ``tls=``; the request counters of ``app`` show how often it ran.

    Args:
        app: The application that processes the request.
        when: Which requests to answer so (default: every POST); others get
            ``app``'s own answer.
    """

    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if not (when(environ) if when is not None else environ["REQUEST_METHOD"] == "POST"):
            return app(environ, start_response)
        result = app(environ, lambda *args, **kwargs: lambda data: None)
        for _ in result:  # run the app to the end: the side effects are real
            pass
        close = getattr(result, "close", None)
        if close is not None:
            close()

        def body() -> Iterator[bytes]:
            write_corrupt_tls_record(environ)
            yield b""

        start_response("200 OK", [])
        return body()

    return middleware


@dataclass
class TLSFiles:
    """PEM files from a throw-away trustme CA (see ``tls_files``)."""

    ca: Any
    ca_pem: str
    server_cert: Any
    client_cert_pem: str
    client_key_pem: str
    other_ca_pem: str


def tls_files(directory: Path) -> TLSFiles:
    """Create a CA, a server cert for 127.0.0.1/localhost and a client cert, as files.

    ``other_ca_pem`` is an unrelated CA (verifying against it must fail).
    """
    import trustme

    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@dictamesh.test")
    ca_pem = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    client_cert = directory / "client.pem"
    client_key = directory / "client.key"
    client.cert_chain_pems[0].write_to_path(str(client_cert))
    client.private_key_pem.write_to_path(str(client_key))
    other = directory / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    return TLSFiles(ca, str(ca_pem), server_cert, str(client_cert), str(client_key), str(other))


def server_tls_context(files: TLSFiles, *, require_client_cert: bool = False) -> ssl.SSLContext:
    """A server-side ``SSLContext`` with the trustme server certificate.

    Args:
        files: From ``tls_files``.
        require_client_cert: Demand a client certificate signed by the CA (mTLS).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    files.server_cert.configure_cert(context)
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        files.ca.configure_trust(context)
    return context
