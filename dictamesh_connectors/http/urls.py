"""URLs, as pure functions: resolve a request path, check hosts, follow a redirect, redact.

Nothing here does I/O or builds errors of the connector: a URL that must not
be sent raises ``UnsafeURLError`` (a ``ValueError`` carrying what is safe to
show) and the connector turns it into its ``InvalidRequestError``.

* ``URLResolver``: joins request paths onto ``base_url``, lets absolute URLs
  through only for the base origin and ``allowed_hosts``, adds the query;
* ``redirect_target``: the next URL of a redirect, or ``UnsafeURLError``;
* ``origin_of``, ``split_origin``: ``(scheme, host, port)`` of a URL, and
  the URL cut into ``scheme://netloc`` and the request target;
* ``redact_url``: the core's one redaction function
  (``dictamesh_connectors.config.redact_url``), re-exported: a URL fit for
  messages and logs (password and secret query values as ``***``).
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

import requests

from dictamesh_connectors.config import SECRET_PARAMS, redact_url

__all__ = [
    "SENSITIVE_PARAMS",
    "URLResolver",
    "UnsafeURLError",
    "origin_of",
    "redact_url",
    "redirect_target",
    "split_origin",
]

SENSITIVE_PARAMS = SECRET_PARAMS
"""Query parameters whose values never appear in messages or logs (the core's list).

``redact_url`` is the core ``dictamesh_connectors.config.redact_url``, the
one redaction function of the library, re-exported here."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
_ABSOLUTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_BAD_URL_CHARS = re.compile(r"[\x00-\x20\x7f\\]")
# URLs made only of these need no quoting (RFC 3986 unreserved, sub-delims,
# ":", "@", "/"); anything else goes through requests' prepare_url.
_PLAIN_URL = re.compile(r"[A-Za-z0-9\-._~:/@!$&'()*+,;=]*")
_MAX_RESOLVED = 1024


class UnsafeURLError(ValueError):
    """A URL that must not be sent.

    Attributes:
        shown: The URL (or the part of it) that is safe to show.
        reason: Why it was refused.
    """

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(reason)
        self.shown = shown
        self.reason = reason


def origin_of(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``url``, lower-cased, with the default port filled in."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0)


def split_origin(url: str) -> tuple[str, str]:
    """``("scheme://netloc", "/path?query")`` of ``url`` (the target is never empty)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return f"{parts.scheme}://{parts.netloc}", target


def redirect_target(url: str, location: str) -> str:
    """The URL a redirect from ``url`` to ``location`` goes to (fragment dropped).

    Raises:
        UnsafeURLError: The location is not an http(s) URL with a host, or
            holds control characters or backslashes.
    """
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
        raise UnsafeURLError(url, "redirect to an invalid or non-HTTP location")
    return urllib.parse.urlunsplit(parts._replace(fragment=""))


class URLResolver:
    """Turns a request's path and query into the URL to send, refusing unsafe ones.

    Shared by every thread of a connector: its only state after construction
    is a cache of resolved paths (strings), read and replaced atomically.

    Example::

        urls = URLResolver("https://api.test/v1", allowed_hosts=["cdn.test"])
        urls.resolve("/users", {"page": 2})   # 'https://api.test/v1/users?page=2'

    Args:
        base_url: Relative paths are joined onto it (trailing slash ignored).
        allowed_hosts: Hosts (``host``, ``host:port``, ``*.domain``) that
            absolute URLs may point at besides the base origin.
    """

    def __init__(self, base_url: str, allowed_hosts: Iterable[str] = ()) -> None:
        self.base = base_url.rstrip("/")
        self.origin = origin_of(self.base)
        self._allowed = frozenset(allowed_hosts)
        self.resolved: dict[str, str] = {}
        """path -> URL of the requests without a query: the same few paths come back
        all the time (a caller may read it to skip ``resolve``; only ``resolve``
        writes it). Replaced whole when full; dict reads and writes are atomic."""

    def resolve(self, path: str, query: Any = None) -> str:
        """The absolute URL for ``path`` (relative to the base, or absolute) plus ``query``.

        Raises:
            UnsafeURLError: Control characters, spaces or backslashes; a
                malformed URL or query; a scheme other than http(s);
                credentials in the URL; a host that is neither the base's
                nor allowed.
        """
        if not query:
            cached = self.resolved.get(path)
            if cached is not None:
                return cached
        if _BAD_URL_CHARS.search(path):
            raise UnsafeURLError(
                self.base, "path contains control characters, spaces or backslashes"
            )
        if _ABSOLUTE.match(path) or path.startswith("//"):
            full = path if not path.startswith("//") else f"{self.origin[0]}:{path}"
            self._check_absolute(full)
        elif not path:
            full = self.base
        elif path[0] in "?#":
            full = self.base + path
        else:
            full = self.base + "/" + path.lstrip("/")
        if not query and _PLAIN_URL.fullmatch(full):
            resolved = full  # nothing to encode
        else:
            prepared = requests.PreparedRequest()
            try:
                prepared.prepare_url(full, query)
            except (requests.exceptions.RequestException, ValueError, TypeError, UnicodeError):
                raise UnsafeURLError(full.partition("?")[0], "malformed URL or query") from None
            resolved = prepared.url or full
        if not query:
            if len(self.resolved) >= _MAX_RESOLVED:
                self.resolved = {}
            self.resolved[path] = resolved
        return resolved

    def _check_absolute(self, full: str) -> None:
        try:
            parts = urllib.parse.urlsplit(full)
            port = parts.port
        except ValueError:
            raise UnsafeURLError(self.base, "malformed URL") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UnsafeURLError(self.base, "only http(s) URLs with a host are allowed")
        if parts.username is not None or parts.password is not None:
            raise UnsafeURLError(self.base, "URLs must not carry credentials")
        if origin_of(full) != self.origin and not self.host_allowed(parts.hostname, port):
            raise UnsafeURLError(
                f"{parts.scheme}://{parts.hostname}",
                "host is not base_url's and not in allowed_hosts",
            )

    def host_allowed(self, host: str, port: int | None) -> bool:
        """Whether ``host`` (with ``port``) is in ``allowed_hosts`` (wildcards included)."""
        host = host.lower()
        allowed = self._allowed
        if host in allowed or (port is not None and f"{host}:{port}" in allowed):
            return True
        return any(entry.startswith("*.") and host.endswith(entry[1:]) for entry in allowed)
