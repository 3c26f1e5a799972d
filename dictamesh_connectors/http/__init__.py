"""The HTTP connector: a thread-safe HTTP(S) client over one shared urllib3 pool.

Example::

    from dictamesh_connectors.http import HTTPConfig, HTTPConnector

    with HTTPConnector(HTTPConfig.from_url("https://api.example.com/v1?timeout=5")) as api:
        print(api.get("/status").json())

See ``docs/http.md`` and ``docs/auth.md``.
"""

from dictamesh_connectors.http.auth import ConnectorAuth, OAuth2TokenSource
from dictamesh_connectors.http.config import AuthType, Credentials, HTTPConfig
from dictamesh_connectors.http.connector import HTTPConnector
from dictamesh_connectors.http.errors import (
    HTTPAuthenticationError,
    HTTPStatusError,
    HTTPTimeoutError,
    InvalidRequestError,
    error_for_status,
    parse_retry_after,
)
from dictamesh_connectors.http.models import Request, Response
from dictamesh_connectors.http.pagination import (
    Cursor,
    LinkHeader,
    OffsetLimit,
    PageNumber,
    iter_items,
)
from dictamesh_connectors.http.ratelimit import TokenBucket

__all__ = [
    "AuthType",
    "ConnectorAuth",
    "Credentials",
    "Cursor",
    "HTTPAuthenticationError",
    "HTTPConfig",
    "HTTPConnector",
    "HTTPStatusError",
    "HTTPTimeoutError",
    "InvalidRequestError",
    "LinkHeader",
    "OAuth2TokenSource",
    "OffsetLimit",
    "PageNumber",
    "Request",
    "Response",
    "TokenBucket",
    "error_for_status",
    "iter_items",
    "parse_retry_after",
]
