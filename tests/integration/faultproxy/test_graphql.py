"""GraphQL connector through FaultProxy against the real local GraphQL server.

The server is ``tests/integration/graphql/server.py``'s graphql-core behind a
threaded WSGI server; the proxy (the plugin's ``fault_proxy`` fixture) sits
between it and the connector. Timeouts, resets and refused connections, for
a query (idempotent: retried) and a mutation (not retried once sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
)
from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.integration.faultproxy.conftest import bounded
from tests.integration.graphql.server import GraphQLTestServer

pytestmark = pytest.mark.integration

ONCE = RetryPolicy(max_attempts=1)
RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.1, jitter=False)
INCREMENT = "mutation Inc { increment }"


@pytest.fixture
def server() -> Iterator[GraphQLTestServer]:
    with GraphQLTestServer() as srv:
        yield srv


@pytest.fixture
def proxy(fault_proxy: Callable[..., FaultProxy], server: GraphQLTestServer) -> FaultProxy:
    host, port = server.base_url.split("//", 1)[1].split(":")
    return fault_proxy((host, int(port)))


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Callable[..., GraphQLConnector]]:
    made: list[GraphQLConnector] = []

    def build(**fields: Any) -> GraphQLConnector:
        fields.setdefault("retry", ONCE)
        fields.setdefault("timeout", 1.0)
        fields.setdefault("connect_timeout", 1.0)
        config = GraphQLConfig(base_url=f"http://{proxy.host}:{proxy.port}/graphql", **fields)
        connector = GraphQLConnector(config)
        connector.connect()
        made.append(connector)
        return connector

    yield build
    proxy.clear()
    for connector in made:
        connector.disconnect(10)


def test_query_through_the_proxy(connect: Callable[..., GraphQLConnector], proxy: FaultProxy):
    assert connect().query("{ hello }") == {"hello": "hello world"}
    assert proxy.stats.bytes_upstream > 0 and proxy.stats.bytes_downstream > 0


def test_blackhole_times_out_then_recovers(
    connect: Callable[..., GraphQLConnector], proxy: FaultProxy
):
    gql = connect()
    assert gql.query("{ hello }") == {"hello": "hello world"}
    proxy.blackhole(True)
    err = bounded(lambda: gql.query("{ hello }")).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT and err.transient
    proxy.clear()
    assert bounded(lambda: gql.query("{ hello }")).result == {"hello": "hello world"}


def test_a_reset_query_is_retried_on_a_new_connection(
    connect: Callable[..., GraphQLConnector], proxy: FaultProxy, server: GraphQLTestServer
):
    gql = connect(retry=RETRY)
    assert gql.query("{ counter }") == {"counter": 0}  # a pooled connection now
    proxy.reset_next(direction="downstream")  # the query runs, its answer is reset
    assert bounded(lambda: gql.query("{ counter }")).result == {"counter": 0}
    assert proxy.stats.faults["reset"] == 1
    assert server.count("counter") == 3  # the first, the reset one, its retry


def test_a_reset_mutation_is_maybe_applied_and_not_repeated(
    connect: Callable[..., GraphQLConnector], proxy: FaultProxy, server: GraphQLTestServer
):
    gql = connect(retry=RETRY)
    proxy.reset_next(direction="downstream")  # the server applies it, the answer is lost
    err = bounded(lambda: gql.mutation(INCREMENT, operation_name="Inc")).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_LOST and err.maybe_applied
    assert server.count("Inc") == 1 and server.counter == 1  # sent once, never again
    assert gql.mutation(INCREMENT, operation_name="Inc") == {"increment": 2}


def test_refused_connections_fail_unsent_then_reconnect(
    connect: Callable[..., GraphQLConnector], proxy: FaultProxy, server: GraphQLTestServer
):
    gql = connect()
    proxy.refuse(True)
    proxy.reset_connections()  # the pooled connection too: the next request must connect
    err = bounded(lambda: gql.mutation(INCREMENT, operation_name="Inc")).error
    assert isinstance(err, ConnectorError), err
    assert err.code is ErrorCode.CONNECTION_FAILED and not err.maybe_applied
    assert server.counter == 0
    proxy.refuse(False)
    assert bounded(lambda: gql.mutation(INCREMENT, operation_name="Inc")).result == {"increment": 1}
