"""``HTTPConnector``: a thread-safe HTTP client over one shared urllib3 pool.

How it is thread-safe: ``requests.Session`` does not promise to be
(psf/requests#2766: cookies, auth, adapters are mutable shared state), so the
connector does not use one. Its handle is a single ``HTTPAdapter`` (one
urllib3 ``PoolManager``, which *is* thread-safe); every request is a fresh
``PreparedRequest`` built from immutable config plus the call's arguments and
sent with ``adapter.send``. Nothing mutable is shared between requests except
the pool, the OAuth2 token cache and the rate-limit bucket, each with its own
small lock held only for memory updates.

Retries run in the core loop (``retry_call``); urllib3's own retries are off
(``Retry(0, read=False)``) so they never stack. Redirects are followed here,
not by urllib3, so credentials can be dropped when a hop leaves the origin.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json as jsonlib
import logging
import os
import random
import re
import ssl
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, BinaryIO

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict
from requests.utils import get_environ_proxies
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dictamesh_connectors import _fork
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.http.auth import ConnectorAuth, OAuth2TokenSource, origin_of
from dictamesh_connectors.http.config import AuthType, HTTPConfig, check_header
from dictamesh_connectors.http.errors import (
    HTTPStatusError,
    InvalidRequestError,
    error_for_status,
    redact_url,
    scrub_secrets,
    too_large,
    translate_exception,
)
from dictamesh_connectors.http.models import Request, Response
from dictamesh_connectors.http.ratelimit import TokenBucket
from dictamesh_connectors.http.retry import NO_DRIVER_RETRIES, is_idempotent
from dictamesh_connectors.retry import RetryPolicy

__all__ = ["HTTPConnector"]

logger = logging.getLogger(__name__)

_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# URLs made only of these need no quoting by requests (RFC 3986 unreserved,
# sub-delims, ":", "@", "/"); anything else goes through prepare_url.
_PLAIN_URL = re.compile(r"[A-Za-z0-9\-._~:/@!$&'()*+,;=]*")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# What requests/urllib3/the socket raise while sending or reading (requests'
# exceptions are OSErrors too); translated by errors.translate_exception.
_DRIVER_ERRORS = (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError)
_CHUNK = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # read at most this much of a redirect/401 body to reuse the connection
_insecure_warned = False
_insecure_lock = _fork.create_lock()


class _RedactSecrets(logging.Filter):
    """Masks API keys sent in query strings in urllib3's DEBUG request lines.

    urllib3 logs ``"GET /path?key=... HTTP/1.1" 200`` at DEBUG; a connector
    whose API key travels in the query registers the key here so that line
    shows ``***`` instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()  # replaced, never mutated: readers need no lock
        self._lock = _fork.create_lock()

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on; installs the filter on urllib3's logger once."""
        with self._lock:  # secrets (copy-on-write), the filter installation
            self.secrets = self.secrets | {secret, urllib.parse.quote_plus(secret)}
            urllib3_logger = logging.getLogger("urllib3.connectionpool")
            if self not in urllib3_logger.filters:
                urllib3_logger.addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if secrets:
            message = record.getMessage()
            if any(secret in message for secret in secrets):
                for secret in sorted(secrets, key=len, reverse=True):
                    message = message.replace(secret, "***")
                record.msg, record.args = message, ()
        return True


_redactor = _RedactSecrets()


def _pool_classes(pool_timeout: float) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose ``urlopen`` waits at most ``pool_timeout`` for a connection.

    ``requests`` never passes ``pool_timeout``, so with ``block=True`` a full
    pool would otherwise wait forever.
    """

    class TimedHTTPConnectionPool(HTTPConnectionPool):
        def urlopen(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("pool_timeout") is None:
                kwargs["pool_timeout"] = pool_timeout
            return super().urlopen(*args, **kwargs)

    class TimedHTTPSConnectionPool(HTTPSConnectionPool):
        def urlopen(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("pool_timeout") is None:
                kwargs["pool_timeout"] = pool_timeout
            return super().urlopen(*args, **kwargs)

    return {"http": TimedHTTPConnectionPool, "https": TimedHTTPSConnectionPool}


class _SharedAdapter(HTTPAdapter):
    """The connector's handle: one ``HTTPAdapter`` (one urllib3 pool) for every thread."""

    def __init__(self, config: HTTPConfig) -> None:
        self._dm_block = config.pool_block or config.max_conns_per_host > 0
        self._dm_pool_timeout = config.pool_timeout
        maxsize = config.max_conns_per_host or config.max_idle_conns_per_host
        super().__init__(
            pool_connections=config.max_idle_conns,
            pool_maxsize=maxsize,
            pool_block=self._dm_block,
            max_retries=NO_DRIVER_RETRIES,
        )

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        if block:
            self.poolmanager.pool_classes_by_scheme = _pool_classes(self._dm_pool_timeout)


class _BorrowedAdapter(BaseAdapter):
    """What ``session()`` mounts: sends through the connector's shared adapter.

    ``close()`` does nothing, so closing a session never closes the shared
    pool under other threads. Default timeouts and the rate limit apply.
    """

    def __init__(self, connector: HTTPConnector, adapter: _SharedAdapter) -> None:
        super().__init__()
        self._connector = connector
        self._adapter = adapter

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self._connector._handle is not self._adapter:
            raise NotConnectedError(
                "http: the connector behind this session was disconnected", connector="http"
            )
        if timeout is None:
            timeout = self._connector._timeouts
        connector = self._connector
        if connector._limiter is not None:
            connector._limiter.acquire()
        limit = connector._max_bytes
        response = self._adapter.send(
            request,
            stream=stream or bool(limit),
            timeout=timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )
        if limit and not stream:
            self._read_bounded(response, limit)
        return response

    def _read_bounded(self, response: requests.Response, limit: int) -> None:
        """Read the body like ``requests`` does, but stop past ``limit`` bytes.

        Raises:
            ConnectorError: ``PAYLOAD_TOO_LARGE`` (the connection is closed).
            requests.RequestException: Reading failed, as ``requests`` reports it.
        """
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(_CHUNK):
            total += len(chunk)
            if total > limit:
                response.close()
                request = response.request
                raise self._connector._too_large(
                    str(request.method if request is not None else "GET"),
                    str(request.url if request is not None else response.url),
                    response.status_code,
                )
            chunks.append(chunk)
        response._content = b"".join(chunks)

    def close(self) -> None:
        """Do nothing: the pool belongs to the connector."""


class _ConnectorSession(requests.Session):
    """A ``requests.Session`` that strips every credential on cross-origin redirects."""

    _dm_auth: ConnectorAuth | None = None

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        old_url = response.request.url if response.request is not None else None
        if (
            self._dm_auth is not None
            and old_url
            and prepared_request.url
            and origin_of(old_url) != origin_of(prepared_request.url)
        ):
            self._dm_auth.strip(prepared_request)
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]


class _Call:
    """Everything about one ``execute`` call that does not change between attempts."""

    __slots__ = (
        "body",
        "body_pos",
        "headers",
        "idempotent",
        "key",
        "method",
        "mode",
        "replayable",
        "stream",
        "timeouts",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        headers: CaseInsensitiveDict[str],
        body: Any,
        timeouts: tuple[float, float],
        idempotent: bool,
        key: bool,
        mode: int,
        stream: bool,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
        self.idempotent = idempotent
        self.key = key
        self.mode = mode
        self.stream = stream
        self.body_pos: int | None = None
        self.replayable = True
        if body is not None and not isinstance(body, (bytes, str)):
            try:
                self.body_pos = body.tell()
                body.seek(self.body_pos)
            except (AttributeError, OSError, ValueError):
                self.replayable = False

    def rewind(self) -> None:
        if self.body_pos is not None:
            self.body.seek(self.body_pos)


# _Call.mode: which statuses raise inside an attempt.
_RAISE_ALL = 0  # every status >= 400 (raise_for_status=True)
_RAISE_TRANSIENT = 1  # only retryable ones, so the loop can retry (raise_for_status=False)
_RAISE_NONE = 2  # never (ping)


class HTTPConnector(Connector[HTTPConfig, _SharedAdapter]):
    """HTTP(S) client for adapters: pooled, retrying safely, never leaking credentials.

    Thread safety: share one instance between all threads (64 is fine; size
    ``max_idle_conns_per_host`` to the thread count). Each request is built
    from immutable config and the call's own arguments; only the urllib3
    pool, the OAuth2 token cache and the rate-limit bucket are shared, each
    thread-safe. No cookies are kept between requests. After ``fork()`` the
    child opens its own pool.

    Retries (core retry loop, config ``retry``/``max_retries``): connection
    failures before anything was sent are retried for every method; read
    errors, timeouts and 500/502/504 only for idempotent requests (GET, HEAD,
    OPTIONS, TRACE, PUT, DELETE, any request with an Idempotency-Key, or
    ``idempotent=True``); 408/425/429/503 are retried for every method,
    honouring ``Retry-After`` (clamped by the policy's ``max_backoff`` and
    ``deadline``).

    Example::

        config = HTTPConfig(base_url="https://api.example.com/v1", timeout=10)
        with HTTPConnector(config) as api:
            user = api.get("/users/42").json()
            api.post("/orders", json={"sku": 1}, idempotency_key=str(uuid.uuid4()))

    Args:
        config: The ``HTTPConfig``.
        sleep, clock, rand: Injected into the retry loop, rate limiter and
            token cache (tests use a fake clock; production never passes them).

    Raises:
        InvalidConfigError: ``config`` is not a valid ``HTTPConfig``.
    """

    name = "http"
    config_class = HTTPConfig

    def __init__(
        self,
        config: HTTPConfig,
        *,
        sleep: Callable[[float], object] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(config)
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        base = (config.base_url or "").rstrip("/")
        self._base = base
        self._origin = origin_of(base)
        self._allowed = frozenset(config.allowed_hosts)
        self._timeouts = (config.connect_timeout, config.timeout)
        # requests' ``verify``: False, True (system/certifi store) or a CA bundle path.
        self._verify: bool | str = False
        if config.tls_verify:
            self._verify = config.ca_bundle or True
        self._cert: tuple[str, str] | str | None = (
            (config.client_cert, config.client_key)
            if config.client_cert and config.client_key
            else config.client_cert
        )
        if not config.tls_verify:
            _warn_insecure(base)
        headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
            {
                "User-Agent": config.user_agent,
                "Accept-Encoding": "gzip, deflate",
                "Accept": "*/*",
                "Connection": "keep-alive",
            }
        )
        headers.update(dict(config.headers))
        self._default_headers = headers
        self._limiter = (
            TokenBucket(config.rate_limit, config.rate_limit_burst, clock=clock, sleep=sleep)
            if config.rate_limit > 0
            else None
        )
        self._tokens: OAuth2TokenSource | None = None
        if config.auth_type is AuthType.OAUTH2:
            self._tokens = OAuth2TokenSource(
                config.credentials,
                self._fetch_token,
                refresh_margin=config.oauth2_refresh_margin,
                wait_timeout=config.connect_timeout + config.timeout,
                clock=clock,
                connector=self.name,
            )
        self._auth: ConnectorAuth | None = (
            ConnectorAuth(config, origin=self._origin, token_source=self._tokens)
            if config.auth_type is not AuthType.NONE
            else None
        )
        creds = config.credentials
        self._secret_params: tuple[str, ...] = (
            (creds.api_key_name,)
            if config.auth_type is AuthType.APIKEY and creds.api_key_in == "query"
            else ()
        )
        # The API key's value when it travels in the query: scrubbed from urllib3's
        # DEBUG lines and from the driver exceptions kept as __cause__.
        self._query_secrets: tuple[str, ...] = ()
        if self._secret_params and creds.api_key:
            self._query_secrets = (creds.api_key.get_secret_value(),)
            _redactor.add(creds.api_key.get_secret_value())
        self._max_bytes = config.max_response_bytes
        self._proxies: dict[str, str] = {}

    # ------------------------------------------------------------------ hooks

    def _open(self) -> _SharedAdapter:
        self._check_tls_files()
        return _SharedAdapter(self.config)

    def _check_tls_files(self) -> None:
        """Load ``ca_bundle`` and the client certificate once, at connect.

        requests reads them on each new connection and reports a missing or
        unreadable file as a bare ``OSError``, which would look like a lost
        connection (transient, retried). Loading them here turns a wrong path,
        a file that is not PEM, or a key that does not match its certificate
        into an ``InvalidConfigError`` from ``connect()``.

        Raises:
            InvalidConfigError: A TLS file cannot be read or loaded.
        """
        cfg = self.config
        context = ssl.create_default_context()
        checks: list[tuple[str, Callable[[], None]]] = []
        if cfg.ca_bundle and cfg.tls_verify:
            bundle = cfg.ca_bundle
            if os.path.isdir(bundle):
                checks.append(("ca_bundle", lambda: context.load_verify_locations(capath=bundle)))
            else:
                checks.append(("ca_bundle", lambda: context.load_verify_locations(cafile=bundle)))
        if cfg.client_cert:
            cert, key = cfg.client_cert, cfg.client_key
            # An encrypted key cannot be used (requests has no key password): fail now.
            checks.append(
                ("client_cert/client_key", lambda: context.load_cert_chain(cert, key, lambda: ""))
            )
        for field, load in checks:
            try:
                load()
            except (OSError, ssl.SSLError, ValueError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None)
                raise InvalidConfigError(
                    f"{self.name}: cannot load {field} ({reason or type(exc).__name__}); "
                    "check the path and that it is PEM (keys unencrypted)",
                    connector=self.name,
                ) from None

    def _close(self, handle: _SharedAdapter, timeout: float | None) -> None:
        handle.close()

    def _on_connection_lost(self, handle: _SharedAdapter, error: ConnectorError) -> None:
        """Nothing to do: urllib3 drops a broken connection and opens a new one."""

    def _ping(self, handle: _SharedAdapter, timeout: float | None) -> None:
        cfg = self.config
        url = self._resolve(cfg.health_path, None, cfg.health_method)
        timeouts = (
            self._timeouts if timeout is None else (min(timeout, cfg.connect_timeout), timeout)
        )
        call = _Call(
            cfg.health_method,
            url,
            self._default_headers,
            None,
            timeouts,
            idempotent=True,
            key=False,
            mode=_RAISE_NONE,
            stream=False,
        )
        response = self._perform(handle, call)
        if response.status_code >= cfg.health_ok_below:
            raise error_for_status(
                response.status_code,
                response.headers,
                method=cfg.health_method,
                url=url,
                connector=self.name,
                idempotent=True,
                response=response,
                secret_params=self._secret_params,
            )

    def _after_fork_in_child(self) -> None:
        """In a forked child: also renew the token cache's and rate limiter's locks."""
        forked = self._pid != os.getpid()
        super()._after_fork_in_child()
        if forked:
            if self._tokens is not None:
                self._tokens.reset_after_fork()
            if self._limiter is not None:
                self._limiter.reset_after_fork()

    # ---------------------------------------------------------------- public

    def execute(
        self,
        request: Request,
        *,
        raise_for_status: bool = True,
        stream: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send ``request`` (with retries, redirects and auth) and return the response.

        Args:
            request: What to send.
            raise_for_status: Raise ``HTTPStatusError`` for a status >= 400
                (after retries); ``False`` returns the last response instead.
            stream: Leave the body unread: use ``iter_bytes()`` and close the
                response (``with``). Error responses are always read.
            retry: This call's retry policy instead of the config's
                (``RetryPolicy.no_retry()`` when an outer loop retries).

        Returns:
            The response. Non-streamed bodies are read completely.

        Raises:
            InvalidRequestError: Bad method, header, URL or body arguments,
                or a URL pointing at a host that is not allowed; nothing sent.
            HTTPStatusError: Status >= 400 (with ``raise_for_status``);
                ``HTTPAuthenticationError`` for 401.
            ConnectorTimeoutError: Connect or read timeout.
            ConnectorError: Connection failed or lost, body too large
                (``PAYLOAD_TOO_LARGE``), too many redirects (``PROTOCOL_ERROR``).
            NotConnectedError: Not connected.
        """
        method = self._check_method(request.method)
        url = self._resolve(request.path, request.query, method)
        headers = self._headers(request.headers, method, url)
        key_header = self.config.idempotency_header
        if request.idempotency_key is not None:
            _, key = self._check_header(key_header, request.idempotency_key, method, url)
            headers[key_header] = key
        elif self.config.auto_idempotency_key and method in ("POST", "PATCH"):
            headers.setdefault(key_header, str(uuid.uuid4()))
        body = self._body(method, url, headers, request)
        idempotent = is_idempotent(
            method, headers, request.idempotent, idempotency_header=key_header
        )
        timeouts = self._call_timeouts(request.timeout, method, url)
        call = _Call(
            method,
            url,
            headers,
            body,
            timeouts,
            idempotent,
            key=bool(headers.get(key_header)),
            mode=_RAISE_ALL if raise_for_status else _RAISE_TRANSIENT,
            stream=stream,
        )
        policy = (retry or self.config.retry) if call.replayable else RetryPolicy.no_retry()
        try:
            return self._run(
                lambda adapter: self._perform(adapter, call),
                idempotent=idempotent,
                retry=policy,
                description=f"{method} {redact_url(url, self._secret_params)}",
            )
        except HTTPStatusError as err:
            if not raise_for_status and err.response is not None:
                return err.response
            raise

    def request(
        self,
        method: str,
        path: str = "",
        *,
        params: Any = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        files: Any = None,
        timeout: float | tuple[float, float] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool | None = None,
        raise_for_status: bool = True,
        stream: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Response:
        """Send a request; ``requests``-style arguments (see ``execute``).

        Args:
            method: HTTP method.
            path: Joined to ``base_url``, or an absolute URL on an allowed host.
            params: Query parameters.
            headers: Extra headers (``None`` values remove a default header).
            json: Sent as JSON.
            data: Form fields (mapping or pairs), or a raw body (``bytes``,
                ``str``, file object, iterator of ``bytes``).
            files: Multipart files, as ``requests`` accepts them.
            timeout: Read timeout, or ``(connect, read)``.
            idempotency_key: Sent as the Idempotency-Key header; makes the
                request retryable.
            idempotent: Overrides the idempotency decision (``None``: decide
                from the method and the key).
            raise_for_status: Raise for status >= 400 (default) or return it.
            stream: Leave the body unread (see ``execute``).
            retry: This call's retry policy instead of the config's.

        Raises:
            InvalidRequestError, HTTPStatusError, ConnectorTimeoutError,
            ConnectorError, NotConnectedError: as ``execute``.
        """
        body = None
        if data is not None and not _is_form(data):
            body, data = data, None
        return self.execute(
            Request(
                method,
                path,
                headers,
                body,
                params,
                json=json,
                data=data,
                files=files,
                timeout=timeout,
                idempotency_key=idempotency_key,
                idempotent=idempotent,
            ),
            raise_for_status=raise_for_status,
            stream=stream,
            retry=retry,
        )

    def get(self, path: str = "", **kwargs: Any) -> Response:
        """``request("GET", path, **kwargs)``. Raises as ``execute``."""
        return self.request("GET", path, **kwargs)

    def post(self, path: str = "", **kwargs: Any) -> Response:
        """``request("POST", path, **kwargs)``; not retried after sending unless keyed.

        Raises as ``execute``.
        """
        return self.request("POST", path, **kwargs)

    def put(self, path: str = "", **kwargs: Any) -> Response:
        """``request("PUT", path, **kwargs)``. Raises as ``execute``."""
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str = "", **kwargs: Any) -> Response:
        """``request("PATCH", path, **kwargs)``; not retried after sending unless keyed.

        Raises as ``execute``.
        """
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str = "", **kwargs: Any) -> Response:
        """``request("DELETE", path, **kwargs)``. Raises as ``execute``."""
        return self.request("DELETE", path, **kwargs)

    def head(self, path: str = "", **kwargs: Any) -> Response:
        """``request("HEAD", path, **kwargs)``. Raises as ``execute``."""
        return self.request("HEAD", path, **kwargs)

    def options(self, path: str = "", **kwargs: Any) -> Response:
        """``request("OPTIONS", path, **kwargs)``. Raises as ``execute``."""
        return self.request("OPTIONS", path, **kwargs)

    @contextlib.contextmanager
    def stream(self, method: str, path: str = "", **kwargs: Any) -> Iterator[Response]:
        """Send a request and yield the response with its body unread.

        Iterate the response (or ``iter_bytes()``) for the body chunks; the
        connection is released when the block exits. ``max_response_bytes``
        is enforced while iterating.

        Example::

            with api.stream("GET", "/export.csv") as response:
                for chunk in response:
                    sink.write(chunk)

        Raises:
            As ``execute`` (and while iterating: ``ConnectorError`` with
            ``PAYLOAD_TOO_LARGE``, ``CONNECTION_LOST`` or ``TIMEOUT``).
        """
        response = self.request(method, path, stream=True, **kwargs)
        try:
            yield response
        finally:
            response.close()

    def download(
        self, path: str, dest: str | os.PathLike[str] | BinaryIO | IO[bytes], **kwargs: Any
    ) -> int:
        """GET ``path`` and write the body to ``dest`` (a path or a binary file), streaming.

        A path is written to ``<dest>.part`` and renamed when complete, so a
        failed download never leaves a truncated file under the final name.

        Returns:
            The number of bytes written.

        Raises:
            As ``stream`` (``PAYLOAD_TOO_LARGE`` beyond ``max_response_bytes``);
            ``OSError`` from writing the file passes through.
        """
        written = 0
        with self.stream("GET", path, **kwargs) as response:
            if isinstance(dest, (str, os.PathLike)):
                final = os.fspath(dest)
                partial = final + ".part"
                try:
                    with open(partial, "wb") as fh:
                        for chunk in response.iter_bytes():
                            fh.write(chunk)
                            written += len(chunk)
                    os.replace(partial, final)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(partial)
                    raise
            else:
                for chunk in response.iter_bytes():
                    dest.write(chunk)
                    written += len(chunk)
        return written

    def paginate(self, path: str, paginator: Any = None, **kwargs: Any) -> Iterator[Response]:
        """Iterate the pages of a paginated resource (see ``pagination``).

        Args:
            path: The first page.
            paginator: A ``LinkHeader``, ``Cursor``, ``OffsetLimit`` or
                ``PageNumber`` (default: ``LinkHeader()``).
            kwargs: Passed to ``get`` for every page (``params`` are merged).

        Raises:
            As ``execute``.
        """
        from dictamesh_connectors.http.pagination import LinkHeader

        pages: Iterator[Response] = (paginator or LinkHeader()).pages(self, path, **kwargs)
        return pages

    def session(self) -> requests.Session:
        """A new ``requests.Session`` on the connector's shared pool, for zeep & co.

        One session per thread (sessions are not thread-safe); creating one
        is cheap (no sockets). It is mounted with the connector's shared
        adapter (closing the session does not close the pool) and configured
        with the connector's auth (a ``requests.auth.AuthBase``; with OAuth2
        it refreshes the token and resends once on 401), TLS verification
        and client certificate, default headers, default timeouts and rate
        limit. Credentials are only sent to ``base_url``'s origin and are
        stripped on cross-origin redirects. ``max_response_bytes`` is
        enforced on bodies read by the session (``stream=False``, what zeep
        does): a larger one raises ``ConnectorError`` (``PAYLOAD_TOO_LARGE``).
        Other errors are ``requests`` exceptions, not ``ConnectorError``
        (``NotConnectedError`` once the connector is disconnected).

        Example::

            transport = zeep.Transport(session=api.session())

        Raises:
            NotConnectedError: The connector is not connected.
        """
        adapter = self._current_adapter()
        session = _ConnectorSession()
        session.adapters.clear()
        borrowed = _BorrowedAdapter(self, adapter)
        session.mount("https://", borrowed)
        session.mount("http://", borrowed)
        session.headers = CaseInsensitiveDict(self._default_headers)
        session.verify = self._verify
        session.cert = self._cert
        session.trust_env = self.config.trust_env
        session.max_redirects = self.config.max_redirects
        session.auth = self._auth
        session._dm_auth = self._auth
        return session

    @property
    def base_url(self) -> str:
        """The configured base URL (no trailing slash)."""
        return self._base

    @property
    def token_source(self) -> OAuth2TokenSource | None:
        """The OAuth2 token cache, when ``auth_type`` is oauth2."""
        return self._tokens

    def url_for(self, path: str = "", params: Any = None) -> str:
        """The URL a request for ``path`` goes to (checked like a request's).

        Raises:
            InvalidRequestError: The path is malformed or points at a host
                that is not allowed.
        """
        return self._resolve(path, params, "GET")

    # ------------------------------------------------------------ internals

    def _current_adapter(self) -> _SharedAdapter:
        with self._lock:  # state, handle
            if not self.is_connected:
                raise NotConnectedError(
                    f"{self.name}: not connected; call connect() first", connector=self.name
                )
            handle = self._handle
        if handle is None:
            with self._use() as handle:  # reopens a handle lost to fork()
                return handle
        return handle

    def _invalid(self, method: str, url: str, what: str) -> InvalidRequestError:
        return InvalidRequestError(
            f"{self.name}: {method} {redact_url(url, self._secret_params)}: {what}",
            connector=self.name,
        )

    def _check_method(self, method: object) -> str:
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise InvalidRequestError(
                f"{self.name}: invalid HTTP method {method!r:.30}", connector=self.name
            )
        return method.upper()

    def _resolve(self, path: object, query: Any, method: str) -> str:
        if not isinstance(path, str):
            raise InvalidRequestError(
                f"{self.name}: {method}: path must be a string, got {type(path).__name__}",
                connector=self.name,
            )
        if _BAD_URL_CHARS.search(path):
            raise self._invalid(
                method, self._base, "path contains control characters, spaces or backslashes"
            )
        if _ABSOLUTE.match(path) or path.startswith("//"):
            full = path if not path.startswith("//") else f"{self._origin[0]}:{path}"
            try:
                parts = urllib.parse.urlsplit(full)
                port = parts.port
            except ValueError:
                raise self._invalid(method, self._base, "malformed URL") from None
            if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
                raise self._invalid(method, self._base, "only http(s) URLs with a host are allowed")
            if parts.username is not None or parts.password is not None:
                raise self._invalid(method, self._base, "URLs must not carry credentials")
            if origin_of(full) != self._origin and not self._host_allowed(parts.hostname, port):
                raise self._invalid(
                    method,
                    f"{parts.scheme}://{parts.hostname}",
                    "host is not base_url's and not in allowed_hosts",
                )
        elif not path:
            full = self._base
        elif path[0] in "?#":
            full = self._base + path
        else:
            full = self._base + "/" + path.lstrip("/")
        if not query and _PLAIN_URL.fullmatch(full):
            return full  # fast path: nothing for requests to encode
        prepared = requests.PreparedRequest()
        try:
            prepared.prepare_url(full, query)
        except (requests.exceptions.RequestException, ValueError, TypeError, UnicodeError):
            raise self._invalid(method, full.partition("?")[0], "malformed URL or query") from None
        return prepared.url or full

    def _host_allowed(self, host: str, port: int | None) -> bool:
        host = host.lower()
        if host in self._allowed or (port is not None and f"{host}:{port}" in self._allowed):
            return True
        return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in self._allowed)

    def _check_header(self, name: object, value: object, method: str, url: str) -> tuple[str, str]:
        try:
            return check_header(name, value)
        except InvalidConfigError as err:
            raise self._invalid(method, url, err.message) from None

    def _headers(
        self, extra: Mapping[str, str] | None, method: str, url: str
    ) -> CaseInsensitiveDict[str]:
        headers = self._default_headers.copy()
        if extra:
            if not isinstance(extra, Mapping):
                raise self._invalid(method, url, "headers must be a mapping")
            for name, value in extra.items():
                if value is None:
                    headers.pop(name, None)
                    continue
                name, value = self._check_header(name, value, method, url)
                headers[name] = value
        return headers

    def _body(
        self, method: str, url: str, headers: CaseInsensitiveDict[str], request: Request
    ) -> Any:
        given = [n for n in ("body", "json", "data") if getattr(request, n) is not None]
        if len(given) > 1 or (
            request.files is not None and (request.body is not None or request.json is not None)
        ):
            raise self._invalid(method, url, "pass only one of body, json, data(+files)")
        body = request.body
        if request.json is not None:
            try:
                body = jsonlib.dumps(request.json, allow_nan=False, separators=(",", ":")).encode()
            except (TypeError, ValueError) as exc:
                raise self._invalid(method, url, f"json is not serialisable ({exc})") from None
            headers.setdefault("Content-Type", "application/json")
        elif request.data is not None or request.files is not None:
            prepared = requests.PreparedRequest()
            prepared.headers = CaseInsensitiveDict()
            prepared.url = url
            try:
                prepared.prepare_body(request.data, request.files)
            except (ValueError, TypeError) as exc:
                raise self._invalid(method, url, f"bad data/files ({type(exc).__name__})") from None
            body = prepared.body
            for name, value in prepared.headers.items():
                headers.setdefault(name, value)
        elif isinstance(body, str):
            body = body.encode("utf-8")
        elif body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
            if isinstance(body, Mapping) or not (
                hasattr(body, "read") or hasattr(body, "__iter__")
            ):
                raise self._invalid(method, url, f"unsupported body type {type(body).__name__}")
            length = _length(body)
            if length is not None:
                headers.setdefault("Content-Length", str(length))
            elif "Content-Length" not in headers:
                headers["Transfer-Encoding"] = "chunked"
            return body
        if isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        if isinstance(body, bytes):
            headers["Content-Length"] = str(len(body))
        elif body is None and method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        return body

    def _call_timeouts(self, timeout: Any, method: str, url: str) -> tuple[float, float]:
        if timeout is None:
            return self._timeouts
        try:
            if isinstance(timeout, tuple):
                connect, read = (float(t) for t in timeout)
            else:
                connect, read = self._timeouts[0], float(timeout)
        except (TypeError, ValueError):
            raise self._invalid(method, url, "timeout must be seconds or (connect, read)") from None
        if not (connect > 0 and read > 0):
            raise self._invalid(method, url, "timeouts must be positive")
        return connect, read

    def _perform(self, adapter: _SharedAdapter, call: _Call) -> Response:
        """One attempt: send, follow redirects, resend once on an OAuth2 401, read."""
        method, url, body = call.method, call.url, call.body
        headers = call.headers
        with_auth = self._auth is not None and origin_of(url) == self._origin
        refreshed = False
        history: list[Response] = []
        hops = 0
        while True:
            prepared = _prepared(method, url, headers.copy(), body)
            token = self._auth.apply(prepared) if with_auth and self._auth is not None else None
            if self._limiter is not None:
                self._limiter.acquire()
            call.rewind()
            started = time.perf_counter()
            raw_response = self._send(adapter, prepared, call, method, url)
            elapsed = datetime.timedelta(seconds=time.perf_counter() - started)
            status = raw_response.status_code
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %d (%.1f ms)",
                    method,
                    redact_url(url, self._secret_params),
                    status,
                    elapsed.total_seconds() * 1000,
                )
            location = raw_response.headers.get("Location")
            if status in _REDIRECTS and location and self.config.follow_redirects:
                _discard(raw_response)
                if hops >= self.config.max_redirects:
                    raise ConnectorError(
                        f"{self.name}: {call.method} {redact_url(call.url, self._secret_params)}: "
                        f"more than {self.config.max_redirects} redirects",
                        code=ErrorCode.PROTOCOL_ERROR,
                        transient=False,
                        connector=self.name,
                    )
                hops += 1
                history.append(
                    Response(
                        status,
                        raw_response.headers,
                        b"",
                        url=url,
                        elapsed=elapsed,
                        request_method=method,
                        reason=raw_response.reason or "",
                    )
                )
                next_url = self._redirect_target(url, location, call)
                if origin_of(next_url) != origin_of(url):
                    # Leaving the origin: credentials stay behind, for good.
                    with_auth = False
                    headers = _without(headers, self._auth.header_names if self._auth else _STRIP)
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method, body = "GET", None
                    headers = _without(headers, _BODY_HEADERS)
                elif body is not None and not call.replayable:
                    raise self._invalid(
                        call.method,
                        call.url,
                        f"cannot replay a streamed body on a {status} redirect",
                    )
                url = next_url
                continue
            if status == 401 and token is not None and not refreshed and call.replayable:
                assert self._tokens is not None
                _discard(raw_response)
                self._tokens.invalidate(token)
                refreshed = True
                continue
            return self._finish(raw_response, call, method, url, elapsed, history)

    def _send(
        self,
        adapter: _SharedAdapter,
        prepared: requests.PreparedRequest,
        call: _Call,
        method: str,
        url: str,
    ) -> requests.Response:
        """Send ``prepared`` once through the pool (body unread); driver errors translated."""
        proxies = get_environ_proxies(url) if self.config.trust_env else self._proxies
        try:
            return adapter.send(
                prepared,
                stream=True,
                timeout=call.timeouts,
                verify=self._verify,
                cert=self._cert,
                proxies=proxies,
            )
        except _DRIVER_ERRORS as exc:
            raise self._translate(exc, call, method, url) from exc

    def _redirect_target(self, url: str, location: str, call: _Call) -> str:
        try:
            target = urllib.parse.urljoin(url, location.strip())
            parts = urllib.parse.urlsplit(target)
        except ValueError:
            parts = None
        if (
            parts is None
            or parts.scheme.lower() not in ("http", "https")
            or not parts.hostname
            or _BAD_URL_CHARS.search(target.replace(" ", "%20"))
        ):
            raise ConnectorError(
                f"{self.name}: {call.method} {redact_url(call.url, self._secret_params)}: "
                "redirect to an invalid or non-HTTP location",
                code=ErrorCode.PROTOCOL_ERROR,
                transient=False,
                connector=self.name,
            )
        return urllib.parse.urlunsplit(parts._replace(fragment=""))

    def _finish(
        self,
        raw_response: requests.Response,
        call: _Call,
        method: str,
        url: str,
        elapsed: datetime.timedelta,
        history: list[Response],
    ) -> Response:
        status = raw_response.status_code
        error = status >= 400
        streamed = call.stream and not error  # error bodies are always read
        response = Response(
            status,
            raw_response.headers,
            None if streamed else self._read(raw_response, call, method, url),
            url=url,
            elapsed=elapsed,
            request_method=method,
            reason=raw_response.reason or "",
            history=history,
            chunks=self._chunks(raw_response, call, method, url) if streamed else None,
            release=(lambda: _release(raw_response, complete=False)) if streamed else None,
        )
        if streamed:
            return response
        if error and call.mode != _RAISE_NONE:
            err = error_for_status(
                status,
                raw_response.headers,
                method=method,
                url=url,
                connector=self.name,
                idempotent=call.idempotent,
                idempotency_key=call.key,
                response=response,
                secret_params=self._secret_params,
            )
            if call.mode == _RAISE_ALL or err.transient:
                raise err
        return response

    def _read(self, raw_response: requests.Response, call: _Call, method: str, url: str) -> bytes:
        raw = raw_response.raw
        limit = self._max_bytes
        length = raw_response.headers.get("Content-Length")
        encoded = "Content-Encoding" in raw_response.headers
        data: bytes
        try:
            if method == "HEAD" or raw_response.status_code in (204, 304):
                data = b""
            elif length is not None and length.isdigit() and not encoded:
                if limit and int(length) > limit:
                    _release(raw_response, complete=False)
                    raise self._too_large(method, url, raw_response.status_code)
                data = raw.read()
            else:
                data = b"".join(self._chunks(raw_response, call, method, url, release=False))
        except ConnectorError:
            _release(raw_response, complete=False)
            raise
        except _DRIVER_ERRORS as exc:
            _release(raw_response, complete=False)
            raise self._translate(exc, call, method, url) from exc
        _release(raw_response, complete=True)
        return data

    def _chunks(
        self,
        raw_response: requests.Response,
        call: _Call,
        method: str,
        url: str,
        *,
        release: bool = True,
    ) -> Iterator[bytes]:
        raw = raw_response.raw
        limit = self._max_bytes
        total = 0
        complete = False
        try:
            while True:
                try:
                    chunk = raw.read(_CHUNK, decode_content=True)
                except _DRIVER_ERRORS as exc:
                    raise self._translate(exc, call, method, url) from exc
                if not chunk:
                    complete = True
                    return
                total += len(chunk)
                if limit and total > limit:
                    raise self._too_large(method, url, raw_response.status_code)
                yield chunk
        finally:
            if release or not complete:
                _release(raw_response, complete=complete)

    def _too_large(self, method: str, url: str, status_code: int) -> ConnectorError:
        return too_large(
            method,
            url,
            self._max_bytes,
            connector=self.name,
            secret_params=self._secret_params,
            status_code=status_code,
        )

    def _translate(self, exc: BaseException, call: _Call, method: str, url: str) -> ConnectorError:
        scrub_secrets(exc, self._query_secrets)
        return translate_exception(
            exc,
            method=method,
            url=url,
            idempotent=call.idempotent,
            connector=self.name,
            timeouts=call.timeouts,
            secret_params=self._secret_params,
        )

    def _fetch_token(
        self, url: str, form: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """POST the OAuth2 token request through the shared pool (no auth, no redirects)."""
        adapter = self._handle
        if adapter is None:
            adapter = self._current_adapter()
        prepared = _prepared(
            "POST",
            url,
            CaseInsensitiveDict(
                {"User-Agent": self.config.user_agent, "Content-Length": str(len(form)), **headers}
            ),
            form,
        )
        call = _Call(
            "POST",
            url,
            prepared.headers,
            form,
            self._timeouts,
            idempotent=True,
            key=False,
            mode=_RAISE_NONE,
            stream=False,
        )
        raw_response = self._send(adapter, prepared, call, "POST", url)
        body = self._read(raw_response, call, "POST", url)
        return raw_response.status_code, raw_response.headers, body


_STRIP = frozenset({"authorization", "cookie", "proxy-authorization"})


def _prepared(
    method: str, url: str, headers: CaseInsensitiveDict[str], body: Any
) -> requests.PreparedRequest:
    """A ``PreparedRequest`` built field by field (no hooks, no session state)."""
    prepared = requests.PreparedRequest()
    prepared.method = method
    prepared.url = url
    prepared.headers = headers
    prepared.body = body
    prepared.hooks = {"response": []}
    return prepared


_BODY_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "content-encoding"}
)


def _without(headers: CaseInsensitiveDict[str], names: frozenset[str]) -> CaseInsensitiveDict[str]:
    kept = headers.copy()
    for name in list(kept):
        if name.lower() in names:
            del kept[name]
    return kept


def _is_form(data: Any) -> bool:
    if isinstance(data, Mapping):
        return True
    return isinstance(data, list) and all(isinstance(i, tuple) and len(i) == 2 for i in data)


def _length(body: Any) -> int | None:
    """The remaining size of a file-like body, or ``None`` when unknown (chunked)."""
    if isinstance(body, io.BytesIO):
        return len(body.getbuffer()) - body.tell()
    fileno = getattr(body, "fileno", None)
    if fileno is not None:
        try:
            size = os.fstat(fileno()).st_size
            return max(0, size - int(body.tell()))
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None
    return None


def _release(raw_response: requests.Response, *, complete: bool) -> None:
    """Give the connection back: reusable when the body was read to the end, else closed."""
    raw = raw_response.raw
    if not complete:
        with contextlib.suppress(Exception):
            raw.close()
    with contextlib.suppress(Exception):
        raw.release_conn()


def _discard(raw_response: requests.Response) -> None:
    """Drop a response we do not return (redirect, 401), keeping the connection if cheap."""
    raw = raw_response.raw
    try:
        length = raw_response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= _DRAIN_LIMIT:
            raw.read(_DRAIN_LIMIT + 1)
            _release(raw_response, complete=True)
            return
    except Exception:  # any failure: just close it
        pass
    _release(raw_response, complete=False)


def _warn_insecure(base_url: str) -> None:
    global _insecure_warned
    with _insecure_lock:
        if _insecure_warned:
            return
        _insecure_warned = True
    logger.warning(
        "http: TLS certificate verification is OFF (skip_verify/verify=False) for %s; "
        "anyone on the network path can read and change the traffic",
        redact_url(base_url),
    )
