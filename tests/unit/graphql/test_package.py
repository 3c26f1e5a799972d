"""The graphql package's public surface."""

from __future__ import annotations

import dictamesh_connectors.graphql as graphql_package
from tests.docstrings import missing_docstrings

EXPECTED_ALL = [
    "GraphQLAuthenticationError",
    "GraphQLConfig",
    "GraphQLConnector",
    "GraphQLError",
    "GraphQLResponse",
    "classify_response",
    "operation_type",
]


def test_all_is_sorted_and_complete() -> None:
    assert graphql_package.__all__ == EXPECTED_ALL


def test_every_public_name_and_method_has_a_docstring() -> None:
    assert missing_docstrings(graphql_package) == []


def test_public_methods_say_what_they_raise() -> None:
    for method in ["query", "mutation", "execute", "pages", "paginate"]:
        doc = getattr(graphql_package.GraphQLConnector, method).__doc__ or ""
        assert "Raises:" in doc, f"GraphQLConnector.{method}"
