"""GraphQLConnector checks that need no server (argument validation, transport config)."""

from __future__ import annotations

import datetime

import pytest

from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector
from dictamesh_connectors.http.config import HTTPConfig
from dictamesh_connectors.http.errors import InvalidRequestError
from dictamesh_connectors.retry import RetryPolicy

CONFIG = GraphQLConfig.from_url(
    "graphql+https://api.example.com/graphql?timeout=3&max_retries=5", credentials={"token": "t"}
)


def test_needs_a_graphql_config() -> None:
    with pytest.raises(InvalidConfigError):
        GraphQLConnector(HTTPConfig(base_url="https://api.example.com"))  # type: ignore[arg-type]


def test_transport_config_is_the_same_http_config_without_retries() -> None:
    gql = GraphQLConnector(CONFIG)
    transport = gql._transport_config()
    assert type(transport) is HTTPConfig
    assert transport.retry == RetryPolicy.no_retry()
    assert transport.base_url == CONFIG.base_url
    assert transport.timeout == 3.0
    assert transport.credentials == CONFIG.credentials
    assert CONFIG.retry.max_attempts == 6  # the GraphQL loop keeps the policy


def test_repr_shows_the_endpoint_without_secrets() -> None:
    gql = GraphQLConnector(
        GraphQLConfig.from_url("graphql+https://bot:pw123@api.example.com/graphql")
    )
    assert "pw123" not in repr(gql)
    assert "graphql+https://bot:***@api.example.com/graphql" in repr(gql)
    assert gql.endpoint_url == "https://api.example.com/graphql"


def test_query_refuses_mutations_and_subscriptions_before_any_io() -> None:
    gql = GraphQLConnector(CONFIG)  # not even connected
    for document in ("mutation { a }", "subscription { a }"):
        # The HTTP connector's class for a request that was not sent, as for a
        # bad header: one builder (build_error) picks the class (issue #7).
        with pytest.raises(InvalidRequestError) as info:
            gql.query(document)
        assert info.value.code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("document", ["", "   ", None])
def test_empty_documents_are_invalid_requests(document: object) -> None:
    with pytest.raises(InvalidRequestError) as info:
        GraphQLConnector(CONFIG).execute(document)  # type: ignore[arg-type]
    assert info.value.code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize(
    "variables", [{"when": datetime.datetime(2026, 1, 1)}, {"x": float("nan")}, {"s": {1, 2}}]
)
def test_variables_that_are_not_json_are_serialization_errors(variables: dict[str, object]) -> None:
    with pytest.raises(ConnectorError) as info:
        GraphQLConnector(CONFIG).query("query($when: String) { a }", variables)
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR


def test_operations_need_a_connection() -> None:
    with pytest.raises(NotConnectedError):
        GraphQLConnector(CONFIG).query("{ a }")


def test_pagination_path_is_checked_at_once() -> None:
    with pytest.raises(InvalidConfigError):
        GraphQLConnector(CONFIG).paginate("{ a }", path="")
