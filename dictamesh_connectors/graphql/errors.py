"""GraphQL responses -> ``ConnectorError``: one table, one classifier.

A GraphQL request fails in one of three ways, and each is classified here:

* the HTTP exchange itself failed (refused, reset, timed out): the HTTP
  connector's mapping, unchanged;
* the server answered with a body that is not a GraphQL response (an HTML
  502 page from a proxy, a 401 from a gateway): the HTTP status mapping of
  ``dictamesh_connectors.http.errors.error_for_status``;
* the body is a GraphQL response carrying ``errors``: a ``GraphQLError``
  whose code comes from the errors' ``extensions.code`` (table below), else
  from the HTTP status when it is 4xx/5xx, else ``GRAPHQL_ERROR``
  (``INVALID_REQUEST`` for a request error, i.e. no ``data`` entry at all,
  or a null ``data`` whose errors have no ``path``, sent with 2xx, 400 or 422).

Exception tree::

    ConnectorError
    +-- GraphQLError                  errors, data, extensions (all pickle)
        +-- GraphQLAuthenticationError    AUTH_FAILED (also an AuthenticationError)

Which bodies are GraphQL responses (GraphQL-over-HTTP): an
``application/graphql-response+json`` body is parsed whatever the status; an
``application/json`` body is trusted on 2xx, and on 4xx/5xx only when it has
the shape of a GraphQL response (an ``errors`` list of objects with a
``message``), in which case the status still decides transience unless an
``extensions.code`` maps to something more specific.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from requests.structures import CaseInsensitiveDict

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ErrorCode,
    RetryHint,
    build_error,
    is_transient_code,
    rule_for,
)
from dictamesh_connectors.http.content import JSONError, decode_json
from dictamesh_connectors.http.errors import error_for_status, parse_retry_after, protocol_error

__all__ = [
    "EXTENSION_CODES",
    "GraphQLAuthenticationError",
    "GraphQLError",
    "GraphQLResponse",
    "classify_response",
]

GRAPHQL_RESPONSE_MEDIA_TYPE = "application/graphql-response+json"

# extensions.code (or a top-level "type", as GitHub sends) -> our code.
EXTENSION_CODES: Mapping[str, ErrorCode] = {
    "UNAUTHENTICATED": ErrorCode.AUTH_FAILED,
    "UNAUTHORIZED": ErrorCode.AUTH_FAILED,
    "FORBIDDEN": ErrorCode.PERMISSION_DENIED,
    "THROTTLED": ErrorCode.RATE_LIMITED,
    "RATE_LIMITED": ErrorCode.RATE_LIMITED,
    "GRAPHQL_PARSE_FAILED": ErrorCode.INVALID_REQUEST,
    "GRAPHQL_VALIDATION_FAILED": ErrorCode.INVALID_REQUEST,
    "BAD_REQUEST": ErrorCode.INVALID_REQUEST,
    "OPERATION_RESOLUTION_FAILURE": ErrorCode.INVALID_REQUEST,
    "INTROSPECTION_DISABLED": ErrorCode.INVALID_REQUEST,
    "MAX_RECURSIVE_SELECTIONS_EXCEEDED": ErrorCode.INVALID_REQUEST,
    "BAD_USER_INPUT": ErrorCode.INVALID_INPUT,
    "PERSISTED_QUERY_NOT_SUPPORTED": ErrorCode.UNSUPPORTED,
    "NOT_FOUND": ErrorCode.NOT_FOUND,
}
"""``extensions.code`` values (Apollo's and common conventions) we map."""

# When several errors map to different codes, the first in this order wins:
# a permanent refusal first (retrying cannot help), then throttling.
_PRIORITY = (
    ErrorCode.AUTH_FAILED,
    ErrorCode.PERMISSION_DENIED,
    ErrorCode.INVALID_REQUEST,
    ErrorCode.INVALID_INPUT,
    ErrorCode.UNSUPPORTED,
    ErrorCode.NOT_FOUND,
    ErrorCode.RATE_LIMITED,
)

_MAX_MESSAGE = 300


class GraphQLError(ConnectorError):
    """A GraphQL response carried ``errors``.

    Every error entry (``message``, ``locations``, ``path``, ``extensions``)
    is on ``errors``; the partial ``data`` the server returned (``None`` when
    it returned none) is on ``data``. Both live in ``details`` (``"errors"``,
    ``"data"``), so they survive pickling, as every attribute does.

    Example::

        try:
            gql.query("{ me { name orders { id } } }")
        except GraphQLError as err:
            partial = err.data          # {"me": {"name": "Ada", "orders": None}}
            for entry in err.errors:
                print(entry["path"], entry["message"])
    """

    default_code = ErrorCode.GRAPHQL_ERROR

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The response's ``errors`` entries, as the server sent them."""
        errors: list[dict[str, Any]] = self.details.get("errors", [])
        return errors

    @property
    def data(self) -> Any:
        """The partial ``data`` of the response (``None`` if there was none)."""
        return self.details.get("data")

    @property
    def extensions(self) -> dict[str, Any] | None:
        """The response's top-level ``extensions`` (cost, tracing), if any."""
        extensions: dict[str, Any] | None = self.details.get("extensions")
        return extensions


class GraphQLAuthenticationError(GraphQLError, AuthenticationError):
    """The server answered ``UNAUTHENTICATED``: caught by ``except AuthenticationError`` too."""

    default_code = ErrorCode.AUTH_FAILED


_CLASSES: dict[ErrorCode, type[ConnectorError]] = {
    **dict.fromkeys(ErrorCode, GraphQLError),
    ErrorCode.AUTH_FAILED: GraphQLAuthenticationError,
}
"""``build_error``'s classes for a response carrying ``errors``: every one is a ``GraphQLError``."""


@attrs.frozen
class GraphQLResponse:
    """A successful GraphQL response (no ``errors``).

    Frozen; reading it from several threads is safe (do not mutate ``data``
    while another thread reads it: it is the caller's plain dict).

    Attributes:
        data: The response's ``data`` object.
        extensions: Its top-level ``extensions`` (``None`` if absent).
        status_code: The HTTP status (200, or 294 for some servers).
        headers: The HTTP response headers, case-insensitive (rate-limit counters, ...).
    """

    data: dict[str, Any]
    extensions: dict[str, Any] | None = None
    status_code: int = 200
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def _media_type(headers: Mapping[str, str]) -> str:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return ""


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _is_error_entry(entry: object) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("message"), str)


def _looks_like_graphql(body: object) -> bool:
    """A JSON object with ``data`` and/or a well-formed ``errors`` list."""
    if not isinstance(body, dict):
        return False
    errors = body.get("errors")
    if errors is not None:
        return isinstance(errors, list) and bool(errors) and all(map(_is_error_entry, errors))
    return "data" in body and (body["data"] is None or isinstance(body["data"], dict))


def _extension_code(entry: Mapping[str, Any]) -> str | None:
    extensions = entry.get("extensions")
    if isinstance(extensions, Mapping):
        code = extensions.get("code")
        if isinstance(code, str):
            return code.upper()
    kind = entry.get("type")  # GitHub puts RATE_LIMITED here
    return kind.upper() if isinstance(kind, str) else None


def _mapped_code(errors: Sequence[Mapping[str, Any]]) -> ErrorCode | None:
    found = set()
    for entry in errors:
        extension_code = _extension_code(entry)
        if extension_code is not None and extension_code in EXTENSION_CODES:
            found.add(EXTENSION_CODES[extension_code])
    for code in _PRIORITY:
        if code in found:
            return code
    return None


def _extensions_retry_after(errors: Sequence[Mapping[str, Any]]) -> float | None:
    for entry in errors:
        extensions = entry.get("extensions")
        if isinstance(extensions, Mapping):
            for key in ("retryAfter", "retry_after"):
                value = extensions.get(key)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    # A 400-digit int does not fit a float: "wait forever" (inf),
                    # which the retry loop raises at once instead of waiting.
                    seconds = (
                        float(value) if abs(value) < 1e300 else (math.inf if value > 0 else 0.0)
                    )
                    if math.isnan(seconds):
                        return None
                    return max(0.0, seconds)
    return None


def _summary(errors: Sequence[Mapping[str, Any]]) -> str:
    first = errors[0]
    text = str(first.get("message", ""))[:_MAX_MESSAGE]
    path = first.get("path")
    if isinstance(path, list) and path:
        text = f"{text} (at {'.'.join(map(str, path))})"
    if len(errors) > 1:
        text += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return text


def classify_response(
    status_code: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    url: str,
    operation: str = "query",
    operation_name: str | None = None,
    idempotent: bool = True,
    idempotency_key: bool = False,
    connector: str = "graphql",
) -> GraphQLResponse:
    """Turn one HTTP response to a GraphQL request into data or an error.

    Args:
        status_code: The HTTP status.
        headers: The HTTP response headers.
        content: The raw response body.
        url: The endpoint (no credentials), for messages.
        operation: ``"query"`` or ``"mutation"``: a mutation whose execution
            began (``data`` present) is ``maybe_applied``.
        operation_name: Names the operation in messages.
        idempotent: Passed to the HTTP status mapping (``maybe_applied`` of 5xx).
        idempotency_key: The request carried an Idempotency-Key (a 409 is then
            "still running": transient).
        connector: Name put on the errors.

    Returns:
        The response's ``data`` (with ``extensions`` and headers) when it has
        no ``errors``.

    Raises:
        GraphQLError: The response carried ``errors`` (or it is
            ``GraphQLAuthenticationError`` for ``UNAUTHENTICATED``).
        ConnectorError: A 4xx/5xx without a GraphQL body (the HTTP mapping),
            or a 2xx whose body is not a GraphQL response (``PROTOCOL_ERROR``).
    """

    def http_error() -> ConnectorError:
        return error_for_status(
            status_code,
            headers,
            method="POST",
            url=url,
            connector=connector,
            idempotent=idempotent,
            has_idempotency_key=idempotency_key,
        )

    what = f"{connector}: {operation}{' ' + operation_name if operation_name else ''} on {url}"
    media_type = _media_type(headers)
    success = 200 <= status_code < 300
    body: object = None
    parsed = False
    if content and (media_type.endswith("json") or not media_type):
        try:
            body = decode_json(content)  # never raises RecursionError: JSONError
            parsed = True
        except JSONError:
            parsed = False
    is_graphql = parsed and _looks_like_graphql(body)

    if not is_graphql:
        if not success:
            # Not a GraphQL response: a proxy, a gateway, an overloaded server.
            raise http_error()
        problem = "invalid JSON" if not parsed else "a JSON body that is not a GraphQL response"
        if content and not media_type.endswith("json") and media_type:
            problem = f"a {media_type} body"
        raise protocol_error(
            f"{what}: HTTP {status_code} with {problem}",
            connector=connector,
            details={"status_code": status_code},
        )

    assert isinstance(body, dict)
    errors = body.get("errors") or []
    data = body.get("data")
    extensions = body.get("extensions") if isinstance(body.get("extensions"), dict) else None
    if not errors:
        if success and isinstance(data, dict):
            return GraphQLResponse(
                data=data,
                extensions=extensions,
                status_code=status_code,
                headers=CaseInsensitiveDict(headers),
            )
        if not success:
            raise http_error()
        raise protocol_error(
            f"{what}: HTTP {status_code} response has neither data nor errors",
            connector=connector,
            details={"status_code": status_code},
        )

    # A request error (parse, validation, variable coercion) has no data entry;
    # many servers (graphql-core, graphene) send "data": null instead, so a null
    # data whose errors carry no field path counts as one too.
    request_error = "data" not in body or (
        data is None and not any(isinstance(e.get("path"), list) and e["path"] for e in errors)
    )
    code = _mapped_code(errors)
    transient: bool | None = None
    retry_hint: RetryHint | None = None
    retry_after: float | None = None
    # A mutation whose execution began (data present) may have written something.
    maybe_applied = operation == "mutation" and not request_error
    header_retry_after = _header(headers, "retry-after")
    if header_retry_after is not None:
        retry_after = parse_retry_after(header_retry_after)
    if code is None and request_error and status_code in (400, 422):
        # GraphQL-over-HTTP: 400 = unparsable, 422 = invalid document or variables.
        code = ErrorCode.INVALID_REQUEST
    if code is None and not success:
        # No code of its own: the status says how bad it is (503 is transient, 403 is not).
        status_error = http_error()
        code, transient = status_error.code, status_error.transient
        retry_hint, retry_after = status_error.retry_hint, status_error.retry_after
        maybe_applied = maybe_applied or (operation == "mutation" and status_error.maybe_applied)
    if code is None:
        code = ErrorCode.INVALID_REQUEST if request_error else ErrorCode.GRAPHQL_ERROR
    if code is ErrorCode.RATE_LIMITED and retry_after is None:
        retry_after = _extensions_retry_after(errors)
    if not (is_transient_code(code) if transient is None else transient):
        retry_after = None  # a permanent error: there is nothing to wait for

    raise build_error(
        f"{what}: {_summary(errors)}",
        rule_for(code, transient, retry_after=retry_after, hint=retry_hint),
        retry_after=retry_after,
        maybe_applied=maybe_applied,
        connector=connector,
        classes=_CLASSES,
        details={
            "errors": errors,
            "data": data,
            "extensions": extensions,
            "status_code": status_code,
            "operation_name": operation_name,
        },
    )
