"""The HTTP transport: one urllib3 ``PoolManager`` shared by every thread, and its sessions.

``Transport`` is the connector's handle. It is a ``requests`` ``HTTPAdapter``
(so ``session()`` can mount it for zeep and users' own requests code), but
the connector's own requests do not go through requests' prepare/adapter
layer: ``Transport.urlopen`` calls the urllib3 pool of the URL's origin
directly (pools looked up once per origin, TLS settings fixed at connect),
which is what a request costs with raw urllib3. Only a request that a proxy
from the environment applies to (``trust_env``) takes requests' own
``send``.

How it is thread-safe: urllib3's ``PoolManager`` and pools are; the pool
cache here is a dict whose entries are only ever replaced whole.
``requests.Session`` is not thread-safe (psf/requests#2766), so the
connector never shares one: ``session()`` builds a new one per caller on a
``_BorrowedAdapter``.

urllib3's own retries are off (``NO_DRIVER_RETRIES``): the core loop is the
only one. Redirects are followed by the connector, not by urllib3.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import requests
import urllib3.connectionpool
import urllib3.util.retry
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.utils import select_proxy
from urllib3 import BaseHTTPResponse, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from dictamesh_connectors import _fork
from dictamesh_connectors.errors import NotConnectedError
from dictamesh_connectors.http.auth import ConnectorAuth
from dictamesh_connectors.http.config import HTTPConfig, is_sensitive_header
from dictamesh_connectors.http.content import has_header
from dictamesh_connectors.http.errors import mark_not_sent, scrub_secrets
from dictamesh_connectors.http.retry import NO_DRIVER_RETRIES
from dictamesh_connectors.http.urls import origin_of, split_origin

if TYPE_CHECKING:
    from dictamesh_connectors.http.connector import HTTPConnector

__all__ = ["Transport", "discard", "release", "session_for"]

_CHUNK = 64 * 1024
_DRAIN_LIMIT = 64 * 1024  # read at most this much of a redirect/401 body to reuse the connection
_MAX_CACHED_POOLS = 64  # origins remembered by the pool cache, at most (and max_idle_conns)


class _RedactSecrets(logging.Filter):
    """Masks API keys sent in query strings in urllib3's DEBUG request lines.

    urllib3 logs ``"GET /path?key=... HTTP/1.1" 200`` at DEBUG; a connector
    whose API key travels in the query registers the key here so that line
    shows ``***`` instead. The key never reaches a log record: the ``log``
    of urllib3's modules that log request URLs (``connectionpool``,
    ``util.retry``) is wrapped (``_RedactingLog``) so the message is masked
    before the record is made; a filter on a logger would only run after
    ``Logger.handle`` received the record, too late for anything that looks
    at records there. The filter on ``urllib3.connectionpool`` stays, for a
    record made around the wrapper.
    """

    def __init__(self) -> None:
        super().__init__()
        self.secrets: frozenset[str] = frozenset()  # replaced, never mutated: readers need no lock
        self._lock = _fork.create_lock()

    def add(self, secret: str) -> None:
        """Mask ``secret`` from now on; wraps urllib3's loggers once."""
        with self._lock:  # secrets (copy-on-write), the installation
            self.secrets = self.secrets | {secret, urllib.parse.quote_plus(secret)}
            urllib3_logger = logging.getLogger("urllib3.connectionpool")
            if self not in urllib3_logger.filters:
                urllib3_logger.addFilter(self)
            for module in (urllib3.connectionpool, urllib3.util.retry):
                current = getattr(module, "log", None)
                if isinstance(current, logging.Logger):  # not wrapped yet
                    setattr(module, "log", _RedactingLog(current, self))  # noqa: B010

    def mask(self, message: str) -> str:
        """``message`` with every registered secret as ``***``."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            message = message.replace(secret, "***")
        return message

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets
        if secrets:
            message = record.getMessage()
            if any(secret in message for secret in secrets):
                record.msg, record.args = self.mask(message), ()
        return True


class _RedactingLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """urllib3's module logger, masking registered secrets before a record is made."""

    def __init__(self, logger: logging.Logger, secrets: _RedactSecrets) -> None:
        super().__init__(logger, {})
        self._secrets = secrets

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        secrets = self._secrets.secrets
        if secrets:
            try:
                text = str(msg) % args if args else str(msg)
            except Exception:  # leave a message that does not format to logging
                text = None
            if text is not None and any(secret in text for secret in secrets):
                msg, args = self._secrets.mask(text), ()
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1  # urllib3's line, not ours
        self.logger.log(level, msg, *args, **kwargs)


redactor = _RedactSecrets()
"""The process-wide filter on urllib3's logger (see ``_RedactSecrets``)."""


class _HTTPConnection(HTTPConnection):
    """urllib3's connection, marking a failure to connect as "nothing was sent"."""

    def connect(self) -> None:
        try:
            super().connect()
        except Exception as exc:
            mark_not_sent(exc)
            raise


class _HTTPSConnection(_HTTPConnection, HTTPSConnection):
    """urllib3's TLS connection, marking a failed connect or handshake as "nothing was sent".

    urllib3 2.x raises the same ``SSLError`` for a handshake that failed and
    for a TLS record that broke while the response was read (after the
    request ran). Only ``connect()`` runs before a byte of the request is
    written, so only its failures are marked (see ``errors.mark_not_sent``).
    ``_HTTPConnection.connect`` does it, around ``HTTPSConnection.connect``
    (the next class in the MRO); every other attribute is ``HTTPSConnection``'s.
    """


def _pool_classes(pool_timeout: float | None) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pool classes whose connections mark a failed connect (see ``_HTTPSConnection``).

    With ``pool_timeout``, their ``urlopen`` waits at most that long for a
    connection: ``requests`` never passes ``pool_timeout``, so with
    ``block=True`` a full pool would otherwise wait forever in a ``session()``.
    """

    class MarkingHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = _HTTPConnection

    class MarkingHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPSConnection

    if pool_timeout is None:
        return {"http": MarkingHTTPConnectionPool, "https": MarkingHTTPSConnectionPool}

    class TimedHTTPConnectionPool(MarkingHTTPConnectionPool):
        def urlopen(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("pool_timeout") is None:
                kwargs["pool_timeout"] = pool_timeout
            return super().urlopen(*args, **kwargs)

    class TimedHTTPSConnectionPool(MarkingHTTPSConnectionPool):
        def urlopen(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("pool_timeout") is None:
                kwargs["pool_timeout"] = pool_timeout
            return super().urlopen(*args, **kwargs)

    return {"http": TimedHTTPConnectionPool, "https": TimedHTTPSConnectionPool}


class Transport(HTTPAdapter):
    """The connector's handle: one urllib3 pool manager for every thread.

    Thread safety: shared by all threads of a connector; ``urlopen`` keeps
    no per-request state.

    Args:
        config: Pool sizes, blocking, ``pool_timeout``, ``trust_env``.
        verify: requests' ``verify`` (``False``, ``True`` or a CA bundle path).
        cert: requests' ``cert`` (a path or ``(cert, key)``).
        base_url: The connector's base URL (its pool is found without parsing).
    """

    def __init__(
        self,
        config: HTTPConfig,
        *,
        verify: bool | str,
        cert: tuple[str, str] | str | None,
        base_url: str,
    ) -> None:
        self._dm_block = config.pool_block or config.max_conns_per_host > 0
        self._dm_pool_timeout = config.pool_timeout
        maxsize = config.max_conns_per_host or config.max_idle_conns_per_host
        super().__init__(
            pool_connections=config.max_idle_conns,
            pool_maxsize=maxsize,
            pool_block=self._dm_block,
            max_retries=NO_DRIVER_RETRIES,
        )
        self.verify = verify
        self.cert = cert
        self._trust_env = config.trust_env
        self._pool_timeout = config.pool_timeout if self._dm_block else None
        self._base_prefix = split_origin(base_url)[0]
        self._pools: dict[str, HTTPConnectionPool] = {}  # replaced whole, never mutated
        self._max_pools = min(_MAX_CACHED_POOLS, config.max_idle_conns)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _pool_classes(
            self._dm_pool_timeout if block else None
        )

    def urlopen(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
    ) -> BaseHTTPResponse:
        """Send one request through the pool; the response body is left unread.

        Raises:
            urllib3.exceptions.HTTPError, requests.RequestException, OSError:
                Whatever the driver raises (the connector translates it).
        """
        prefix = self._base_prefix
        n = len(prefix)
        if url.startswith(prefix) and (len(url) == n or url[n] in "/?"):
            target = url[n:] or "/"
            if target[0] == "?":
                target = "/" + target
        else:
            prefix, target = split_origin(url)
        if self._trust_env:
            proxies = requests.utils.get_environ_proxies(url)
            if proxies and select_proxy(url, proxies):
                return self._send_via_proxy(method, url, headers, body, timeout, proxies)
        pool = self._pools.get(prefix)
        if pool is None or pool.pool is None:  # new origin, or its pool was closed
            pool = self._pool(prefix)
        return pool.urlopen(
            method,
            target,
            body=body,
            headers=headers,
            retries=NO_DRIVER_RETRIES,
            redirect=False,
            assert_same_host=False,
            timeout=timeout,
            pool_timeout=self._pool_timeout,  # type: ignore[arg-type]  # float is fine
            release_conn=False,
            chunked=not (body is None or has_header(headers, "Content-Length")),
            preload_content=False,
            decode_content=False,
        )

    def close(self) -> None:
        """Close the pools and their idle connections (responses in flight finish first)."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()
        super().close()

    def _pool(self, prefix: str) -> HTTPConnectionPool:
        """The pool for ``scheme://netloc``, with requests' TLS settings (shared with sessions)."""
        probe = requests.PreparedRequest()
        probe.url = prefix + "/"
        pool = cast(
            HTTPConnectionPool,
            self.get_connection_with_tls_context(probe, self.verify, cert=self.cert),
        )
        self.cert_verify(pool, probe.url, self.verify, self.cert)  # type: ignore[no-untyped-call]
        pools = self._pools if len(self._pools) < self._max_pools else {}
        self._pools = {**pools, prefix: pool}
        return pool

    def _send_via_proxy(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: Any,
        timeout: Timeout,
        proxies: Mapping[str, str],
    ) -> BaseHTTPResponse:
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = url
        prepared.headers = requests.structures.CaseInsensitiveDict(headers)
        prepared.body = body
        prepared.hooks = {"response": []}
        response = self.send(
            prepared,
            stream=True,
            timeout=timeout,  # type: ignore[arg-type]  # requests passes a Timeout through
            verify=self.verify,
            cert=self.cert,
            proxies=proxies,
        )
        raw: BaseHTTPResponse = response.raw
        return raw


def release(raw: BaseHTTPResponse, *, complete: bool) -> None:
    """Give the connection back: reusable when the body was read to the end, else closed."""
    if not complete:
        with contextlib.suppress(Exception):
            raw.close()
    try:  # noqa: SIM105 - contextlib.suppress costs more, on every request
        raw.release_conn()
    except Exception:
        pass


def discard(raw: BaseHTTPResponse) -> None:
    """Drop a response we do not return (redirect, 401), keeping the connection if cheap."""
    try:
        length = raw.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= _DRAIN_LIMIT:
            raw.read(_DRAIN_LIMIT + 1)
            release(raw, complete=True)
            return
    except Exception:  # any failure: just close it
        pass
    release(raw, complete=False)


class _BorrowedAdapter(BaseAdapter):
    """What ``session()`` mounts: sends through the connector's transport.

    ``close()`` does nothing, so closing a session never closes the shared
    pool under other threads. Default timeouts and the rate limit apply.
    """

    def __init__(self, connector: HTTPConnector, transport: Transport) -> None:
        super().__init__()
        self._connector = connector
        self._transport = transport

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        connector = self._connector
        if connector._handle is not self._transport:
            raise NotConnectedError(
                "http: the connector behind this session was disconnected", connector="http"
            )
        if timeout is None:
            timeout = connector._timeouts
        if connector._limiter is not None:
            connector._limiter.acquire()
        limit = connector._max_bytes
        try:
            response = self._transport.send(
                request,
                stream=stream or bool(limit),
                timeout=timeout,
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            if limit and not stream:
                self._read_bounded(response, limit)
        except Exception as exc:
            # requests' exceptions carry the PreparedRequest (its credential
            # headers), and their messages the URL, an API key sent in the
            # query included: mask both in the whole chain before it leaves.
            _mask_requests(exc, connector.config.sensitive_headers)
            if connector._query_secrets:
                scrub_secrets(exc, connector._query_secrets)
            raise
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


def _mask_requests(exc: BaseException, marked: frozenset[str]) -> None:
    """Replace the ``request`` of every exception in ``exc``'s chain by a copy with
    its credential headers (``is_sensitive_header``) as ``***``."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < 50:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        request = getattr(current, "request", None)
        if isinstance(request, requests.PreparedRequest) and request.headers:
            masked = request.copy()
            masked.headers = requests.structures.CaseInsensitiveDict(
                {
                    name: "***" if is_sensitive_header(name, marked) else value
                    for name, value in request.headers.items()
                }
            )
            with contextlib.suppress(AttributeError, TypeError):
                current.request = masked  # type: ignore[attr-defined]
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [e for e in linked if isinstance(e, BaseException)]


class _ConnectorSession(requests.Session):
    """A ``requests.Session`` that strips every credential on cross-origin redirects.

    The auth (``ConnectorAuth.strip``) and every header ``is_sensitive_header``
    recognises or the config marks (``sensitive_headers``), as the connector's
    own redirects do.
    """

    _dm_auth: ConnectorAuth | None = None
    _dm_sensitive: frozenset[str] = frozenset()  # HTTPConfig.sensitive_headers
    _dm_keep = "idempotency-key"  # the configured Idempotency-Key header follows

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """requests' target, but a ``Location`` that is not UTF-8 is percent-encoded.

        requests decodes the header as UTF-8 and lets a ``UnicodeDecodeError``
        escape; a server's bytes must never crash the client.
        """
        if resp.is_redirect and "location" in resp.headers:
            raw = resp.headers["location"].encode("latin-1", "replace")
            if not _decodes(raw):
                return urllib.parse.quote(raw, safe="/:?#[]@!$&'()*+,;=%~")
        return super().get_redirect_target(resp)

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        old_url = response.request.url if response.request is not None else None
        if (
            old_url
            and prepared_request.url
            and origin_of(old_url) != origin_of(prepared_request.url)
        ):
            if self._dm_auth is not None:
                self._dm_auth.strip(prepared_request)
            for name in list(prepared_request.headers):
                if is_sensitive_header(name, self._dm_sensitive, keep=self._dm_keep):
                    del prepared_request.headers[name]
        super().rebuild_auth(prepared_request, response)  # type: ignore[no-untyped-call]


def _decodes(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def session_for(
    connector: HTTPConnector,
    transport: Transport,
    *,
    headers: Mapping[str, str],
    auth: ConnectorAuth | None,
) -> requests.Session:
    """A new ``requests.Session`` sending through ``transport`` (see ``HTTPConnector.session``)."""
    session = _ConnectorSession()
    session.adapters.clear()
    borrowed = _BorrowedAdapter(connector, transport)
    session.mount("https://", borrowed)
    session.mount("http://", borrowed)
    session.headers = requests.structures.CaseInsensitiveDict(headers)
    session.verify = transport.verify
    session.cert = transport.cert
    session.trust_env = connector.config.trust_env
    session.max_redirects = connector.config.max_redirects
    session.auth = auth
    session._dm_auth = auth
    session._dm_sensitive = connector.config.sensitive_headers
    session._dm_keep = connector.config.idempotency_header.lower()
    return session
