"""Authentication: Basic, bearer, API key and OAuth2 client credentials.

``ConnectorAuth`` is a ``requests.auth.AuthBase``: the connector applies it
to each request it sends to its own origin, and ``HTTPConnector.session()``
installs it on the sessions it hands out (zeep, custom code).

``OAuth2TokenSource`` caches the client-credentials token and refreshes it
shortly before it expires. One refresh runs at a time across all threads:
the first thread that needs a new token fetches it, the others keep using
the old token while it is still valid, or wait for the fetch when it is not
(no stampede on the token endpoint). A 401 invalidates the token that was
used (only if it is still the current one), so 32 threads failing with the
same stale token cause one refresh.

No token, password or key is ever logged or put in a message.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

import attrs
import requests
from requests.auth import AuthBase

from dictamesh_connectors import _fork
from dictamesh_connectors.config import Secret, redact_url
from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
)
from dictamesh_connectors.http.config import AuthType, HTTPConfig
from dictamesh_connectors.http.content import JSONError, decode_json, set_header
from dictamesh_connectors.http.errors import error_for_status
from dictamesh_connectors.http.urls import origin_of

__all__ = ["ConnectorAuth", "OAuth2TokenSource", "TokenFetch"]

logger = logging.getLogger(__name__)

TokenFetch = Callable[[str, bytes, Mapping[str, str]], tuple[int, Mapping[str, str], bytes]]
"""``fetch(url, form, headers) -> (status, headers, body)``: one POST, no auth, no redirects."""


@attrs.frozen
class _Token:
    value: str = attrs.field(repr=False)
    refresh_at: float
    expires_at: float


class _Flight:
    """One token fetch in progress; waiters block on ``done``."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: ConnectorError | None = None


class OAuth2TokenSource:
    """A cached OAuth2 client-credentials token, refreshed before it expires.

    Thread safety: shared by all threads of a connector. A lock guards the
    cached token and the in-flight marker only; the token request runs
    outside it. At most one token request is in flight at any time.

    Example::

        source = OAuth2TokenSource(config.credentials, fetch)
        headers["Authorization"] = "Bearer " + source.token()

    Args:
        credentials: ``token_url``, ``client_id``, ``client_secret``,
            ``scope``, ``audience``, ``client_auth`` are read.
        fetch: Sends the token request (see ``TokenFetch``).
        refresh_margin: Refresh this many seconds before expiry (capped at a
            fifth of the token's lifetime).
        wait_timeout: Longest wait for another thread's refresh.
        clock: Monotonic clock (injected in tests).
    """

    def __init__(
        self,
        credentials: Any,
        fetch: TokenFetch,
        *,
        refresh_margin: float = 30.0,
        wait_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        connector: str = "http",
    ) -> None:
        self._credentials = credentials
        self._fetch = fetch
        self._margin = refresh_margin
        self._wait_timeout = wait_timeout
        self._clock = clock
        self._connector = connector
        self._lock = _fork.create_lock()
        self._token: _Token | None = None  # guarded by _lock for writes
        self._flight: _Flight | None = None  # guarded by _lock
        self._backoff_until = 0.0  # guarded by _lock: no new refresh before this time
        self.fetch_count = 0
        """Token requests sent so far (observability, tests)."""
        _fork.register_child_reset(self)

    def __repr__(self) -> str:
        return f"<OAuth2TokenSource {redact_url(self._credentials.token_url or '')}>"

    def token(self) -> str:
        """Return a valid access token, fetching one if needed.

        Raises:
            AuthenticationError: The token endpoint refused the client.
            ConnectorError: The token endpoint is unreachable or failed
                (transient: the caller's retry loop may try again).
        """
        while True:
            current = self._token  # an atomic read; the object is immutable
            if current is not None and self._clock() < current.refresh_at:
                return current.value
            with self._lock:  # _token, _flight
                current = self._token
                now = self._clock()
                if current is not None and now < current.refresh_at:
                    return current.value
                flight = self._flight
                still_valid = current is not None and now < current.expires_at
                if still_valid and (flight is not None or now < self._backoff_until):
                    assert current is not None
                    return current.value  # another thread is refreshing, or it just failed
                leader = flight is None
                if flight is None:
                    flight = self._flight = _Flight()
            if leader:
                return self._refresh(flight, current)
            if not flight.done.wait(self._wait_timeout):
                raise ConnectorTimeoutError(
                    f"{self._connector}: timed out waiting for the OAuth2 token refresh",
                    connector=self._connector,
                )
            if flight.error is not None:
                # A copy: the same exception object must not be raised in many threads.
                raise copy.copy(flight.error) from flight.error

    def _refresh(self, flight: _Flight, previous: _Token | None) -> str:
        try:
            token = self._request_token()
        except ConnectorError as err:
            with self._lock:  # _flight, _backoff_until
                self._flight = None
                self._backoff_until = self._clock() + 1.0
            flight.error = err
            flight.done.set()
            if previous is not None and self._clock() < previous.expires_at:
                logger.warning(
                    "%s: OAuth2 token refresh failed (%s); using the current token until expiry",
                    self._connector,
                    err.code.value,
                )
                return previous.value
            raise
        except BaseException:
            with self._lock:  # _flight
                self._flight = None
            flight.error = ConnectorError(
                f"{self._connector}: OAuth2 token refresh failed", connector=self._connector
            )
            flight.done.set()
            raise
        with self._lock:  # _token, _flight
            self._token = token
            self._flight = None
        flight.done.set()
        return token.value

    def _after_fork_in_child(self) -> None:
        """In a forked child: no refresh in flight (its thread is gone).

        ``_fork`` has already given the lock back unlocked.

        The cached token itself stays usable.
        """
        self._flight = None

    def invalidate(self, used: str | None = None) -> None:
        """Drop the cached token so the next ``token()`` fetches a new one.

        Args:
            used: The token a request was refused with. The cache is dropped
                only if it still holds that token (another thread may have
                refreshed it already). ``None`` always drops it.
        """
        with self._lock:  # _token
            if self._token is not None and (used is None or self._token.value == used):
                self._token = None

    def _request_token(self) -> _Token:
        creds = self._credentials
        url = creds.token_url
        secret = creds.client_secret.get_secret_value() if creds.client_secret else ""
        form: dict[str, str] = {"grant_type": "client_credentials"}
        if creds.scope:
            form["scope"] = creds.scope
        if creds.audience:
            form["audience"] = creds.audience
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        if creds.client_auth == "basic":
            # RFC 6749 section 2.3.1: form-urlencode, then Basic.
            client_id = urllib.parse.quote_plus(creds.client_id or "")
            pair = f"{client_id}:{urllib.parse.quote_plus(secret)}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        else:
            form["client_id"] = creds.client_id or ""
            form["client_secret"] = secret
        started = self._clock()
        with self._lock:  # fetch_count
            self.fetch_count += 1
        status, resp_headers, body = self._fetch(
            url, urllib.parse.urlencode(form).encode(), headers
        )
        if status != 200:
            raise self._token_error(status, resp_headers, body)
        value, lifetime = _parse_token_response(body)
        if value is None:
            # Raised outside any except block: no __context__ holds the body.
            raise AuthenticationError(
                f"{self._connector}: OAuth2 token response from {redact_url(url)} is not a valid "
                "token response (access_token / expires_in)",
                code=ErrorCode.PROTOCOL_ERROR,
                transient=False,
                connector=self._connector,
            )
        margin = min(self._margin, lifetime / 5)
        logger.debug(
            "%s: OAuth2 token obtained from %s (expires in %.0fs)",
            self._connector,
            redact_url(url),
            lifetime,
        )
        return _Token(value, started + lifetime - margin, started + lifetime)

    def _token_error(self, status: int, headers: Mapping[str, str], body: bytes) -> ConnectorError:
        url = self._credentials.token_url
        if status in (400, 401, 403):
            code = ""
            with contextlib.suppress(JSONError):
                payload = decode_json(body)
                error = payload.get("error", "") if isinstance(payload, dict) else ""
                if isinstance(error, str) and error.replace("_", "").isalnum():
                    code = f" ({error[:40]})"  # RFC 6749 5.2 codes are safe to show
            return AuthenticationError(
                f"{self._connector}: OAuth2 token request to {redact_url(url)} refused: "
                f"{status}{code}",
                transient=False,
                connector=self._connector,
                details={"status_code": status},
            )
        return error_for_status(
            status, headers, method="POST", url=url, connector=self._connector, idempotent=True
        )


def _parse_token_response(body: bytes) -> tuple[str | None, float]:
    """``(access_token, lifetime)`` of a token response, or ``(None, 0)`` when it is not one.

    The token must be non-empty latin-1 text without control characters (it
    goes into an ``Authorization`` header); ``expires_in`` a positive number
    (absent: no expiry). Never raises, whatever the server sent (nesting too
    deep, a 400-digit ``expires_in``, invalid UTF-8).
    """
    try:
        payload = decode_json(body)
    except JSONError:
        return None, 0.0
    if not isinstance(payload, dict):
        return None, 0.0
    value = payload.get("access_token")
    if not isinstance(value, str) or not value or _BAD_TOKEN.search(value) or not _latin1(value):
        return None, 0.0
    expires_in = payload.get("expires_in", None)
    if expires_in is None:
        return value, math.inf
    if isinstance(expires_in, bool):
        return None, 0.0
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return None, 0.0
    if not lifetime > 0:  # NaN too
        return None, 0.0
    return value, lifetime


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeError:
        return False
    return True


_BAD_TOKEN = re.compile(r"[\x00-\x1f\x7f]")


def _reveal(secret: Secret | None) -> str:
    return secret.get_secret_value() if secret is not None else ""


class ConnectorAuth(AuthBase):
    """Applies the configured credentials to requests for one origin.

    Thread safety: stateless apart from the shared ``OAuth2TokenSource``;
    one instance serves every thread and every session.

    Requests to any other origin (scheme, host, port) are left untouched,
    so a session that follows a redirect elsewhere, or calls another host,
    never sends the credentials there. With OAuth2, a 401 answer makes the
    session drop the token, fetch a new one and resend the request once.

    Example::

        session.auth = ConnectorAuth(config, origin=origin_of(config.base_url))
    """

    def __init__(
        self,
        config: HTTPConfig,
        *,
        origin: tuple[str, str, int] | None,
        token_source: OAuth2TokenSource | None = None,
    ) -> None:
        self.auth_type = config.auth_type
        self.origin = origin
        creds = config.credentials
        self._header_name: str | None = None
        self._header_value: str | None = None
        self._query: tuple[str, str] | None = None
        self._tokens = token_source
        if self.auth_type is AuthType.BASIC:
            password = _reveal(creds.password)
            pair = f"{creds.username or ''}:{password}".encode()
            self._header_name = "Authorization"
            self._header_value = "Basic " + base64.b64encode(pair).decode("ascii")
        elif self.auth_type is AuthType.BEARER:
            self._header_name = "Authorization"
            self._header_value = "Bearer " + _reveal(creds.token)
        elif self.auth_type is AuthType.APIKEY:
            if creds.api_key_in == "query":
                self._query = (creds.api_key_name, _reveal(creds.api_key))
            else:
                self._header_name = creds.api_key_name
                self._header_value = _reveal(creds.api_key)
        elif self.auth_type is AuthType.OAUTH2 and token_source is None:
            raise ValueError("OAuth2 needs a token source")
        self.header_names = frozenset(
            {"authorization", "cookie", "proxy-authorization"}
            | ({creds.api_key_name.lower()} if self.auth_type is AuthType.APIKEY else set())
        )
        """Headers removed when a request leaves the origin."""
        self.query_name = self._query[0] if self._query else None
        """The API key's query parameter, if the key travels in the query."""

    def __repr__(self) -> str:
        return f"<ConnectorAuth {self.auth_type.value}>"

    def apply(self, request: requests.PreparedRequest) -> str | None:
        """Add the credentials to ``request`` (whatever its origin).

        Returns:
            The OAuth2 token used (to invalidate it on a 401), else ``None``.

        Raises:
            ConnectorError: Fetching an OAuth2 token failed.
        """
        url, token = self.add_to(request.headers, request.url or "")
        request.url = url
        return token

    def add_to(self, headers: MutableMapping[str, str], url: str) -> tuple[str, str | None]:
        """Add the credentials to ``headers`` (in place) and ``url`` (whatever its origin).

        Returns:
            ``(url, token)``: the URL to send (with the API key parameter
            when the key travels in the query) and the OAuth2 token used
            (to invalidate it on a 401), else ``None``.

        Raises:
            ConnectorError: Fetching an OAuth2 token failed.
        """
        if self._header_name is not None:
            set_header(headers, self._header_name, self._header_value or "")
            return url, None
        if self._query is not None:
            sep = "&" if "?" in url else "?"
            return url + sep + urllib.parse.urlencode([self._query]), None
        if self._tokens is not None:
            token = self._tokens.token()
            set_header(headers, "Authorization", "Bearer " + token)
            return url, token
        return url, None

    def strip(self, request: requests.PreparedRequest) -> None:
        """Remove every credential header (and the API key parameter) from ``request``."""
        for name in list(request.headers):
            if name.lower() in self.header_names:
                del request.headers[name]
        if self.query_name and request.url and "?" in request.url:
            base, _, query = request.url.partition("?")
            kept = [
                item
                for item in query.split("&")
                if urllib.parse.unquote_plus(item.partition("=")[0]) != self.query_name
            ]
            request.url = base + ("?" + "&".join(kept) if kept else "")

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.auth_type is AuthType.NONE:
            return request
        if self.origin is not None and origin_of(request.url or "") != self.origin:
            return request
        token = self.apply(request)
        if token is not None:
            request.hooks.setdefault("response", []).append(self._resend_on_401)
        return request

    def _resend_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        """Response hook: on 401, refresh the OAuth2 token once and resend."""
        request = response.request
        if response.status_code != 401 or self._tokens is None or request is None:
            return response
        if getattr(request, "_dictamesh_retried", False):
            return response
        body = request.body
        if body is not None and not isinstance(body, (bytes, str)):
            return response  # a streamed body cannot be replayed
        used = str(request.headers.get("Authorization", ""))
        self._tokens.invalidate(used.removeprefix("Bearer ") or None)
        response.content  # noqa: B018 - drain so the connection is reused
        response.close()
        retry = request.copy()
        retry.hooks = {"response": []}
        retry._dictamesh_retried = True  # type: ignore[attr-defined,unused-ignore]
        self.apply(retry)
        connection = response.connection  # type: ignore[attr-defined,unused-ignore]
        new: requests.Response = connection.send(retry, **kwargs)
        new.history.append(response)
        new.request = retry
        return new
