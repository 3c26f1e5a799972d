"""The graphql package's public surface and the soap module's."""

from __future__ import annotations

import inspect

import dictamesh_connectors.graphql as graphql_package
import dictamesh_connectors.http.soap as soap_module

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
    assert (
        soap_module.__all__
        == sorted(soap_module.__all__)
        == [
            "SOAPClient",
            "SOAPFault",
            "fault_error",
        ]
    )


def test_every_public_name_and_method_has_a_docstring() -> None:
    for module in (graphql_package, soap_module):
        for name in module.__all__:
            obj = getattr(module, name)
            assert (obj.__doc__ or "").strip(), name
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if not attr.startswith("_") and callable(member):
                        assert (member.__doc__ or "").strip(), f"{name}.{attr}"


def test_public_methods_say_what_they_raise() -> None:
    for cls, methods in [
        (graphql_package.GraphQLConnector, ["query", "mutation", "execute", "pages", "paginate"]),
        (soap_module.SOAPClient, ["call"]),
    ]:
        for method in methods:
            assert "Raises:" in (getattr(cls, method).__doc__ or ""), f"{cls.__name__}.{method}"
