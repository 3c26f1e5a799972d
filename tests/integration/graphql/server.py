"""A real GraphQL server for the integration tests: graphql-core behind a threaded WSGI server.

It listens on 127.0.0.1, port 0, and speaks GraphQL-over-HTTP: with
``Accept: application/graphql-response+json`` it answers in that media type
with the spec's status codes (200 / 400 / 422 / 429), otherwise the legacy
``application/json`` with 200 for every well-formed request.

Schema highlights: ``hello``, ``items`` (250 relay-paginated items),
``broken`` (a field that errors: partial data), ``secret`` (needs
``Authorization: Bearer good-token``, else ``UNAUTHENTICATED``),
``forbidden`` (``FORBIDDEN``), ``throttled`` (``THROTTLED`` with
``Retry-After`` until ``throttle_remaining`` reaches 0), and the mutation
``increment`` which de-duplicates by ``Idempotency-Key``.

Tests script faults with ``script()``: each scripted response is consumed by
one request, either instead of executing it (``when="before"``) or after it
executed (``when="after"``: the mutation applied, then the server "crashed").
"""

from __future__ import annotations

import base64
import json
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from graphql import GraphQLError, build_schema, graphql_sync, parse
from graphql.error import GraphQLSyntaxError

from ..http.servers import ServiceServer, WSGIApp

SDL = """
type Query {
  hello(name: String = "world"): String!
  items(first: Int = 50, after: String): ItemConnection!
  broken: Item
  item(id: Int!): Item
  secret: String
  forbidden: String
  throttled: Int!
  counter: Int!
}

type Mutation {
  increment(by: Int! = 1): Int!
}

type Item {
  id: Int!
  name: String!
}

type ItemConnection {
  edges: [ItemEdge!]!
  nodes: [Item!]!
  pageInfo: PageInfo!
  totalCount: Int!
}

type ItemEdge {
  cursor: String!
  node: Item!
}

type PageInfo {
  hasNextPage: Boolean!
  endCursor: String
}
"""

SCHEMA = build_schema(SDL)
ITEM_COUNT = 250
GOOD_TOKEN = "good-token"
CLIENT_ID = "gql-client"
CLIENT_SECRET = "gql-client-secret"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def _cursor(index: int) -> str:
    return base64.b64encode(f"item:{index}".encode()).decode()


def _index(cursor: str) -> int:
    try:
        kind, _, number = base64.b64decode(cursor.encode()).decode().partition(":")
        if kind != "item":
            raise ValueError(cursor)
        return int(number)
    except ValueError as exc:
        raise GraphQLError("invalid cursor", extensions={"code": "BAD_USER_INPUT"}) from exc


class GraphQLTestServer(ServiceServer):
    """graphql-core served over HTTP on 127.0.0.1:<random port>, in a thread.

    ``count(name)`` counts requests by operationName or root field;
    arguments as ``ServiceServer``.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        middleware: Callable[[WSGIApp], WSGIApp] | None = None,
    ) -> None:
        super().__init__(ssl_context, middleware)  # _lock also guards every counter below
        self.counter = 0
        self.applied_keys: dict[str, int] = {}
        self.throttle_remaining = 0
        self.throttle_retry_after = "0"
        self.throttle_status = 429
        self.seen_headers: list[dict[str, str]] = []
        self.issued_tokens: list[str] = []  # OAuth2 tokens handed out by /token
        self.valid_tokens: set[str] = {GOOD_TOKEN}
        self.reject_all_tokens = False
        self.url = f"{self.base_url}/graphql"

    # ------------------------------------------------------------ scripting

    def script(
        self,
        status: int,
        body: str | bytes = b"",
        *,
        content_type: str = "text/html",
        headers: Iterable[tuple[str, str]] = (),
        when: str = "before",
        times: int = 1,
    ) -> None:
        """Queue ``times`` canned responses for the next requests."""
        payload = body.encode() if isinstance(body, str) else body
        with self._lock:
            for _ in range(times):
                self._script.append(
                    {
                        "status": status,
                        "body": payload,
                        "headers": [("Content-Type", content_type), *headers],
                        "when": when,
                    }
                )

    def revoke_tokens(self) -> None:
        """Make every OAuth2 token issued so far invalid (server-side expiry)."""
        with self._lock:
            self.valid_tokens -= set(self.issued_tokens)

    def _token(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)).decode()
        if (
            environ.get("HTTP_AUTHORIZATION") != expected
            or "grant_type=client_credentials" not in form
        ):
            start_response("401 Unauthorized", [("Content-Type", "application/json")])
            return [b'{"error": "invalid_client"}']
        with self._lock:
            token = f"oauth-{len(self.issued_tokens) + 1}"
            self.issued_tokens.append(token)
            self.valid_tokens.add(token)
        body = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    # ------------------------------------------------------------ resolvers

    def _root(self, environ: dict[str, Any]) -> dict[str, Any]:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        idempotency_key = environ.get("HTTP_IDEMPOTENCY_KEY")

        def items(_info: Any, first: int = 50, after: str | None = None) -> dict[str, Any]:
            if first < 0 or first > 100:
                raise GraphQLError("first must be 0..100", extensions={"code": "BAD_USER_INPUT"})
            start = _index(after) + 1 if after else 0
            end = min(start + first, ITEM_COUNT)
            page = [{"id": i, "name": f"item-{i}"} for i in range(start, end)]
            return {
                "edges": [{"cursor": _cursor(item["id"]), "node": item} for item in page],
                "nodes": page,
                "pageInfo": {
                    "hasNextPage": end < ITEM_COUNT,
                    "endCursor": _cursor(end - 1) if page else None,
                },
                "totalCount": ITEM_COUNT,
            }

        def broken(_info: Any) -> Any:
            raise GraphQLError(
                "the item service is down", extensions={"code": "INTERNAL_SERVER_ERROR"}
            )

        def secret(_info: Any) -> str:
            with self._lock:
                valid = {f"Bearer {t}" for t in self.valid_tokens if not self.reject_all_tokens}
            if authorization not in valid:
                raise GraphQLError("not authenticated", extensions={"code": "UNAUTHENTICATED"})
            return "the-secret"

        def forbidden(_info: Any) -> str:
            raise GraphQLError("not allowed", extensions={"code": "FORBIDDEN"})

        def increment(_info: Any, by: int = 1) -> int:
            if by == 0:
                raise GraphQLError("by must not be 0", extensions={"code": "BAD_USER_INPUT"})
            with self._lock:
                if idempotency_key is not None and idempotency_key in self.applied_keys:
                    return self.applied_keys[idempotency_key]
                self.counter += by
                if idempotency_key is not None:
                    self.applied_keys[idempotency_key] = self.counter
                return self.counter

        def counter(_info: Any) -> int:
            with self._lock:
                return self.counter

        return {
            "hello": lambda _info, name="world": f"hello {name}",
            "items": items,
            "broken": broken,
            "item": lambda _info, id: {"id": id, "name": f"item-{id}"},
            "secret": secret,
            "forbidden": forbidden,
            "throttled": lambda _info: 1,
            "counter": counter,
            "increment": increment,
        }

    # ------------------------------------------------------------------ WSGI

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        modern = GRAPHQL_RESPONSE in environ.get("HTTP_ACCEPT", "")
        media_type = GRAPHQL_RESPONSE if modern else "application/json"

        def reply(
            status: int, result: dict[str, Any], extra: Iterable[tuple[str, str]] = ()
        ) -> list[bytes]:
            if not modern:
                status = 200  # legacy: 200 for every well-formed request
            body = json.dumps(result).encode()
            start_response(
                f"{status} X",
                [("Content-Type", f"{media_type}; charset=utf-8"), *extra],
            )
            return [body]

        if environ.get("PATH_INFO") == "/token":
            return self._token(environ, start_response)
        if environ["REQUEST_METHOD"] != "POST":
            start_response(
                "405 Method Not Allowed", [("Allow", "POST"), ("Content-Type", "text/plain")]
            )
            return [b"POST only"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length)
        try:
            request = json.loads(raw)
            document = request["query"]
            variables = request.get("variables") or {}
            operation_name = request.get("operationName")
        except (ValueError, KeyError, TypeError):
            return reply(400, {"errors": [{"message": "request body is not a GraphQL request"}]})
        try:
            ast = parse(document)
        except GraphQLSyntaxError as exc:
            return reply(400, {"errors": [exc.formatted]})
        fields = [
            selection.name.value
            for definition in ast.definitions
            for selection in getattr(getattr(definition, "selection_set", None), "selections", [])
            if hasattr(selection, "name")
        ]
        with self._lock:
            self.requests[operation_name or (fields[0] if fields else "?")] += 1
            self.seen_headers.append(
                {k[5:]: v for k, v in environ.items() if k.startswith("HTTP_")}
            )
            scripted = self._script.popleft() if self._script else None
            throttle = "throttled" in fields and self.throttle_remaining > 0
            if throttle:
                self.throttle_remaining -= 1

        if scripted is not None and scripted["when"] == "before":
            start_response(f"{scripted['status']} X", scripted["headers"])
            return [scripted["body"]]
        if throttle:
            return reply(
                self.throttle_status,
                {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]},
                [("Retry-After", self.throttle_retry_after)],
            )

        result = graphql_sync(
            SCHEMA,
            document,
            root_value=self._root(environ),
            variable_values=variables,
            operation_name=operation_name,
        )
        if scripted is not None:  # when == "after": executed, then failed
            start_response(f"{scripted['status']} X", scripted["headers"])
            return [scripted["body"]]
        formatted: dict[str, Any] = dict(result.formatted)
        if result.errors and result.data is None and not _executed(result.errors):
            formatted.pop("data", None)  # a request error: no data entry (GraphQL spec)
            return reply(422, formatted)
        return reply(200, formatted)


def _executed(errors: list[GraphQLError]) -> bool:
    """Field errors carry a path; validation/coercion errors do not."""
    return any(error.path for error in errors)
