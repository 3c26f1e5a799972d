"""Hostile arguments to every public method of HTTPConnector and GraphQLConnector.

The property (tests/fuzzing.py): a result or a ConnectorError, never another
exception type (TypeError for a wrong argument type excepted), against real
local servers.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import strategies as st

from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector
from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.http.models import Request
from dictamesh_connectors.retry import RetryPolicy
from tests.fuzzing import BASE_CALLS, Call, check_call, check_covers, hostile_text, nested, numbers

from ..graphql.server import GraphQLTestServer
from .servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

NO_WAIT = RetryPolicy(max_attempts=2, initial_backoff=0, max_backoff=0, deadline=5)

headers = st.dictionaries(hostile_text(12), hostile_text(20), max_size=3)
params = st.one_of(st.none(), st.dictionaries(hostile_text(12), hostile_text(20), max_size=3))
request_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "params": params,
        "headers": headers,
        "timeout": numbers(),
        "idempotency_key": hostile_text(20),
    },
)
body_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "params": params,
        "headers": headers,
        "timeout": numbers(),
        "json": nested(),
        "data": st.one_of(hostile_text(), st.binary(max_size=64)),
        "idempotency_key": hostile_text(20),
    },
)
path = st.tuples(hostile_text())


def _reconnect(connector: Any) -> None:
    connector.connect()


def _execute(connector: HTTPConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    method, url, extra = args
    return connector.execute(Request(method=method, url=url, **extra))


def _download(connector: HTTPConnector, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
    return connector.download(args[0], io.BytesIO(), **kwargs)


HTTP_CALLS = [
    *BASE_CALLS,
    *(Call(m, path, request_kwargs) for m in ("get", "head", "options", "delete")),
    *(Call(m, path, body_kwargs) for m in ("post", "put", "patch")),
    Call("request", st.tuples(hostile_text(10), hostile_text()), body_kwargs),
    Call("stream", st.tuples(st.sampled_from(["GET", "POST"]), hostile_text()), request_kwargs),
    Call("paginate", path, request_kwargs),
    Call("download", path, request_kwargs, invoke=_download),
    Call(
        "execute",
        st.tuples(
            st.one_of(st.sampled_from(["GET", "POST"]), hostile_text(8)),
            hostile_text(),
            st.fixed_dictionaries({}, optional={"headers": headers, "params": params}),
        ),
        invoke=_execute,
    ),
    Call("url_for", st.tuples(hostile_text(), params)),
    Call("ping", kwargs=st.fixed_dictionaries({"timeout": numbers()})),
    Call("disconnect", kwargs=st.fixed_dictionaries({"timeout": numbers()}), setup=_reconnect),
    Call("connect", setup=lambda c: c.disconnect()),
    Call("session"),
]

gql_kwargs = st.fixed_dictionaries(
    {},
    optional={
        "variables": st.one_of(st.none(), st.dictionaries(hostile_text(8), nested(), max_size=3)),
        "operation_name": st.one_of(st.none(), hostile_text(12)),
        "headers": headers,
        "timeout": numbers(),
    },
)
document = st.one_of(hostile_text(), st.just("query { items(first: 1) { nodes { id } } }"))
GRAPHQL_CALLS = [
    *BASE_CALLS,
    Call("query", st.tuples(document), gql_kwargs),
    Call("mutation", st.tuples(document), gql_kwargs),
    Call("execute", st.tuples(document), gql_kwargs),
    *(
        Call(m, st.tuples(document), gql_kwargs.map(lambda k: {**k, "path": "items"}))
        for m in ("pages", "paginate")
    ),
    Call("ping", kwargs=st.fixed_dictionaries({"timeout": numbers()})),
    Call("disconnect", kwargs=st.fixed_dictionaries({"timeout": numbers()}), setup=_reconnect),
    Call("connect", setup=lambda c: c.disconnect()),
]


# Calls still expected to fail the property (none: issue #8 fixed them all).
PENDING_HTTP: set[str] = set()
PENDING_GRAPHQL: set[str] = set()


def _marked(calls: list[Call], pending: set[str]) -> list[Any]:
    return [
        pytest.param(c, id=str(c), marks=pytest.mark.xfail(reason="issue #8 fix pending"))
        if c.method in pending
        else pytest.param(c, id=str(c))
        for c in calls
    ]


def test_every_public_method_has_a_call() -> None:
    check_covers(HTTPConnector, HTTP_CALLS)
    check_covers(GraphQLConnector, GRAPHQL_CALLS)


@pytest.fixture(scope="module")
def http() -> Iterator[HTTPConnector]:
    with LocalServer(ScriptedApp()) as server:
        connector = HTTPConnector(HTTPConfig(base_url=server.url + "/api", retry=NO_WAIT))
        connector.connect()
        yield connector
        connector.disconnect(timeout=5)


@pytest.fixture(scope="module")
def gql() -> Iterator[GraphQLConnector]:
    with GraphQLTestServer() as server:
        connector = GraphQLConnector(GraphQLConfig.from_url("graphql+" + server.url, retry=NO_WAIT))
        connector.connect()
        yield connector
        connector.disconnect(timeout=5)


@pytest.mark.parametrize("call", _marked(HTTP_CALLS, PENDING_HTTP))
def test_http_hostile_arguments(call: Call, http: HTTPConnector) -> None:
    http.connect()
    check_call(http, call)


@pytest.mark.parametrize("call", _marked(GRAPHQL_CALLS, PENDING_GRAPHQL))
def test_graphql_hostile_arguments(call: Call, gql: GraphQLConnector) -> None:
    gql.connect()
    check_call(gql, call)
