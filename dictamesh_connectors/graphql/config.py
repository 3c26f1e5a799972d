"""``GraphQLConfig``: an ``HTTPConfig`` plus the GraphQL endpoint. Pure data.

A GraphQL endpoint is an HTTP endpoint: every transport knob (auth, TLS,
pool sizes, timeouts, retries, rate limit) is the ``HTTPConfig`` field of
the same name, so ``GraphQLConfig`` *is* an ``HTTPConfig`` with GraphQL URL
schemes and the endpoint path.
"""

from __future__ import annotations

import urllib.parse
from typing import Any, ClassVar

import attrs

from dictamesh_connectors.config import str_field
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.http.config import HTTPConfig

__all__ = ["GraphQLConfig"]

_PREFIX = "graphql+"


@attrs.frozen(kw_only=True)
class GraphQLConfig(HTTPConfig):
    """Configuration of a ``GraphQLConnector``: every ``HTTPConfig`` field, plus ``path``.

    Frozen, validated on construction, compares by value and pickles;
    immutable, so one instance is safely shared by any number of threads. The
    URL schemes ``graphql+https`` and ``graphql+http`` (what the registry
    dispatches on) and plain ``https``/``http`` are accepted by ``from_url``;
    everything after the scheme is read as by ``HTTPConfig.from_url``.

    Attributes:
        path: The endpoint path joined onto ``base_url`` (like an HTTP
            request path). Empty (the default): ``base_url`` is the endpoint,
            as when the URL is ``graphql+https://api.example.com/graphql``.
        retry: The one retry policy of GraphQL operations (queries, and
            mutations sent with an idempotency key): HTTP failures and
            retryable GraphQL errors (``THROTTLED``) share its budget.

    Example::

        config = GraphQLConfig.from_url(
            "graphql+https://api.example.com/graphql?timeout=10", credentials={"token": "t0k"}
        )
        assert config.endpoint_url == "https://api.example.com/graphql"
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("graphql+https", "graphql+http", "https", "http")
    secret_params: ClassVar[frozenset[str]] = HTTPConfig.secret_params
    """The secret query parameters ``from_url`` reads (``HTTPConfig``'s)."""

    path: str = str_field("")

    @path.validator
    def _check_path(self, _attr: attrs.Attribute[str], value: str) -> None:
        if any(char in value for char in "\r\n\x00?#") or "://" in value:
            raise InvalidConfigError(
                "path: must be a plain path (no scheme, query string, fragment or CR/LF)"
            )

    @property
    def endpoint_url(self) -> str:
        """The absolute URL requests are POSTed to (``base_url`` joined with ``path``)."""
        assert self.base_url is not None  # checked on construction
        if not self.path:
            return self.base_url
        return self.base_url.rstrip("/") + "/" + self.path.lstrip("/")

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        scheme = parts.scheme.lower()
        if scheme.startswith(_PREFIX):
            parts = parts._replace(scheme=scheme[len(_PREFIX) :])
        return super()._fields_from_url(parts)

    def connection_string(self, redact: bool = True) -> str:
        """This config as a ``graphql+https://`` URL; secrets are ``***`` when ``redact``."""
        url = super().connection_string(redact=redact)
        if self.path:
            parts = urllib.parse.urlsplit(url)
            query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
            query.append(("path", self.path))
            url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
        return _PREFIX + url
