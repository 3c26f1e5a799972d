"""GraphQL over the HTTP connector: queries, mutations, relay pagination, error mapping.

``GraphQLConnector`` sends GraphQL-over-HTTP requests through an
``HTTPConnector`` (same auth, pool, TLS and retry policy); responses with
``errors`` raise ``GraphQLError`` carrying every error and the partial data.

Example::

    from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector

    with GraphQLConnector(GraphQLConfig.from_url("graphql+https://api.example.com/graphql")) as gql:
        print(gql.query("{ viewer { login } }"))
"""

from dictamesh_connectors.graphql.config import GraphQLConfig
from dictamesh_connectors.graphql.connector import GraphQLConnector, operation_type
from dictamesh_connectors.graphql.errors import (
    GraphQLAuthenticationError,
    GraphQLError,
    GraphQLResponse,
    classify_response,
)

__all__ = [
    "GraphQLAuthenticationError",
    "GraphQLConfig",
    "GraphQLConnector",
    "GraphQLError",
    "GraphQLResponse",
    "classify_response",
    "operation_type",
]
