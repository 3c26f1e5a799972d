"""operation_type: which kind of operation a document runs (no server)."""

from __future__ import annotations

import pytest

from dictamesh_connectors.graphql.connector import operation_type


@pytest.mark.parametrize(
    ("document", "name", "expected"),
    [
        ("{ hello }", None, "query"),
        ("query { hello }", None, "query"),
        ("query Q($id: ID!) { item(id: $id) { id } }", None, "query"),
        ("mutation { pay }", None, "mutation"),
        ("  # a comment mentioning mutation\n query { a }", None, "query"),
        ('query { search(text: "mutation { x }") { id } }', None, "query"),
        ('query { a(t: """\nmutation {\n""") }', None, "query"),
        ("subscription OnEvent { event { id } }", None, "subscription"),
        ("query A { a } mutation B { b }", "B", "mutation"),
        ("query A { a } mutation B { b }", "A", "query"),
        ("query A { a } mutation B { b }", None, None),
        ("query A { a } mutation B { b }", "C", None),
        ("fragment F on Query { a } mutation M { ...F }", None, "mutation"),
        ("query Q($v: In = {a: 1}) { mutation }", None, "query"),
        ("query Q @cached { mutation }", None, "query"),
        ("", None, None),
    ],
)
def test_operation_type(document: str, name: str | None, expected: str | None) -> None:
    assert operation_type(document, name) == expected
