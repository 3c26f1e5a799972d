"""HTTP status codes and requests/urllib3 exceptions -> ``ConnectorError``.

The one place the HTTP connector classifies failures. Two tables: status
codes (``error_for_status``) and transport exceptions
(``translate_exception``). Others (the GraphQL and SOAP clients) reuse both.

Exception tree: one tree under ``ConnectorError`` (what ``HTTPConnector``
raises; every error is built by the core ``build_error``, with the classes
below for HTTP's codes)::

    ConnectorError                      CONNECTION_FAILED (nothing sent), CONNECTION_LOST
    |                                   (maybe sent), RESOURCE_EXHAUSTED (no pooled
    |                                   connection free), PAYLOAD_TOO_LARGE, PROTOCOL_ERROR
    +-- InvalidConfigError              (also a ValueError)
    |   +-- InvalidRequestError         INVALID_REQUEST: bad method, header, URL or body;
    |                                   nothing was sent
    +-- ConnectorTimeoutError           TIMEOUT: connect or read timeout
    |   +-- HTTPTimeoutError            408 Request Timeout (also an HTTPStatusError)
    +-- AuthenticationError             AUTH_FAILED
    |   +-- HTTPAuthenticationError     401 Unauthorized (also an HTTPStatusError)
    +-- HTTPStatusError                 any status >= 400 (``.response``, ``.status_code``);
                                        code from the status table

Status table (``transient`` errors are retried by the connector; the ones
marked *maybe applied* only when the request is idempotent)::

    401            AUTH_FAILED        permanent, hint REFRESH_CREDENTIALS
    403            PERMISSION_DENIED  permanent
    404, 410       NOT_FOUND          permanent
    408            TIMEOUT            transient, Retry-After honoured
    409            CONFLICT           permanent (transient when the request
                                      carried an Idempotency-Key: still running)
    413            PAYLOAD_TOO_LARGE  permanent (transient with Retry-After)
    422            INVALID_INPUT      permanent
    423            LOCK_TIMEOUT       permanent (like every 4xx not listed as transient)
    425            UNAVAILABLE        transient, Retry-After honoured
    429            RATE_LIMITED       transient, Retry-After honoured
    other 4xx      INVALID_REQUEST    permanent
    501, 505       UNSUPPORTED        permanent
    503            UNAVAILABLE        transient, Retry-After honoured
    500, 502, 504, UNAVAILABLE        transient, maybe applied
    other 5xx

Messages name the method and the URL with credentials removed:
``http: GET https://host/path: 503 Service Unavailable``.
"""

from __future__ import annotations

import contextlib
import email.utils
import http
import math
import socket
import ssl
import time
import urllib.parse
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import requests.exceptions as rexc
import urllib3.exceptions as uexc

from dictamesh_connectors.config import redact_url
from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    RetryHint,
    Translator,
    build_error,
    rule_for,
)
from dictamesh_connectors.http.retry import IDEMPOTENT_METHODS

if TYPE_CHECKING:
    from dictamesh_connectors.http.models import Response

__all__ = [
    "DRIVER_ERRORS",
    "HTTPAuthenticationError",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "InvalidRequestError",
    "Translating",
    "error_for_status",
    "invalid_request",
    "mark_not_sent",
    "parse_retry_after",
    "protocol_error",
    "redact_url",
    "scrub_secrets",
    "too_large",
    "translate_exception",
]


class InvalidRequestError(InvalidConfigError):
    """The request is malformed (method, header, URL); nothing was sent.

    Also a ``ValueError`` (through ``InvalidConfigError``), with code
    ``INVALID_REQUEST``.
    """

    default_code = ErrorCode.INVALID_REQUEST


class HTTPStatusError(ConnectorError):
    """The server answered with a status >= 400.

    Attributes:
        response: The ``Response`` (status, headers, body); ``None`` after
            unpickling: the response is not pickled.
        status_code: The HTTP status (also in ``details["status_code"]``).
    """

    default_code = ErrorCode.INVALID_REQUEST
    response: Response | None = None

    @property
    def status_code(self) -> int:
        """The HTTP status code."""
        return int(self.details.get("status_code", 0))


class HTTPAuthenticationError(HTTPStatusError, AuthenticationError):
    """401 Unauthorized: ``except AuthenticationError`` catches it too."""

    default_code = ErrorCode.AUTH_FAILED


class HTTPTimeoutError(HTTPStatusError, ConnectorTimeoutError):
    """408 Request Timeout: ``except ConnectorTimeoutError`` catches it too."""

    default_code = ErrorCode.TIMEOUT


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Parse a ``Retry-After`` header (RFC 9110 section 10.2.3) into seconds.

    Both forms are accepted: delay-seconds (``"120"``; a decimal fraction is
    tolerated) and an HTTP-date (``"Fri, 31 Dec 1999 23:59:59 GMT"``). A
    date in the past gives ``0.0``.

    Args:
        value: The header value, or ``None``.
        now: The current time as a Unix timestamp (for tests); defaults to
            ``time.time()``.

    Returns:
        Seconds to wait (never negative), or ``None`` when the header is
        absent or unparseable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text[0].isdigit():
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds):
            return seconds
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None or when.tzinfo is None:  # RFC 9110 dates are always GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


# status -> (code, transient)
_STATUS_TABLE: dict[int, tuple[ErrorCode, bool]] = {
    401: (ErrorCode.AUTH_FAILED, False),
    403: (ErrorCode.PERMISSION_DENIED, False),
    404: (ErrorCode.NOT_FOUND, False),
    408: (ErrorCode.TIMEOUT, True),
    409: (ErrorCode.CONFLICT, False),
    410: (ErrorCode.NOT_FOUND, False),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, False),
    422: (ErrorCode.INVALID_INPUT, False),
    423: (ErrorCode.LOCK_TIMEOUT, False),  # 4xx: permanent; the caller unlocks
    425: (ErrorCode.UNAVAILABLE, True),
    429: (ErrorCode.RATE_LIMITED, True),
    501: (ErrorCode.UNSUPPORTED, False),
    503: (ErrorCode.UNAVAILABLE, True),
    505: (ErrorCode.UNSUPPORTED, False),
}
_CLIENT_ERROR = (ErrorCode.INVALID_REQUEST, False)
# A 5xx not in the table may come after the server began the work: maybe applied.
_SERVER_ERROR = (ErrorCode.UNAVAILABLE, True)


_STATUS_CLASSES: dict[ErrorCode, type[ConnectorError]] = {
    **dict.fromkeys(ErrorCode, HTTPStatusError),
    ErrorCode.AUTH_FAILED: HTTPAuthenticationError,
    ErrorCode.TIMEOUT: HTTPTimeoutError,
}
"""``build_error``'s classes for statuses: every one is an ``HTTPStatusError``."""

_TRANSPORT_CLASSES: dict[ErrorCode, type[ConnectorError]] = {
    ErrorCode.INVALID_REQUEST: InvalidRequestError,
}
"""``build_error``'s classes for transport failures (the rest: the core's own)."""


def _reason(status_code: int) -> str:
    try:
        return http.HTTPStatus(status_code).phrase
    except ValueError:
        return "Unknown Status"


def error_for_status(
    status_code: int,
    headers: Mapping[str, str] | None,
    *,
    method: str,
    url: str,
    connector: str = "http",
    idempotent: bool | None = None,
    has_idempotency_key: bool = False,
    response: Response | None = None,
    secret_params: Collection[str] = (),
    now: float | None = None,
) -> HTTPStatusError:
    """Build the ``ConnectorError`` for an HTTP error status (see the module table).

    Args:
        status_code: The status, >= 400.
        headers: The response headers (case-insensitive mapping); only
            ``Retry-After`` is read.
        method: The request method (for the message and idempotency).
        url: The request URL; shown redacted.
        connector: Name put on the error and in front of the message.
        idempotent: Whether the request may be repeated; ``None`` decides
            from ``method``. Non-idempotent requests that failed with a
            maybe-processed status (500, 502, 504, ...) get ``maybe_applied``.
        has_idempotency_key: The request carried an Idempotency-Key (a 409 then
            means "the first request is still running": transient).
        response: Attached as ``err.response`` (not pickled).
        secret_params: Query parameter names to redact besides the usual ones.
        now: Unix time for HTTP-date ``Retry-After`` values (tests).

    Returns:
        An ``HTTPStatusError`` (``HTTPAuthenticationError`` for 401,
        ``HTTPTimeoutError`` for 408) with ``details`` holding
        ``status_code``, ``method`` and the redacted ``url``.
    """
    if idempotent is None:
        idempotent = method.upper() in IDEMPOTENT_METHODS
    if status_code in _STATUS_TABLE:
        code, transient = _STATUS_TABLE[status_code]
        maybe = False
    elif status_code >= 500:
        code, transient = _SERVER_ERROR
        maybe = True
    else:
        code, transient = _CLIENT_ERROR
        maybe = False
    retry_after = parse_retry_after(headers.get("Retry-After") if headers else None, now)
    hint: RetryHint | None = None
    if status_code == 401:
        hint = RetryHint.REFRESH_CREDENTIALS
    elif (status_code == 409 and has_idempotency_key) or (
        status_code == 413 and retry_after is not None
    ):
        transient = True
    if not transient:
        retry_after = None
    shown = redact_url(url, secret_params)
    message = f"{connector}: {method} {shown}: {status_code} {_reason(status_code)}"
    err = build_error(
        message,
        rule_for(code, transient, retry_after=retry_after, hint=hint),
        connector=connector,
        retry_after=retry_after,
        maybe_applied=maybe and not idempotent,
        details={"status_code": status_code, "method": method, "url": shown},
        classes=_STATUS_CLASSES,
    )
    assert isinstance(err, HTTPStatusError)
    err.response = response
    return err


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc``, its wrapped reason(s) and causes, outermost first."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        reason = getattr(current, "reason", None)
        nxt = reason if isinstance(reason, BaseException) else None
        if nxt is None and current.args and isinstance(current.args[0], BaseException):
            nxt = current.args[0]
        current = nxt or current.__cause__ or current.__context__
    return seen


def scrub_secrets(exc: BaseException, secrets: Collection[str]) -> None:
    """Replace every secret value in ``exc``'s chain (args, text attributes) with ``***``, in place.

    urllib3 puts the request URL, query string included, into its messages
    (``Max retries exceeded with url: /x?key=...``). When an API key travels
    in the query, the driver exception kept as ``__cause__`` would print it
    in every traceback; this removes it (raw and form-encoded spellings)
    from every exception of the chain.

    Args:
        exc: The driver exception (its reasons and causes are scrubbed too).
        secrets: The secret values to hide; empty does nothing.
    """
    spellings = sorted(
        {s for secret in secrets if secret for s in (secret, urllib.parse.quote_plus(secret))},
        key=len,
        reverse=True,
    )
    if not spellings:
        return

    def clean(value: object) -> object:
        if isinstance(value, str):
            for secret in spellings:
                value = value.replace(secret, "***")
        return value

    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:  # every exception a traceback (or an error tracker) would show
        current = pending.pop()
        if id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        with contextlib.suppress(AttributeError, TypeError):
            current.args = tuple(clean(arg) for arg in current.args)
        # Every text attribute (urllib3 2.x keeps the message in ``_message``
        # besides ``args``), and the URL of the request an exception carries.
        for holder in (current, getattr(current, "request", None)):
            fields = getattr(holder, "__dict__", None)
            if not isinstance(fields, dict):
                continue
            for name, value in list(fields.items()):
                if isinstance(value, str):
                    with contextlib.suppress(AttributeError, TypeError):
                        setattr(holder, name, clean(value))
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += [arg for arg in current.args if isinstance(arg, BaseException)]
        pending += [e for e in linked if isinstance(e, BaseException)]


def _describe(chain: list[BaseException]) -> str:
    """A safe one-line reason: OS error text or SSL reason, never a URL."""
    for exc in chain:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed: {exc.verify_message or exc.reason}"
        if isinstance(exc, ssl.SSLError):
            return f"TLS error: {exc.reason or type(exc).__name__}"
    for exc in reversed(chain):
        if isinstance(exc, socket.gaierror):
            return f"name resolution failed: {exc.strerror or exc}"
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
    innermost = chain[-1]
    return type(innermost).__name__


_NOT_SENT = "_dictamesh_not_sent"


def mark_not_sent(exc: BaseException) -> None:
    """Record on ``exc`` that it was raised before a byte of the request was written.

    The transport's connections call it for a failure in ``connect()`` (TCP
    connect, TLS handshake, certificate check): the one proof this module
    accepts that a request was not sent, since urllib3 2.x raises the same
    ``SSLError`` for a handshake failure and for a TLS record that broke
    while the response was read.
    """
    with contextlib.suppress(AttributeError, TypeError):
        setattr(exc, _NOT_SENT, True)


def _proven_unsent(chain: list[BaseException]) -> bool:
    return any(getattr(e, _NOT_SENT, False) for e in chain)


def _has(chain: list[BaseException], *types: type[BaseException]) -> bool:
    return any(isinstance(e, types) for e in chain)


def translate_exception(
    exc: BaseException,
    *,
    method: str,
    url: str,
    idempotent: bool,
    connector: str = "http",
    timeouts: tuple[float, float] | None = None,
    secret_params: Collection[str] = (),
) -> ConnectorError:
    """Map a requests/urllib3/socket exception to a ``ConnectorError``.

    Connection failures proven to come before anything was sent (refused,
    DNS, connect timeout, a TLS handshake that failed in ``connect()``, see
    ``mark_not_sent``) are transient with ``maybe_applied=False``, so the
    retry loop repeats them for every method. Every other failure may come
    after the request reached the server (reset, read timeout, truncated
    body, a TLS error while reading the response): transient and, for
    non-idempotent requests, ``maybe_applied``. A TLS certificate that fails
    verification is permanent.

    Args:
        exc: The exception from ``requests``/``urllib3``/the socket.
        method, url: The request (the URL is shown redacted).
        idempotent: Whether the request may be repeated.
        connector: Name put on the error and the message.
        timeouts: ``(connect, read)`` seconds, for the message.
        secret_params: Query parameter names to redact besides the usual ones.

    Returns:
        The translated error; the caller raises it ``from exc``.
    """
    chain = _chain(exc)
    prefix = f"{connector}: {method} {redact_url(url, secret_params)}: "
    details = {"method": method, "url": redact_url(url, secret_params)}
    connect_t, read_t = timeouts or (None, None)

    def make(
        what: str,
        code: ErrorCode,
        *,
        sent: bool,
        transient: bool | None = None,
        hint: RetryHint | None = None,
    ) -> ConnectorError:
        return build_error(
            prefix + what,
            rule_for(code, transient, hint=hint),
            connector=connector,
            maybe_applied=sent and not idempotent,
            details={**details, "cause": type(exc).__name__},
        )

    if _has(chain, uexc.EmptyPoolError):
        return make(
            "no free connection in the pool (pool_timeout)",
            ErrorCode.RESOURCE_EXHAUSTED,
            sent=False,
        )
    if _has(chain, ssl.SSLCertVerificationError) or (
        _has(chain, ssl.SSLError, uexc.SSLError, rexc.SSLError)
        and "CERTIFICATE_VERIFY_FAILED" in " ".join(str(e) for e in chain)
    ):
        return make(
            _describe(chain) + " (check ca_bundle / verify)",
            ErrorCode.CONNECTION_FAILED,
            sent=False,
            transient=False,
            hint=RetryHint.NONE,
        )
    if isinstance(exc, rexc.ConnectTimeout) or (
        _has(chain, uexc.ConnectTimeoutError) and not _has(chain, uexc.NewConnectionError)
    ):
        return make(
            f"connect timed out after {connect_t}s" if connect_t else "connect timed out",
            ErrorCode.TIMEOUT,
            sent=False,
        )
    if _has(chain, uexc.NewConnectionError, uexc.ClosedPoolError, uexc.ProxyError):
        return make(
            f"connection failed: {_describe(chain)}", ErrorCode.CONNECTION_FAILED, sent=False
        )
    if _has(chain, rexc.SSLError, uexc.SSLError, ssl.SSLError):
        if _proven_unsent(chain):  # the handshake failed: the request never left
            return make(_describe(chain), ErrorCode.CONNECTION_FAILED, sent=False)
        # A TLS failure after connect (reading the response, writing the body):
        # the request may have run.
        return make(f"connection lost: {_describe(chain)}", ErrorCode.CONNECTION_LOST, sent=True)
    if isinstance(exc, rexc.ReadTimeout) or _has(
        chain, uexc.ReadTimeoutError, socket.timeout, TimeoutError
    ):
        return make(
            f"read timed out after {read_t}s" if read_t else "read timed out",
            ErrorCode.TIMEOUT,
            sent=True,
        )
    if _has(chain, uexc.DecodeError, rexc.ContentDecodingError):
        return make(
            "could not decode the response body (Content-Encoding)",
            ErrorCode.PROTOCOL_ERROR,
            sent=True,
            transient=False,
        )
    if _has(chain, rexc.InvalidURL, rexc.InvalidHeader, rexc.MissingSchema, rexc.InvalidSchema):
        return build_error(
            prefix + type(exc).__name__,
            rule_for(ErrorCode.INVALID_REQUEST),
            connector=connector,
            classes=_TRANSPORT_CLASSES,
        )
    if _has(chain, uexc.ProtocolError, rexc.ChunkedEncodingError, OSError, uexc.HTTPError):
        return make(f"connection lost: {_describe(chain)}", ErrorCode.CONNECTION_LOST, sent=True)
    return make(f"request failed: {type(exc).__name__}", ErrorCode.CONNECTION_LOST, sent=True)


DRIVER_ERRORS = (rexc.RequestException, uexc.HTTPError, OSError)
"""What requests, urllib3 and the socket raise while sending or reading.

(requests' exceptions are ``OSError`` too.)"""


class Translating(Translator):
    """The one translation site: ``with Translating(...):`` around every driver call.

    The core ``Translator`` (httpx's ``map_httpcore_exceptions`` is the
    model): a driver exception raised in the block leaves it as the
    ``ConnectorError`` of ``translate_exception`` (``raise ... from exc``),
    with secret values scrubbed from the driver exception first (it stays
    reachable as ``__cause__``). ``ConnectorError`` and programming errors
    pass through unchanged. The request it names can change between hops
    (``where.method, where.url = ...`` after a redirect).

    Example::

        with Translating(method="GET", url=url, idempotent=True) as where:
            raw = pool.urlopen(...)
    """

    __slots__ = ("connector", "idempotent", "method", "secret_params", "secrets", "timeouts", "url")

    driver_errors = DRIVER_ERRORS

    def __init__(
        self,
        *,
        method: str,
        url: str,
        idempotent: bool,
        connector: str = "http",
        timeouts: tuple[float, float] | None = None,
        secret_params: Collection[str] = (),
        secrets: Collection[str] = (),
    ) -> None:
        self.method = method
        self.url = url
        self.idempotent = idempotent
        self.connector = connector
        self.timeouts = timeouts
        self.secret_params = secret_params
        self.secrets = secrets

    def __enter__(self) -> Translating:
        return self

    def classify(self, exc: Exception) -> ConnectorError:
        """``translate_exception`` for the request the block is sending."""
        return translate_exception(
            exc,
            method=self.method,
            url=self.url,
            idempotent=self.idempotent,
            connector=self.connector,
            timeouts=self.timeouts,
            secret_params=self.secret_params,
        )

    def scrub(self, exc: Exception) -> None:
        """Mask the API key (when it travels in the query) everywhere in ``exc``'s chain."""
        scrub_secrets(exc, self.secrets)


def invalid_request(message: str, *, connector: str = "http") -> InvalidRequestError:
    """The error for a request that must not be sent (bad method, header, URL, body)."""
    err = build_error(
        message,
        rule_for(ErrorCode.INVALID_REQUEST),
        connector=connector,
        classes=_TRANSPORT_CLASSES,
    )
    assert isinstance(err, InvalidRequestError)
    return err


def protocol_error(
    message: str, *, connector: str = "http", details: Mapping[str, Any] | None = None
) -> ConnectorError:
    """The error for an answer the client cannot use (redirect loop, not JSON, no list)."""
    return build_error(
        message, rule_for(ErrorCode.PROTOCOL_ERROR, False), connector=connector, details=details
    )


def too_large(
    method: str,
    url: str,
    limit: int,
    *,
    connector: str = "http",
    secret_params: Collection[str] = (),
    status_code: int | None = None,
) -> ConnectorError:
    """The error for a response body over ``max_response_bytes``.

    Permanent: the same request would bring the same body back.
    """
    details: dict[str, Any] = {"method": method, "url": redact_url(url, secret_params)}
    if status_code is not None:
        details["status_code"] = status_code
    return build_error(
        f"{connector}: {method} {redact_url(url, secret_params)}: response body exceeds "
        f"max_response_bytes ({limit} bytes)",
        rule_for(ErrorCode.PAYLOAD_TOO_LARGE, False),
        connector=connector,
        details=details,
    )
