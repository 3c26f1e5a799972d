"""``HTTPConnector``: a thread-safe HTTP client over one shared urllib3 pool.

The connector layer: lifecycle, the verbs, and one attempt of a request as
named steps (``_perform``: send a hop, follow a redirect, resend after an
OAuth2 401, finish). The layers under it each have their module:

* ``transport``: the pool manager, its per-origin pools, ``session()``;
* ``content``: ``encode_body(request) -> (headers, body)``;
* ``urls``: resolving paths, the host allow-list, redirect targets, redaction.

How it is thread-safe: every request is built from immutable config plus
the call's arguments (a fresh header dict, a ``_Call``); only the urllib3
pool, the OAuth2 token cache and the rate-limit bucket are shared, each
with its own small lock held only for memory updates.

Retries run in the core loop (``retry_call``); urllib3's own retries are off
(``Retry(0, read=False)``) so they never stack. Redirects are followed here,
not by urllib3, so credentials can be dropped when a hop leaves the origin.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import errno
import logging
import math
import os
import random
import re
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, BinaryIO

import requests
from urllib3 import BaseHTTPResponse, Timeout

from dictamesh_connectors import _fork, observability
from dictamesh_connectors._convert import check_timeout
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    build_error,
    rule_for,
)
from dictamesh_connectors.http.auth import ConnectorAuth, OAuth2TokenSource
from dictamesh_connectors.http.config import (
    AuthType,
    HTTPConfig,
    check_header,
    is_sensitive_header,
)
from dictamesh_connectors.http.content import (
    BODY_HEADERS,
    encode_body,
    find_header,
    get_header,
    has_header,
    is_form,
    merge_content_headers,
    set_header,
    without_headers,
)
from dictamesh_connectors.http.errors import (
    HTTPStatusError,
    InvalidRequestError,
    Translating,
    error_for_status,
    invalid_request,
    protocol_error,
    too_large,
)
from dictamesh_connectors.http.models import Request, Response, _response
from dictamesh_connectors.http.ratelimit import TokenBucket
from dictamesh_connectors.http.retry import IDEMPOTENT_METHODS
from dictamesh_connectors.http.transport import Transport, discard, redactor, release, session_for
from dictamesh_connectors.http.urls import (
    UnsafeURLError,
    URLResolver,
    origin_of,
    redact_url,
    redirect_target,
    split_origin,
)
from dictamesh_connectors.observability_pools import urllib3_pool_stats
from dictamesh_connectors.retry import RetryPolicy

__all__ = ["HTTPConnector"]

logger = logging.getLogger(__name__)

_METHOD = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_COMMON_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_WITH_EMPTY_BODY = frozenset({"POST", "PUT", "PATCH"})
_BODILESS = _COMMON_METHODS - _WITH_EMPTY_BODY  # sent without Content-Length when bodiless
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_STRIP = frozenset({"authorization", "cookie", "proxy-authorization"})
_CHUNK = 64 * 1024
_insecure_warned = False
_insecure_lock = _fork.create_lock()


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
        "resendable",
        "stream",
        "timeout",
        "timeouts",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: Any,
        timeouts: tuple[float, float],
        timeout: Timeout,
        idempotent: bool,
        key: bool,
        mode: _Raise,
        stream: bool,
        resendable: bool | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeouts = timeouts
        self.timeout = timeout
        self.idempotent = idempotent
        # Whether the caller can send this request again safely: what an
        # error's maybe_applied answers. Not so for a key the connector made
        # up (auto_idempotency_key): the caller's next call gets a new one.
        self.resendable = idempotent if resendable is None else resendable
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


class _Hop(Translating):
    """Where one attempt is: the request of the current hop and what the attempt learnt.

    It is also the attempt's translation context (``with hop:``): a driver
    error names the hop it happened on.
    """

    __slots__ = ("body", "headers", "history", "hops", "refreshed", "with_auth")

    def __init__(self, call: _Call, connector: HTTPConnector, with_auth: bool) -> None:
        # Translating's fields, set here: this runs for every request.
        self.method = call.method
        self.url = call.url
        self.idempotent = call.resendable
        self.connector = connector.name
        self.timeouts = call.timeouts
        self.secret_params = connector._secret_params
        self.secrets = connector._query_secrets
        self.headers = call.headers
        self.body = call.body
        self.with_auth = with_auth  # False for good once a redirect left the origin
        self.refreshed = False  # the OAuth2 token was renewed after a 401 once
        self.hops = 0
        self.history: list[Response] = []


class _Raise(enum.Enum):
    """_Call.mode: which statuses raise inside an attempt."""

    ALL = "all"  # every status >= 400 (raise_for_status=True)
    TRANSIENT = "transient"  # only retryable ones, so the loop can retry (raise_for_status=False)
    NONE = "none"  # never (ping)


# Bound once: looking an Enum member up on its class is a descriptor call.
_RAISE_ALL, _RAISE_TRANSIENT, _RAISE_NONE = _Raise.ALL, _Raise.TRANSIENT, _Raise.NONE


class HTTPConnector(Connector[HTTPConfig, Transport]):
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
        self._urls = URLResolver(config.base_url or "", config.allowed_hosts)
        self._base = self._urls.base
        self._origin = self._urls.origin
        self._base_prefix = split_origin(self._base)[0]
        self._timeouts = (config.connect_timeout, config.timeout)
        self._timeout = Timeout(connect=config.connect_timeout, read=config.timeout)
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
            _warn_insecure(self._base)
        headers = {
            "User-Agent": config.user_agent,
            "Accept-Encoding": "gzip, deflate",
            "Accept": "*/*",
            "Connection": "keep-alive",
        }
        for name, value in config.headers:
            set_header(headers, name, value)
        self._default_headers = headers  # never mutated: each request copies it
        self._keyed_defaults = has_header(headers, config.idempotency_header)
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
        # Every URL shown goes through the core redact_url with these names.
        self._secret_params: tuple[str, ...] = tuple(sorted(config.secret_query_params()))
        # The API key's value when it travels in the query: scrubbed from urllib3's
        # DEBUG lines and from the driver exceptions kept as __cause__.
        self._query_secrets: tuple[str, ...] = ()
        in_query = config.auth_type is AuthType.APIKEY and creds.api_key_in == "query"
        if in_query and creds.api_key:
            self._query_secrets = (creds.api_key.get_secret_value(),)
            redactor.add(creds.api_key.get_secret_value())
        self._max_bytes = config.max_response_bytes

    # ------------------------------------------------------------------ hooks

    def _open(self) -> Transport:
        self._check_tls_files()
        return Transport(self.config, verify=self._verify, cert=self._cert, base_url=self._base)

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

    def _close(self, handle: Transport, timeout: float | None) -> None:
        handle.close()

    def _on_connection_lost(self, handle: Transport, error: ConnectorError) -> None:
        """Nothing to do: urllib3 drops a broken connection and opens a new one."""

    def _pool_stats(self, handle: Transport) -> dict[str, Any]:
        # The transport's own per-origin cache of urllib3 pools (replaced whole, never mutated).
        return urllib3_pool_stats(handle._pools.values())

    def _ping(self, handle: Transport, timeout: float | None) -> None:
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
            Timeout(connect=timeouts[0], read=timeouts[1]),
            idempotent=True,
            key=False,
            mode=_Raise.NONE,
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
        return self._request(
            request.method,
            request.path,
            request.query,
            request.headers,
            request,
            request.timeout,
            request.idempotency_key,
            request.idempotent,
            raise_for_status=raise_for_status,
            stream=stream,
            retry=retry,
        )

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
        if data is not None and not is_form(data):
            body, data = data, None
        content = None
        if body is not None or json is not None or data is not None or files is not None:
            content = Request(method, path, body=body, json=json, data=data, files=files)
        return self._request(
            method,
            path,
            params,
            headers,
            content,
            timeout,
            idempotency_key,
            idempotent,
            raise_for_status=raise_for_status,
            stream=stream,
            retry=retry,
        )

    def _request(
        self,
        method: object,
        path: object,
        query: Any,
        extra_headers: Mapping[str, str] | None,
        content: Request | None,
        timeout: float | tuple[float, float] | None,
        idempotency_key: str | None,
        idempotent: bool | None,
        *,
        raise_for_status: bool,
        stream: bool,
        retry: RetryPolicy | None,
    ) -> Response:
        """``execute`` and ``request``: check and build the call, run it in the retry loop.

        ``content`` holds the body fields (``None``: no body).
        """
        # The common case inline (a known method, a cached path, no extra
        # headers, no body, the default timeouts): each step is otherwise a call.
        if type(method) is not str or method not in _COMMON_METHODS:
            method = self._check_method(method)
        url = self._urls.resolved.get(path) if not query and type(path) is str else None
        if url is None:
            url = self._resolve(path, query, method)
        if extra_headers:
            headers = self._headers(extra_headers, method, url)
        elif content is None and idempotency_key is None and method in _BODILESS:
            # Nothing below adds a header (no body, no key: auto keys are for
            # POST/PATCH): the defaults are sent as they are. No one mutates a
            # request's headers after this (auth and tracing add to copies).
            headers = self._default_headers
        else:
            headers = dict(self._default_headers)
        key_header = self.config.idempotency_header
        # Whether a key may be there at all (looking it up costs a scan of the headers).
        maybe_keyed = bool(extra_headers) or self._keyed_defaults
        auto_key = False
        if idempotency_key is not None:
            _, key = self._check_header(key_header, idempotency_key, method, url)
            set_header(headers, key_header, key)
            maybe_keyed = True
        elif self.config.auto_idempotency_key and method in ("POST", "PATCH"):
            if not has_header(headers, key_header):
                headers[key_header] = str(uuid.uuid4())
                auto_key = True
            maybe_keyed = True
        if content is None:
            body = None
            if method in _WITH_EMPTY_BODY:
                set_header(headers, "Content-Length", "0")
        else:
            body = self._body(method, url, headers, content)
        key_value = get_header(headers, key_header) if maybe_keyed else None
        resendable = idempotent
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS or bool(key_value)
            resendable = idempotent and not auto_key
        if timeout is None:
            timeouts, urllib3_timeout = self._timeouts, self._timeout
        else:
            timeouts, urllib3_timeout = self._call_timeouts(timeout, method, url)
        call = _Call(  # positional: keywords to a class call cost CPython a dict
            method,
            url,
            headers,
            body,
            timeouts,
            urllib3_timeout,
            idempotent,
            bool(key_value),
            _RAISE_ALL if raise_for_status else _RAISE_TRANSIENT,
            stream,
            resendable,
        )
        policy = (retry or self.config.retry) if call.replayable else RetryPolicy.no_retry()
        # Only a query can hold a secret (URLs with credentials are refused).
        shown = url if "?" not in url and "#" not in url else redact_url(url, self._secret_params)
        try:
            return self._run(
                lambda transport: self._perform(transport, call),
                idempotent=idempotent,
                retry=policy,
                description=f"{method} {shown}",
            )
        except HTTPStatusError as err:
            if not raise_for_status and err.response is not None:
                return err.response
            raise

    def get(self, path: str = "", **kwargs: Any) -> Response:
        """``request("GET", path, **kwargs)``. Raises as ``execute``."""
        if kwargs:
            return self.request("GET", path, **kwargs)
        # A bare GET, the most common call: request()'s defaults, one call less.
        return self._request(
            "GET",
            path,
            None,
            None,
            None,
            None,
            None,
            None,
            raise_for_status=True,
            stream=False,
            retry=None,
        )

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
            ``ConnectorError`` when writing the destination fails (an
            ``OSError``, classified by errno as the File connector does:
            ``NOT_FOUND`` for a missing directory, ``PERMISSION_DENIED``,
            ``RESOURCE_EXHAUSTED`` for a full disk...; ``details["errno"]``).
        """
        written = 0
        with self.stream("GET", path, **kwargs) as response:
            try:
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
            except OSError as exc:  # writing the destination (reading raises ConnectorError)
                cause, error = exc, self._write_error(response, exc)
            else:
                return written
        raise error from cause  # once the response is closed

    def _write_error(self, response: Response, exc: OSError) -> ConnectorError:
        """``download``'s error for a destination that cannot be written (no path shown)."""
        from dictamesh_connectors.file.errors import ERRNO_RULES

        rule = ERRNO_RULES.get(exc.errno or 0) or rule_for(ErrorCode.EXEC_FAILED, False)
        name = errno.errorcode.get(exc.errno or 0, "")
        return build_error(
            f"{self.name}: download {response.shown_url}: cannot write the destination: "
            f"{exc.strerror or type(exc).__name__}",
            rule,
            connector=self.name,
            details={"errno": name} if name else None,
        )

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

        pages: Iterator[Response] = (paginator or LinkHeader()).pages(self.get, path, **kwargs)
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
        transport = self._current_transport()
        return session_for(self, transport, headers=self._default_headers, auth=self._auth)

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

    def _current_transport(self) -> Transport:
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
        return invalid_request(
            f"{self.name}: {method} {redact_url(url, self._secret_params)}: {what}",
            connector=self.name,
        )

    def _check_method(self, method: object) -> str:
        if method in _COMMON_METHODS:
            return method
        if not isinstance(method, str) or not _METHOD.fullmatch(method):
            raise invalid_request(
                f"{self.name}: invalid HTTP method {method!r:.30}", connector=self.name
            )
        return method.upper()

    def _resolve(self, path: object, query: Any, method: str) -> str:
        if not isinstance(path, str):
            raise invalid_request(
                f"{self.name}: {method}: path must be a string, got {type(path).__name__}",
                connector=self.name,
            )
        try:
            return self._urls.resolve(path, query)
        except UnsafeURLError as err:
            raise self._invalid(method, err.shown, err.reason) from None

    def _same_origin(self, url: str) -> bool:
        """Whether ``url`` is on ``base_url``'s origin (without parsing it when it obviously is)."""
        prefix = self._base_prefix
        n = len(prefix)
        if url.startswith(prefix) and (len(url) == n or url[n] in "/?#"):
            return True
        return origin_of(url) == self._origin

    def _check_header(self, name: object, value: object, method: str, url: str) -> tuple[str, str]:
        try:
            return check_header(name, value)
        except InvalidConfigError as err:
            raise self._invalid(method, url, err.message) from None

    def _headers(self, extra: Mapping[str, str] | None, method: str, url: str) -> dict[str, str]:
        headers = dict(self._default_headers)
        if extra:
            if not isinstance(extra, Mapping):
                raise self._invalid(method, url, "headers must be a mapping")
            for name, value in extra.items():
                if value is None:
                    key = find_header(headers, name) if isinstance(name, str) else None
                    if key is not None:
                        del headers[key]
                    continue
                name, value = self._check_header(name, value, method, url)
                set_header(headers, name, value)
        return headers

    def _body(self, method: str, url: str, headers: dict[str, str], content: Request | None) -> Any:
        if content is None:
            if method in _WITH_EMPTY_BODY:
                set_header(headers, "Content-Length", "0")
            return None
        try:
            encoded, body = encode_body(content)
        except ValueError as exc:
            raise self._invalid(method, url, str(exc)) from None
        if encoded:
            merge_content_headers(headers, encoded, body)
        return body

    def _call_timeouts(
        self, timeout: Any, method: str, url: str
    ) -> tuple[tuple[float, float], Timeout]:
        """A per-call ``timeout=`` (seconds, ``inf`` = no limit, or ``(connect, read)``).

        Checked with the core ``check_timeout`` before any I/O.

        Raises:
            TypeError: Not a number (or a pair of numbers).
            InvalidRequestError: NaN, zero, negative, or above the core maximum.
        """
        if timeout is None:
            return self._timeouts, self._timeout
        if isinstance(timeout, tuple):
            if len(timeout) != 2:
                raise self._invalid(method, url, "timeout must be seconds or (connect, read)")
            pair = timeout
        else:
            pair = (None, timeout)
        checked: list[float | None] = []
        for name, value in zip(("connect timeout", "timeout"), pair, strict=True):
            if value is None and name == "connect timeout":
                checked.append(self._timeouts[0])
                continue
            try:
                checked.append(check_timeout(value, name=name, positive=True))
            except InvalidConfigError as err:
                raise self._invalid(method, url, err.message) from None
        connect, read = checked
        # For messages: inf is "no limit" (urllib3's None).
        shown = (math.inf if connect is None else connect, math.inf if read is None else read)
        return shown, Timeout(connect=connect, read=read)

    def _translating(self, call: _Call, method: str, url: str) -> Translating:
        """The translation context of a request (``Translating``) with this connector's secrets."""
        return Translating(
            method=method,
            url=url,
            idempotent=call.resendable,
            connector=self.name,
            timeouts=call.timeouts,
            secret_params=self._secret_params,
            secrets=self._query_secrets,
        )

    # ----------------------------------------------------- one attempt, step by step

    def _perform(self, transport: Transport, call: _Call) -> Response:
        """One attempt: send, follow redirects, resend once on an OAuth2 401, read.

        Raises:
            ConnectorError: Translated driver errors, error statuses (as
                ``call.mode`` says), too many or unsafe redirects.
        """
        # Positional: keywords to a class call cost CPython a dict.
        hop = _Hop(call, self, self._auth is not None and self._same_origin(call.url))
        with hop:
            while True:
                raw, token, elapsed = self._send_hop(transport, call, hop)
                status = raw.status
                if status in _REDIRECTS and self.config.follow_redirects:
                    location = raw.headers.get("Location")
                    if location:
                        self._follow_redirect(raw, call, hop, location, elapsed)
                        continue
                if status == 401 and token is not None and not hop.refreshed and call.replayable:
                    self._forget_refused_token(raw, hop, token)
                    continue
                return self._finish(raw, call, hop, elapsed)

    def _send_hop(
        self, transport: Transport, call: _Call, hop: _Hop
    ) -> tuple[BaseHTTPResponse, str | None, float]:
        """Send the current hop (credentials added on the origin); body unread.

        Returns:
            The raw response, the OAuth2 token used (or ``None``) and the
            seconds until its headers arrived.
        """
        headers, url, token = hop.headers, hop.url, None
        if hop.with_auth and self._auth is not None:
            headers = dict(headers)
            url, token = self._auth.add_to(headers, url)
        if observability.propagator is not None:  # tracing on: W3C traceparent
            if headers is self._default_headers:  # shared: a propagator may add in place
                headers = dict(headers)
            headers = observability.propagator(self, f"{hop.method} {hop.url}", headers)
        if self._limiter is not None:
            self._limiter.acquire()
        if call.body_pos is not None:
            call.rewind()
        started = time.perf_counter()
        raw = transport.urlopen(hop.method, url, headers, hop.body, call.timeout)
        elapsed = time.perf_counter() - started
        if observability.responded is not None:  # tracing on: the span's status code
            observability.responded(self, raw.status)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %d (%.1f ms)",
                hop.method,
                redact_url(hop.url, self._secret_params),
                raw.status,
                elapsed * 1000,
            )
        return raw, token, elapsed

    def _follow_redirect(
        self, raw: BaseHTTPResponse, call: _Call, hop: _Hop, location: str, elapsed: float
    ) -> None:
        """Move ``hop`` to the redirect's target, dropping credentials when it leaves the origin.

        Raises:
            ConnectorError: ``PROTOCOL_ERROR`` past ``max_redirects`` or for
                a non-HTTP location; ``InvalidRequestError`` when a streamed
                body would have to be sent again.
        """
        discard(raw)
        status = raw.status
        if hop.hops >= self.config.max_redirects:
            raise self._protocol_error(call, f"more than {self.config.max_redirects} redirects")
        hop.hops += 1
        hop.history.append(
            Response(
                status,
                raw.headers,
                b"",
                url=hop.url,
                elapsed=datetime.timedelta(seconds=elapsed),
                request_method=hop.method,
                reason=raw.reason or "",
                secret_params=self._secret_params,
            )
        )
        try:
            next_url = redirect_target(hop.url, location)
        except UnsafeURLError as err:
            raise self._protocol_error(call, err.reason) from None
        if origin_of(next_url) != origin_of(hop.url):
            # Leaving the origin: credentials stay behind, for good.
            hop.with_auth = False
            hop.headers = self._without_credentials(hop.headers)
        if (status == 303 and hop.method != "HEAD") or (
            status in (301, 302) and hop.method == "POST"
        ):
            hop.method, hop.body = "GET", None
            hop.headers = without_headers(hop.headers, BODY_HEADERS)
        elif hop.body is not None and not call.replayable:
            raise self._invalid(
                call.method, call.url, f"cannot replay a streamed body on a {status} redirect"
            )
        hop.url = next_url

    def _without_credentials(self, headers: dict[str, str]) -> dict[str, str]:
        """``headers`` without any credential: what follows a redirect to another origin.

        Drops the auth headers, every header ``is_sensitive_header`` calls a
        credential (``X-Auth-Token``, ``Private-Token``, ``Cookie``, ...) and
        those named in ``sensitive_headers``; the Idempotency-Key stays.
        """
        names = self._auth.header_names if self._auth else _STRIP
        marked = self.config.sensitive_headers
        keep = self.config.idempotency_header.lower()
        return {
            name: value
            for name, value in headers.items()
            if name.lower() not in names and not is_sensitive_header(name, marked, keep=keep)
        }

    def _forget_refused_token(self, raw: BaseHTTPResponse, hop: _Hop, token: str) -> None:
        """A 401 with an OAuth2 token: drop that token, so the resend fetches a new one."""
        assert self._tokens is not None
        discard(raw)
        self._tokens.invalidate(token)
        hop.refreshed = True

    def _protocol_error(self, call: _Call, what: str) -> ConnectorError:
        return protocol_error(
            f"{self.name}: {call.method} {redact_url(call.url, self._secret_params)}: {what}",
            connector=self.name,
        )

    def _finish(self, raw: BaseHTTPResponse, call: _Call, hop: _Hop, elapsed: float) -> Response:
        """The response of the last hop: body read (or left to stream), status checked."""
        method, url = hop.method, hop.url
        status = raw.status
        error = status >= 400
        streamed = call.stream and not error  # error bodies are always read
        response = _response(
            status,
            raw.headers,
            None if streamed else self._read(raw, method, url),
            url,
            elapsed,
            method,
            raw.reason or "",
            hop.history,
            self._chunks(raw, call, method, url) if streamed else None,
            (lambda: release(raw, complete=False)) if streamed else None,
            self._secret_params,
        )
        if streamed:
            return response
        if error and call.mode is not _RAISE_NONE:
            err = error_for_status(
                status,
                raw.headers,
                method=method,
                url=url,
                connector=self.name,
                idempotent=call.resendable,
                has_idempotency_key=call.key,
                response=response,
                secret_params=self._secret_params,
            )
            if call.mode is _RAISE_ALL or err.transient:
                raise err
        return response

    def _read(self, raw: BaseHTTPResponse, method: str, url: str) -> bytes:
        """The whole body, at most ``max_response_bytes``; the connection goes back to the pool.

        Raises:
            ConnectorError: ``PAYLOAD_TOO_LARGE``.
            urllib3.exceptions.HTTPError, OSError: Reading failed (the caller
                translates it); the connection is closed.
        """
        limit = self._max_bytes
        headers = raw.headers
        data: bytes
        try:
            if method == "HEAD" or raw.status in (204, 304):
                data = b""
            else:
                # urllib3 parsed Content-Length already (None: absent, invalid,
                # or chunked); a header lookup is two Python calls.
                length = raw.length_remaining
                if length is not None and "Content-Encoding" not in headers:
                    if limit and length > limit:
                        raise self._too_large(method, url, raw.status)
                    data = raw.read()
                else:
                    data = b"".join(self._raw_chunks(raw, method, url))
        except BaseException:
            release(raw, complete=False)
            raise
        release(raw, complete=True)
        return data

    def _raw_chunks(self, raw: BaseHTTPResponse, method: str, url: str) -> Iterator[bytes]:
        """The decoded body in chunks, stopping past ``max_response_bytes`` (untranslated)."""
        limit = self._max_bytes
        total = 0
        while True:
            chunk = raw.read(_CHUNK, decode_content=True)
            if not chunk:
                return
            total += len(chunk)
            if limit and total > limit:
                raise self._too_large(method, url, raw.status)
            yield chunk

    def _chunks(self, raw: BaseHTTPResponse, call: _Call, method: str, url: str) -> Iterator[bytes]:
        """A streamed body: chunks read on demand, errors translated, connection released."""
        where = self._translating(call, method, url)
        complete = False
        try:
            chunks = self._raw_chunks(raw, method, url)
            while True:
                with where:
                    chunk = next(chunks, None)
                if chunk is None:
                    complete = True
                    return
                yield chunk
        finally:
            release(raw, complete=complete)

    def _too_large(self, method: str, url: str, status_code: int) -> ConnectorError:
        return too_large(
            method,
            url,
            self._max_bytes,
            connector=self.name,
            secret_params=self._secret_params,
            status_code=status_code,
        )

    def _fetch_token(
        self, url: str, form: bytes, headers: Mapping[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        """POST the OAuth2 token request through the shared pool (no auth, no redirects)."""
        transport = self._handle
        if transport is None:
            transport = self._current_transport()
        sent = {"User-Agent": self.config.user_agent, "Content-Length": str(len(form)), **headers}
        call = _Call(
            "POST",
            url,
            sent,
            form,
            self._timeouts,
            self._timeout,
            idempotent=True,
            key=False,
            mode=_Raise.NONE,
            stream=False,
        )
        with self._translating(call, "POST", url):
            raw = transport.urlopen("POST", url, sent, form, call.timeout)
            body = self._read(raw, "POST", url)
        return raw.status, raw.headers, body


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
