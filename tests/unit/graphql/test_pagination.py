"""Relay cursor pagination over a fake ``run`` function (no server)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.graphql.pagination import iter_nodes, iter_pages, split_path

ITEMS = list(range(23))


def fake_run(calls: list[dict[str, Any]], *, style: str = "edges", size: int = 5) -> Any:
    def run(variables: dict[str, Any]) -> dict[str, Any]:
        calls.append(variables)
        start = int(variables["after"]) + 1 if variables.get("after") is not None else 0
        page = ITEMS[start : start + size]
        end = start + len(page) - 1
        connection: dict[str, Any] = {
            "pageInfo": {"hasNextPage": end < len(ITEMS) - 1, "endCursor": str(end)}
        }
        if style == "edges":
            connection["edges"] = [{"cursor": str(i), "node": {"id": i}} for i in page]
        else:
            connection["nodes"] = [{"id": i} for i in page]
        return {"viewer": {"items": connection}}

    return run


@pytest.mark.parametrize("style", ["edges", "nodes"])
def test_follows_end_cursor_until_has_next_page_is_false(style: str) -> None:
    calls: list[dict[str, Any]] = []
    nodes = list(
        iter_nodes(iter_pages(fake_run(calls, style=style), {"first": 5}, path="viewer.items"))
    )
    assert [n["id"] for n in nodes] == ITEMS
    assert len(calls) == 5
    assert calls[0] == {"first": 5}
    assert [c.get("after") for c in calls] == [None, "4", "9", "14", "19"]
    assert all(c["first"] == 5 for c in calls)


def test_custom_cursor_variable_and_list_path() -> None:
    calls: list[dict[str, Any]] = []
    base = fake_run(calls)

    def run(variables: dict[str, Any]) -> Any:
        if "cursor" in variables:
            variables = {**variables, "after": variables.pop("cursor")}
        return base(variables)

    pages = list(iter_pages(run, None, path=["viewer", "items"], cursor_variable="cursor"))
    assert len(pages) == 5
    assert "cursor" not in calls[0]


def test_max_pages_stops_early() -> None:
    calls: list[dict[str, Any]] = []
    pages = list(iter_pages(fake_run(calls), {}, path="viewer.items", max_pages=2))
    assert len(pages) == 2 and len(calls) == 2


def test_the_callers_variables_are_not_mutated() -> None:
    variables = {"first": 5}
    list(iter_pages(fake_run([]), variables, path="viewer.items"))
    assert variables == {"first": 5}


def test_null_connection_yields_nothing() -> None:
    assert list(iter_pages(lambda v: {"viewer": None}, {}, path="viewer.items")) == []


def test_repeated_cursor_is_a_protocol_error_not_an_endless_loop() -> None:
    def run(variables: dict[str, Any]) -> Any:
        return {"c": {"nodes": [1], "pageInfo": {"hasNextPage": True, "endCursor": "same"}}}

    with pytest.raises(ConnectorError) as info:
        list(iter_pages(run, {}, path="c"))
    assert info.value.code is ErrorCode.PROTOCOL_ERROR
    assert "repeated a cursor" in info.value.message


@pytest.mark.parametrize("cursor", [[1], {"a": 1}, float("nan"), 1.5])
def test_an_end_cursor_that_is_not_a_string_is_a_protocol_error(cursor: Any) -> None:
    # A hostile server's endCursor: a list or object raised a raw TypeError
    # (unhashable, in the seen-cursors set); a NaN, never equal to itself,
    # paged for ever (issue #8, item 8: a server's answer never crashes the client).
    calls = []

    def run(variables: dict[str, Any]) -> Any:
        calls.append(variables)
        return {"c": {"nodes": [1], "pageInfo": {"hasNextPage": True, "endCursor": cursor}}}

    with pytest.raises(ConnectorError) as info:
        for _ in itertools.islice(iter_pages(run, {}, path="c"), 10):
            pass
    assert info.value.code is ErrorCode.PROTOCOL_ERROR and not info.value.transient
    assert len(calls) == 1


def test_has_next_page_without_end_cursor_is_a_protocol_error() -> None:
    def run(variables: dict[str, Any]) -> Any:
        return {"c": {"nodes": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}}

    with pytest.raises(ConnectorError, match="gave no endCursor"):
        list(iter_pages(run, {}, path="c"))


def test_missing_page_info_is_a_protocol_error() -> None:
    with pytest.raises(ConnectorError, match="pageInfo"):
        list(iter_pages(lambda v: {"c": {"nodes": []}}, {}, path="c"))


def test_path_through_a_scalar_is_a_protocol_error() -> None:
    with pytest.raises(ConnectorError) as info:
        list(iter_pages(lambda v: {"c": 3}, {}, path="c.items"))
    assert info.value.code is ErrorCode.PROTOCOL_ERROR


def test_page_without_edges_or_nodes_is_a_protocol_error() -> None:
    with pytest.raises(ConnectorError, match="neither edges"):
        list(iter_nodes(iter([{"pageInfo": {"hasNextPage": False}}])))


@pytest.mark.parametrize("bad", ["", "a..b", [], ["a", ""], 3])
def test_bad_paths_are_rejected(bad: Any) -> None:
    with pytest.raises(InvalidConfigError):
        split_path(bad)


def test_bad_max_pages_is_rejected() -> None:
    with pytest.raises(InvalidConfigError):
        list(iter_pages(fake_run([]), {}, path="viewer.items", max_pages=0))
