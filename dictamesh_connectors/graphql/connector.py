"""``GraphQLConnector``: GraphQL over the HTTP connector (same auth, pool, TLS, retries).

The connector's handle is an ``HTTPConnector`` built from the same config
with its own retries turned off: the GraphQL connector runs the one retry
loop, so an HTTP failure (a refused connection, a 503) and a retryable
GraphQL error in a 200 (``THROTTLED``) share one budget and never multiply.

What is retried (``GraphQLConfig.retry``):

* queries: every transient failure (they are sent with ``idempotent=True``);
* mutations: only failures that prove nothing was executed (a refused
  connection, a 429/503, a request error), unless the mutation carries an
  idempotency key, in which case they retry like queries.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

import attrs

from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import ConnectorError, ErrorCode, ErrorRule, RetryHint, build_error
from dictamesh_connectors.graphql.config import GraphQLConfig
from dictamesh_connectors.graphql.errors import (
    GRAPHQL_RESPONSE_MEDIA_TYPE,
    GraphQLAuthenticationError,
    GraphQLResponse,
    classify_response,
)
from dictamesh_connectors.graphql.pagination import iter_nodes, iter_pages, split_path
from dictamesh_connectors.http.config import HTTPConfig
from dictamesh_connectors.http.connector import HTTPConnector
from dictamesh_connectors.http.content import JSONError, encode_json
from dictamesh_connectors.http.errors import invalid_request
from dictamesh_connectors.retry import RetryPolicy, retry_once

__all__ = ["GraphQLConnector", "operation_type"]

logger = logging.getLogger(__name__)

_ACCEPT = f"{GRAPHQL_RESPONSE_MEDIA_TYPE}, application/json;q=0.9"
_PING_QUERY = "query DictameshPing { __typename }"
_UNSERIALISABLE = ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE)

# Tokens of a GraphQL document, enough to find its operations: strings and
# comments are skipped whole so a "{" or "mutation" inside them is ignored.
_TOKEN = re.compile(
    r'"""(?:\\"""|[\s\S])*?"""|"(?:\\.|[^"\\\n])*"|#[^\n\r]*|[_A-Za-z][_0-9A-Za-z]*|\S'
)
_KEYWORDS = frozenset({"query", "mutation", "subscription", "fragment"})


def operation_type(document: str, operation_name: str | None = None) -> str | None:
    """Tell which kind of operation ``document`` runs, without a full parser.

    Args:
        document: The GraphQL document.
        operation_name: The operation to run when the document has several.

    Returns:
        ``"query"``, ``"mutation"`` or ``"subscription"``; ``None`` when it
        cannot tell (no operation, several without a name, a name that is not
        there): the server then decides, and rejects it.
    """
    operations: list[tuple[str, str | None]] = []
    depth = parens = 0
    pending: str | None = None  # keyword of the definition being read at depth 0
    expect_name = False
    name: str | None = None
    for match in _TOKEN.finditer(document):
        token = match.group()
        if token[0] in '"#':
            continue
        if token == "(":
            parens += 1
        elif token == ")":
            parens = max(0, parens - 1)
        elif token == "{" and parens == 0:
            if depth == 0:
                if pending is None:
                    operations.append(("query", None))  # the { ... } shorthand
                elif pending != "fragment":
                    operations.append((pending, name))
                pending, name, expect_name = None, None, False
            depth += 1
        elif token == "}" and parens == 0:
            depth = max(0, depth - 1)
        elif depth == 0 and parens == 0:
            if pending is None and token in _KEYWORDS:
                pending, expect_name = token, True
            elif expect_name and (token[0].isalpha() or token[0] == "_"):
                name, expect_name = token, False
            else:
                expect_name = False
    if operation_name is not None:
        kinds = [kind for kind, op_name in operations if op_name == operation_name]
        return kinds[0] if len(kinds) == 1 else None
    return operations[0][0] if len(operations) == 1 else None


class GraphQLConnector(Connector[GraphQLConfig, HTTPConnector]):
    """A GraphQL client built on ``HTTPConnector``: same auth, pool, TLS and retry policy.

    Thread safety: one instance is meant to be shared by every thread of a
    process; ``query``, ``mutation``, ``paginate`` and ``ping`` may run
    concurrently (the connection pool is the HTTP connector's). It survives
    ``fork()``: the child opens its own pool on first use.

    Queries are retried on transient failures; mutations only when nothing
    can have been executed, or when given an idempotency key. A response
    with ``errors`` raises ``GraphQLError`` carrying every error and the
    partial ``data``.

    Example::

        config = GraphQLConfig.from_url("graphql+https://api.example.com/graphql")
        with GraphQLConnector(config) as gql:
            me = gql.query("query Me { me { id name } }")["me"]
            gql.mutation(
                "mutation($n: String!) { rename(name: $n) { id } }",
                {"n": "Ada"},
                idempotency_key="rename-42",
            )
    """

    name: ClassVar[str] = "graphql"
    config_class: ClassVar[type[GraphQLConfig]] = GraphQLConfig

    def __init__(self, config: GraphQLConfig) -> None:
        """Validate ``config``; no I/O until ``connect()``.

        Raises:
            InvalidConfigError: ``config`` is not a valid ``GraphQLConfig``.
        """
        super().__init__(config)
        self._endpoint = config.endpoint_url

    @property
    def endpoint_url(self) -> str:
        """The URL every operation is POSTed to."""
        return self._endpoint

    # ------------------------------------------------------------------ hooks

    def _transport_config(self) -> HTTPConfig:
        """The HTTP connector's config: ours, as a plain ``HTTPConfig``, without retries."""
        fields = {
            field.name: getattr(self.config, field.name)
            for field in attrs.fields(HTTPConfig)
            if field.init
        }
        fields.update(retry=RetryPolicy.no_retry(), max_retries=None)
        return HTTPConfig(**fields)

    def _open(self) -> HTTPConnector:
        http = HTTPConnector(self._transport_config())
        http.connect()
        return http

    def _close(self, handle: HTTPConnector, timeout: float | None) -> None:
        handle.disconnect(timeout)

    def _pool_stats(self, handle: HTTPConnector) -> dict[str, Any]:
        return dict(handle.stats().pool)  # the wrapped HTTP connector's urllib3 pools

    def _ping(self, handle: HTTPConnector, timeout: float | None) -> None:
        self._attempt(
            handle,
            _PING_QUERY,
            None,
            "DictameshPing",
            operation="query",
            idempotent=True,
            idempotency_key=None,
            headers=None,
            timeout=timeout,
        )

    def _on_connection_lost(self, handle: HTTPConnector, error: ConnectorError) -> None:
        # The HTTP connector's urllib3 pool drops broken connections by itself;
        # rebuilding it would only cost every other thread its connections.
        logger.debug("%s: connection lost (%s); the pool recovers by itself", self.name, error)

    # ------------------------------------------------------------- operations

    def query(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run a query and return its ``data``; retried on transient failures.

        Args:
            query: The GraphQL document (a query; mutations go to ``mutation``).
            variables: The variables, JSON-serialisable.
            operation_name: Which operation of the document to run.
            headers: Extra HTTP headers for this request.
            timeout: Read timeout in seconds for this request.

        Returns:
            The response's ``data`` object.

        Raises:
            GraphQLError: The response carried ``errors`` (partial ``data`` and
                every error on the exception); ``GraphQLAuthenticationError``
                for ``UNAUTHENTICATED``.
            InvalidRequestError: ``INVALID_REQUEST``, nothing sent: a mutation
                or subscription document, an empty document, a header that
                cannot be sent (the HTTP connector's ``InvalidRequestError``).
            ConnectorError: ``SERIALIZATION_ERROR`` for variables that are not
                JSON, ``PROTOCOL_ERROR`` for a body that is not a GraphQL
                response, or the HTTP connector's mapping of a failed exchange.
            NotConnectedError: The connector is not connected.
        """
        kind = operation_type(query, operation_name)
        if kind in ("mutation", "subscription"):
            raise invalid_request(
                f"{self.name}: query() was given a {kind}; "
                f"{'use mutation()' if kind == 'mutation' else 'subscriptions need a WebSocket'}",
                connector=self.name,
            )
        return self.execute(query, variables, operation_name, headers=headers, timeout=timeout).data

    def mutation(
        self,
        mutation: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run a mutation and return its ``data``; sent once unless it is safe to repeat.

        Without an idempotency key a mutation is retried only after failures
        that prove the server did not execute it (a refused connection, a
        429 or 503, a request error). With one (``idempotency_key``, or a
        fresh UUID per call when the config's ``auto_idempotency_key`` is on),
        it is sent in the config's ``idempotency_header`` and retried like a
        query, every attempt carrying the same key.

        Args:
            mutation: The GraphQL document.
            variables: The variables, JSON-serialisable.
            operation_name: Which operation of the document to run.
            idempotency_key: A key the server de-duplicates repeats with.
            headers: Extra HTTP headers for this request.
            timeout: Read timeout in seconds for this request.

        Returns:
            The response's ``data`` object.

        Raises:
            GraphQLError: The response carried ``errors``; ``maybe_applied``
                is set when execution had begun (``data`` present).
            ConnectorError: ``SERIALIZATION_ERROR`` for variables that are not
                JSON, ``PROTOCOL_ERROR`` for a body that is not a GraphQL
                response, or the HTTP connector's mapping of a failed exchange
                (a 500 is ``maybe_applied`` and not retried without a key).
            NotConnectedError: The connector is not connected.
        """
        if idempotency_key is None and self.config.auto_idempotency_key:
            idempotency_key = str(uuid.uuid4())  # one key for every attempt of this call
        return self.execute(
            mutation,
            variables,
            operation_name,
            operation="mutation",
            idempotent=idempotency_key is not None,
            idempotency_key=idempotency_key,
            headers=headers,
            timeout=timeout,
        ).data

    def execute(
        self,
        document: str,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        operation: str = "query",
        idempotent: bool = True,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> GraphQLResponse:
        """Send any GraphQL document and return the whole response (data, extensions, headers).

        ``query`` and ``mutation`` are the usual entry points; this one
        exposes the retry decision and the response's ``extensions`` (query
        cost, tracing) and headers (rate-limit counters).

        Args:
            document: The GraphQL document.
            variables: The variables, JSON-serialisable.
            operation_name: Which operation of the document to run.
            operation: ``"query"`` or ``"mutation"`` (for messages and
                ``maybe_applied``).
            idempotent: Whether repeating the request is harmless.
            idempotency_key: Sent in the config's ``idempotency_header``.
            headers: Extra HTTP headers for this request.
            timeout: Read timeout in seconds for this request.

        Returns:
            The ``GraphQLResponse`` of a response without ``errors``.

        Raises:
            GraphQLError: The response carried ``errors``.
            ConnectorError: As for ``query`` and ``mutation``.
            NotConnectedError: The connector is not connected.
        """
        body = self._encode(document, variables, operation_name)
        description = f"{operation} {operation_name}" if operation_name else operation
        return self._run(
            lambda http: self._send(
                http,
                body,
                operation_name,
                operation=operation,
                idempotent=idempotent,
                idempotency_key=idempotency_key,
                headers=headers,
                timeout=timeout,
            ),
            idempotent=idempotent,
            description=description,
        )

    def pages(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        path: str | Sequence[str],
        cursor_variable: str = "after",
        operation_name: str | None = None,
        max_pages: int | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        """Iterate a relay connection page by page (each page's connection object).

        Each page is one ``query()`` (retried on its own); the next page's
        ``cursor_variable`` is the previous ``pageInfo.endCursor``, until
        ``pageInfo.hasNextPage`` is false. The query must select
        ``pageInfo { hasNextPage endCursor }`` on the connection.

        Args:
            query: The query, with a cursor variable (``$after: String``).
            variables: The first page's variables (e.g. ``{"first": 100}``).
            path: Where the connection is in ``data``: ``"repository.issues"``.
            cursor_variable: The name of the cursor variable.
            operation_name: Which operation of the document to run.
            max_pages: Stop after this many pages.
            headers: Extra HTTP headers for every page's request.
            timeout: Read timeout in seconds for each page's request.

        Returns:
            A lazy iterator of connection objects (``edges``/``nodes``/``pageInfo``).

        Raises:
            InvalidConfigError: ``path`` is empty or malformed (at once).
            GraphQLError: A page's response carried ``errors`` (while iterating).
            ConnectorError: ``PROTOCOL_ERROR`` when the response has no
                connection or ``pageInfo`` at ``path`` or repeats a cursor, or
                any error of ``query`` (while iterating).
        """
        split_path(path)  # a bad path fails now, not at the first next()
        return iter_pages(
            lambda page_variables: self.query(
                query, page_variables, operation_name, headers=headers, timeout=timeout
            ),
            variables,
            path=path,
            cursor_variable=cursor_variable,
            max_pages=max_pages,
        )

    def paginate(
        self,
        query: str,
        variables: Mapping[str, Any] | None = None,
        *,
        path: str | Sequence[str],
        cursor_variable: str = "after",
        operation_name: str | None = None,
        max_pages: int | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Iterate every node of a relay connection across pages.

        Like ``pages`` (same arguments), yielding ``edges[].node`` when the
        query selects ``edges { node }``, else the items of ``nodes``.

        Example::

            issues = gql.paginate(
                "query($after: String) { repo { issues(first: 100, after: $after) {"
                " nodes { id } pageInfo { hasNextPage endCursor } } } }",
                path="repo.issues",
            )
            ids = [issue["id"] for issue in issues]

        Raises:
            InvalidConfigError: ``path`` is empty or malformed (at once).
            GraphQLError: A page's response carried ``errors`` (while iterating).
            ConnectorError: ``PROTOCOL_ERROR`` when a page has neither
                ``edges`` nor ``nodes``, and everything ``pages`` raises.
        """
        return iter_nodes(
            self.pages(
                query,
                variables,
                path=path,
                cursor_variable=cursor_variable,
                operation_name=operation_name,
                max_pages=max_pages,
                headers=headers,
                timeout=timeout,
            )
        )

    # ---------------------------------------------------------------- helpers

    def _encode(
        self, document: str, variables: Mapping[str, Any] | None, operation_name: str | None
    ) -> bytes:
        if not isinstance(document, str) or not document.strip():
            raise invalid_request(
                f"{self.name}: the GraphQL document must be a non-empty string",
                connector=self.name,
            )
        payload: dict[str, Any] = {"query": document}
        if variables:
            payload["variables"] = dict(variables)
        if operation_name:
            payload["operationName"] = operation_name
        try:
            return encode_json(payload)
        except JSONError as exc:
            raise build_error(
                f"{self.name}: variables are not JSON-serialisable: {exc}",
                _UNSERIALISABLE,
                connector=self.name,
            ) from exc

    def _attempt(
        self,
        http: HTTPConnector,
        document: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        **kwargs: Any,
    ) -> GraphQLResponse:
        return self._send(
            http, self._encode(document, variables, operation_name), operation_name, **kwargs
        )

    def _send(
        self,
        http: HTTPConnector,
        body: bytes,
        operation_name: str | None,
        *,
        operation: str,
        idempotent: bool,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> GraphQLResponse:
        """One HTTP exchange, classified; the retry loop is ``_run``'s.

        With OAuth2, a GraphQL ``UNAUTHENTICATED`` (which servers send with a
        200, so the HTTP layer's refresh-on-401 never sees it) drops the token
        the request went with, and the request is resent once with a new one.
        """
        request_headers = {"Content-Type": "application/json", "Accept": _ACCEPT}
        if headers:
            request_headers.update(headers)
        tokens = http.token_source
        used: str | None = None  # the token the last attempt went with

        def attempt() -> GraphQLResponse:
            nonlocal used
            used = tokens.token() if tokens is not None else None
            response = http.request(
                "POST",
                self._endpoint,
                data=body,
                headers=request_headers,
                timeout=timeout,
                idempotency_key=idempotency_key,
                idempotent=idempotent,
                raise_for_status=False,
            )
            return classify_response(
                response.status_code,
                response.headers,
                response.body,
                url=self._endpoint,
                operation=operation,
                operation_name=operation_name,
                idempotent=idempotent,
                idempotency_key=idempotency_key is not None,
                connector=self.name,
            )

        def refused_token(err: ConnectorError, attempt_number: int) -> bool:
            if (
                attempt_number > 1
                or tokens is None
                or not isinstance(err, GraphQLAuthenticationError)
                or err.maybe_applied
            ):
                return False
            logger.info("%s: UNAUTHENTICATED; refreshing the OAuth2 token once", self.name)
            tokens.invalidate(used)
            return True

        return retry_once(attempt, refused_token)
