"""GraphQLConnector against a real graphql-core server on 127.0.0.1 (started per test)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("graphql")

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ErrorCode,
    NotConnectedError,
)
from dictamesh_connectors.graphql import (
    GraphQLAuthenticationError,
    GraphQLConfig,
    GraphQLConnector,
    GraphQLError,
)
from dictamesh_connectors.retry import RetryPolicy

from ..http.servers import corrupt_tls_after, server_tls_context, tls_files
from .server import CLIENT_ID, CLIENT_SECRET, GOOD_TOKEN, ITEM_COUNT, GraphQLTestServer

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, deadline=10)
ITEMS_QUERY = """
query Items($first: Int!, $after: String) {
  items(first: $first, after: $after) {
    edges { cursor node { id name } }
    pageInfo { hasNextPage endCursor }
  }
}
"""
ITEMS_NODES_QUERY = """
query ItemNodes($first: Int!, $cursor: String) {
  items(first: $first, after: $cursor) {
    nodes { id }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.fixture
def server() -> Iterator[GraphQLTestServer]:
    with GraphQLTestServer() as srv:
        yield srv


def make(server: GraphQLTestServer, **overrides: Any) -> GraphQLConnector:
    config = GraphQLConfig.from_url(
        "graphql+" + server.url, retry=overrides.pop("retry", FAST_RETRY), **overrides
    )
    return GraphQLConnector(config)


def oauth2_credentials(server: GraphQLTestServer) -> dict[str, str]:
    return {
        "token_url": server.url.replace("/graphql", "/token"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }


@pytest.fixture
def gql(server: GraphQLTestServer) -> Iterator[GraphQLConnector]:
    with make(server) as connector:
        yield connector


# ----------------------------------------------------------------- queries


def test_query_returns_data_with_variables_and_operation_name(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    assert gql.query("{ hello }") == {"hello": "hello world"}
    document = """
      query A($name: String) { hello(name: $name) }
      query B { counter }
    """
    assert gql.query(document, {"name": "Ada"}, "A") == {"hello": "hello Ada"}
    assert gql.query(document, operation_name="B") == {"counter": 0}
    assert server.count("A") == 1 and server.count("B") == 1


def test_execute_exposes_status_and_headers(gql: GraphQLConnector) -> None:
    response = gql.execute("{ hello }")
    assert response.data == {"hello": "hello world"}
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/graphql-response+json")


def test_field_error_raises_with_partial_data_and_is_not_retried(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    with pytest.raises(GraphQLError) as info:
        gql.query("query Partial { hello broken { id } }", operation_name="Partial")
    err = info.value
    assert err.code is ErrorCode.GRAPHQL_ERROR and not err.transient
    assert err.data == {"hello": "hello world", "broken": None}
    assert len(err.errors) == 1
    assert err.errors[0]["path"] == ["broken"]
    assert err.errors[0]["message"] == "the item service is down"
    assert err.errors[0]["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert server.count("Partial") == 1


@pytest.mark.parametrize("accept", [None, "application/json"])
def test_validation_error_is_invalid_request_in_both_media_types(
    gql: GraphQLConnector, server: GraphQLTestServer, accept: str | None
) -> None:
    # The modern media type gets 422 with no data entry; legacy gets 200.
    headers = {"Accept": accept} if accept else None
    with pytest.raises(GraphQLError) as info:
        gql.query("query Bad { nope }", operation_name="Bad", headers=headers)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert info.value.details["status_code"] == (200 if accept else 422)
    assert "Cannot query field 'nope'" in info.value.errors[0]["message"]
    assert server.count("Bad") == 1


def test_syntax_error_is_invalid_request(gql: GraphQLConnector) -> None:
    with pytest.raises(GraphQLError) as info:
        gql.query("{ hello")
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert info.value.details["status_code"] == 400


def test_unauthenticated_maps_to_auth_failed(gql: GraphQLConnector) -> None:
    with pytest.raises(AuthenticationError) as info:
        gql.query("{ secret }")
    err = info.value
    assert isinstance(err, GraphQLAuthenticationError)
    assert err.code is ErrorCode.AUTH_FAILED and not err.transient
    assert err.data == {"secret": None}
    assert err.errors[0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_bearer_token_from_the_http_config_reaches_the_server(
    server: GraphQLTestServer,
) -> None:
    with make(server, credentials={"token": GOOD_TOKEN}) as gql:
        assert gql.query("{ secret }") == {"secret": "the-secret"}
    assert server.seen_headers[-1]["AUTHORIZATION"] == f"Bearer {GOOD_TOKEN}"


def test_oauth2_token_is_refreshed_once_on_graphql_unauthenticated(
    server: GraphQLTestServer,
) -> None:
    with make(server, credentials=oauth2_credentials(server)) as gql:
        assert gql.query("{ secret }") == {"secret": "the-secret"}
        assert server.issued_tokens == ["oauth-1"]
        server.revoke_tokens()  # the server expires the token before the client thinks it should
        # The server answers 200 + UNAUTHENTICATED: the connector drops the token,
        # fetches a new one and resends the query once.
        assert gql.query("query S { secret }", operation_name="S") == {"secret": "the-secret"}
        assert server.issued_tokens == ["oauth-1", "oauth-2"]
        assert server.count("S") == 2
        assert server.seen_headers[-1]["AUTHORIZATION"] == "Bearer oauth-2"


def test_oauth2_unauthenticated_that_persists_is_raised_after_one_refresh(
    server: GraphQLTestServer,
) -> None:
    with make(server, credentials=oauth2_credentials(server)) as gql:
        server.reject_all_tokens = True
        with pytest.raises(GraphQLAuthenticationError):
            gql.query("query S { secret }", operation_name="S")
    assert server.count("S") == 2  # the first try and one resend, not retried further
    assert len(server.issued_tokens) == 2


def test_forbidden_maps_to_permission_denied(gql: GraphQLConnector) -> None:
    with pytest.raises(GraphQLError) as info:
        gql.query("{ forbidden }")
    assert info.value.code is ErrorCode.PERMISSION_DENIED


@pytest.mark.parametrize("status", [429, 200])
def test_throttled_query_is_retried_until_it_passes(
    gql: GraphQLConnector, server: GraphQLTestServer, status: int
) -> None:
    server.throttle_remaining = 2
    server.throttle_status = status
    assert gql.query("query T { throttled }", operation_name="T") == {"throttled": 1}
    assert server.count("T") == 3


def test_throttling_that_outlasts_the_retries_raises_rate_limited_with_retry_after(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    server.throttle_remaining = 100
    # 1 s is beyond the policy's max_backoff (0.05 s): raised at once with
    # retry_after set, never retried early.
    server.throttle_retry_after = "1"
    with pytest.raises(GraphQLError) as info:
        gql.query("query T { throttled }", operation_name="T")
    err = info.value
    assert err.code is ErrorCode.RATE_LIMITED and err.transient
    assert err.retry_after == 1.0
    assert err.errors == [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]
    assert server.count("T") == 1


def test_query_is_retried_on_a_non_graphql_502(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    server.script(502, "<html>Bad Gateway</html>", times=2)
    assert gql.query("query H { hello }", operation_name="H") == {"hello": "hello world"}
    assert server.count("H") == 3


def test_non_graphql_5xx_that_persists_raises_the_http_mapping(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    server.script(503, "<html>down</html>", headers=[("Retry-After", "0")], times=5)
    with pytest.raises(ConnectorError) as info:
        gql.query("query H { hello }", operation_name="H")
    assert not isinstance(info.value, GraphQLError)
    assert info.value.code is ErrorCode.UNAVAILABLE
    assert info.value.details["status_code"] == 503
    assert server.count("H") == 3


def test_graphql_body_on_503_is_parsed_and_retried(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    body = json.dumps({"errors": [{"message": "maintenance"}]})
    server.script(503, body, content_type="application/graphql-response+json", times=5)
    with pytest.raises(GraphQLError) as info:
        gql.query("query H { hello }", operation_name="H")
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.transient
    assert info.value.errors == [{"message": "maintenance"}]
    assert server.count("H") == 3


def test_query_refuses_a_mutation_document_without_sending_it(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    with pytest.raises(ConnectorError) as info:
        gql.query("mutation { increment }")
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert "use mutation()" in info.value.message
    assert server.count("increment") == 0 and server.counter == 0


# ---------------------------------------------------------------- mutations


def test_mutation_returns_data(gql: GraphQLConnector, server: GraphQLTestServer) -> None:
    assert gql.mutation("mutation($by: Int!) { increment(by: $by) }", {"by": 5}) == {"increment": 5}
    assert server.counter == 5


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<html>Internal Server Error</html>", "text/html"),
        (json.dumps({"errors": [{"message": "Internal error"}]}), "application/json"),
    ],
)
def test_mutation_is_sent_exactly_once_on_500_without_an_idempotency_key(
    gql: GraphQLConnector, server: GraphQLTestServer, body: str, content_type: str
) -> None:
    # The server applies the mutation, then answers 500.
    server.script(500, body, content_type=content_type, when="after", times=5)
    with pytest.raises(ConnectorError) as info:
        gql.mutation("mutation Inc { increment }", operation_name="Inc")
    err = info.value
    assert err.code is ErrorCode.UNAVAILABLE
    assert err.maybe_applied
    assert server.count("Inc") == 1
    assert server.counter == 1


def test_tls_error_reading_a_mutation_answer_never_repeats_the_mutation(
    tmp_path: Any,
) -> None:
    # The server applies the mutation, then sends a corrupt TLS record instead
    # of the answer: maybe applied, sent once (issue #8, item 1).
    tls = tls_files(tmp_path)
    with (
        GraphQLTestServer(server_tls_context(tls), corrupt_tls_after) as server,
        make(server, ca_bundle=tls.ca_pem) as gql,
    ):
        with pytest.raises(ConnectorError) as info:
            gql.mutation("mutation Inc { increment }", operation_name="Inc")
        assert info.value.maybe_applied
        assert info.value.code is ErrorCode.CONNECTION_LOST
        assert server.count("Inc") == 1 and server.counter == 1
        # A query is idempotent: retried (three attempts).
        with pytest.raises(ConnectorError):
            gql.query("{ hello }")
        assert server.count("hello") == 3


def test_mutation_with_an_idempotency_key_is_retried_with_the_same_key(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    server.script(500, "<html>oops</html>", when="after", times=2)
    data = gql.mutation("mutation Inc { increment }", operation_name="Inc", idempotency_key="k-1")
    assert data == {"increment": 1}
    assert server.count("Inc") == 3
    assert server.counter == 1  # the server de-duplicated the repeats by key
    assert [h.get("IDEMPOTENCY_KEY") for h in server.seen_headers] == ["k-1"] * 3


def test_mutation_without_key_is_retried_when_nothing_was_executed(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    # 503 before execution: the server says it did not process the request.
    server.script(503, "<html>busy</html>", headers=[("Retry-After", "0")])
    assert gql.mutation("mutation Inc { increment }", operation_name="Inc") == {"increment": 1}
    assert server.count("Inc") == 2
    assert server.counter == 1


def test_mutation_execution_error_is_maybe_applied_and_not_retried(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    with pytest.raises(GraphQLError) as info:
        gql.mutation("mutation Zero { increment(by: 0) }", operation_name="Zero")
    err = info.value
    assert err.code is ErrorCode.INVALID_INPUT  # BAD_USER_INPUT
    assert err.maybe_applied  # execution had begun (data: null)
    assert err.data is None and err.errors[0]["path"] == ["increment"]
    assert server.count("Zero") == 1


# ---------------------------------------------------------------- pagination


def test_paginate_follows_cursors_over_all_items_with_edges(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    items = list(gql.paginate(ITEMS_QUERY, {"first": 100}, path="items"))
    assert [item["id"] for item in items] == list(range(ITEM_COUNT))
    assert items[-1] == {"id": ITEM_COUNT - 1, "name": f"item-{ITEM_COUNT - 1}"}
    assert server.count("items") == 3  # 100 + 100 + 50


def test_paginate_with_nodes_and_a_custom_cursor_variable(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    ids = [
        node["id"]
        for node in gql.paginate(
            ITEMS_NODES_QUERY, {"first": 30}, path=["items"], cursor_variable="cursor"
        )
    ]
    assert ids == list(range(ITEM_COUNT))
    assert server.count("items") == 9  # ceil(250 / 30)


def test_pages_yields_connection_objects_and_stops_at_max_pages(
    gql: GraphQLConnector, server: GraphQLTestServer
) -> None:
    pages = list(gql.pages(ITEMS_QUERY, {"first": 10}, path="items", max_pages=3))
    assert len(pages) == 3
    assert [len(p["edges"]) for p in pages] == [10, 10, 10]
    assert pages[-1]["pageInfo"]["hasNextPage"] is True
    assert server.count("items") == 3


def test_paginate_propagates_graphql_errors(gql: GraphQLConnector) -> None:
    with pytest.raises(GraphQLError) as info:
        list(gql.paginate(ITEMS_QUERY, {"first": 1000}, path="items"))
    assert info.value.code is ErrorCode.INVALID_INPUT  # BAD_USER_INPUT


# ---------------------------------------------------------------- threads & lifecycle


def test_sixteen_threads_share_one_connector(server: GraphQLTestServer) -> None:
    gql = make(server, max_idle_conns_per_host=16)
    gql.connect()
    barrier = threading.Barrier(16)

    def worker(thread: int) -> list[tuple[int, str]]:
        barrier.wait(10)
        seen = []
        for i in range(12):
            name = f"t{thread}-{i}"
            data = gql.query("query Hi($n: String) { hello(name: $n) }", {"n": name}, "Hi")
            seen.append((thread, data["hello"]))
        ids = [item["id"] for item in gql.paginate(ITEMS_QUERY, {"first": 100}, path="items")]
        assert ids == list(range(ITEM_COUNT))
        return seen

    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(worker, range(16)))
    finally:
        gql.disconnect()
    for thread, seen in enumerate(results):
        assert seen == [(thread, f"hello t{thread}-{i}") for i in range(12)]
    assert server.count("Hi") == 16 * 12
    assert server.count("items") == 16 * 3


def test_ping_runs_a_typename_query(gql: GraphQLConnector, server: GraphQLTestServer) -> None:
    gql.ping()
    assert server.count("DictameshPing") == 1


def test_ping_fails_on_an_endpoint_that_is_not_graphql(server: GraphQLTestServer) -> None:
    server.script(404, "<html>not here</html>")
    with make(server) as gql, pytest.raises(ConnectorError) as info:
        gql.ping()
    assert info.value.code is ErrorCode.NOT_FOUND


def test_refused_connection_is_connection_failed() -> None:
    with GraphQLTestServer() as srv:
        url = srv.url
    config = GraphQLConfig.from_url("graphql+" + url, retry=FAST_RETRY, connect_timeout=2)
    with GraphQLConnector(config) as gql, pytest.raises(ConnectorError) as info:
        gql.query("{ hello }")
    assert info.value.code is ErrorCode.CONNECTION_FAILED


def test_operations_after_disconnect_raise_not_connected(server: GraphQLTestServer) -> None:
    gql = make(server)
    gql.connect()
    gql.disconnect()
    with pytest.raises(NotConnectedError):
        gql.query("{ hello }")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_opens_its_own_pool(gql: GraphQLConnector, server: GraphQLTestServer) -> None:
    assert gql.query("query P { hello }", operation_name="P") == {"hello": "hello world"}
    parent_http = gql._handle
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            ok = gql.query("query C { hello }", operation_name="C") == {"hello": "hello world"}
            code = 0 if ok and gql._handle is not parent_http else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert server.count("C") == 1
    assert gql._handle is parent_http
    assert gql.query("query P { hello }", operation_name="P") == {"hello": "hello world"}


def test_connect_by_url_through_the_registry(server: GraphQLTestServer) -> None:
    import dictamesh_connectors

    gql = dictamesh_connectors.connect("graphql+" + server.url + "?timeout=5", retry=FAST_RETRY)
    try:
        assert isinstance(gql, GraphQLConnector) and gql.config.timeout == 5.0
        assert gql.query("{ hello }") == {"hello": "hello world"}
    finally:
        gql.disconnect()
