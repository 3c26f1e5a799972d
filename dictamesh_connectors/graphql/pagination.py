"""Relay-style cursor pagination: follow ``pageInfo { hasNextPage endCursor }``.

Pure logic, no I/O: the caller passes the function that runs one query, so
the same code drives ``GraphQLConnector.paginate`` and unit tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from dictamesh_connectors.errors import (
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    RetryHint,
    build_error,
)

__all__ = ["iter_nodes", "iter_pages", "split_path"]

_PROTOCOL = ErrorRule(ErrorCode.PROTOCOL_ERROR, False, RetryHint.NONE)


def split_path(path: str | Sequence[str]) -> tuple[str, ...]:
    """``"repository.issues"`` or ``["repository", "issues"]`` -> a tuple of keys.

    Raises:
        InvalidConfigError: The path is empty or has an empty segment.
    """
    if isinstance(path, str):
        keys: tuple[str, ...] = tuple(path.split("."))
    elif isinstance(path, Sequence):
        keys = tuple(path)
    else:
        keys = ()
    if not keys or not all(isinstance(key, str) and key for key in keys):
        raise InvalidConfigError(
            f"pagination path must name the connection field, e.g. 'repository.issues'; "
            f"got {path!r:.60}",
            connector="graphql",
        )
    return keys


def _connection(data: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, Any] | None:
    node: Any = data
    for key in keys:
        if node is None:
            return None  # a nullable parent that is null: no items
        if not isinstance(node, Mapping):
            raise build_error(
                f"graphql: pagination path {'.'.join(keys)!r} does not lead to an object "
                f"(stopped at {key!r})",
                _PROTOCOL,
                connector="graphql",
            )
        node = node.get(key)
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise build_error(
            f"graphql: {'.'.join(keys)!r} is not a connection object",
            _PROTOCOL,
            connector="graphql",
        )
    return node


def iter_pages(
    run: Callable[[dict[str, Any]], Mapping[str, Any]],
    variables: Mapping[str, Any] | None,
    *,
    path: str | Sequence[str],
    cursor_variable: str = "after",
    max_pages: int | None = None,
) -> Iterator[Mapping[str, Any]]:
    """Yield each page's connection object (``edges``/``nodes``/``pageInfo``).

    Args:
        run: Runs the query with the given variables and returns its ``data``.
        variables: The first page's variables (the cursor variable is set
            from ``pageInfo.endCursor`` for the following pages).
        path: Where the connection is in ``data``: ``"repository.issues"``.
        cursor_variable: The query variable that takes the cursor.
        max_pages: Stop after this many pages (``None``: follow to the end).

    Raises:
        ConnectorError: ``PROTOCOL_ERROR`` when the response has no
            connection at ``path``, no ``pageInfo``, or repeats a cursor
            (which would loop forever); any error of ``run``.
        InvalidConfigError: A bad ``path`` or ``max_pages``.
    """
    keys = split_path(path)
    if max_pages is not None and max_pages < 1:
        raise InvalidConfigError("max_pages must be at least 1", connector="graphql")
    current = dict(variables or {})
    seen: set[Any] = set()
    pages = 0
    while True:
        connection = _connection(run(dict(current)), keys)
        if connection is None:
            return
        yield connection
        pages += 1
        page_info = connection.get("pageInfo")
        if not isinstance(page_info, Mapping) or "hasNextPage" not in page_info:
            raise build_error(
                f"graphql: the connection at {'.'.join(keys)!r} has no "
                "pageInfo { hasNextPage endCursor }: select it in the query",
                _PROTOCOL,
                connector="graphql",
            )
        if not page_info["hasNextPage"] or (max_pages is not None and pages >= max_pages):
            return
        cursor = page_info.get("endCursor")
        if cursor is not None and (isinstance(cursor, float) or not isinstance(cursor, (str, int))):
            # An array or object is no cursor (unhashable: `in seen` raised a raw
            # TypeError), nor is a float (a NaN is never "seen": an endless loop).
            kind = {list: "an array", dict: "an object", float: "a float"}.get(type(cursor), "?")
            raise build_error(
                f"graphql: the connection at {'.'.join(keys)!r} gave an endCursor that is "
                f"{kind}, not a string",
                _PROTOCOL,
                connector="graphql",
            )
        if cursor is None or cursor in seen:
            raise build_error(
                f"graphql: the connection at {'.'.join(keys)!r} says hasNextPage but "
                f"{'gave no endCursor' if cursor is None else 'repeated a cursor'}",
                _PROTOCOL,
                connector="graphql",
            )
        seen.add(cursor)
        current[cursor_variable] = cursor


def iter_nodes(pages: Iterator[Mapping[str, Any]]) -> Iterator[Any]:
    """Yield the nodes of each page: ``edges[].node`` if selected, else ``nodes[]``.

    Raises:
        ConnectorError: ``PROTOCOL_ERROR`` when a page has neither ``edges``
            nor ``nodes``.
    """
    for page in pages:
        edges = page.get("edges")
        if isinstance(edges, list):
            for edge in edges:
                yield edge.get("node") if isinstance(edge, Mapping) else None
            continue
        nodes = page.get("nodes")
        if isinstance(nodes, list):
            yield from nodes
            continue
        raise build_error(
            "graphql: a connection page has neither edges { node } nor nodes: select one",
            _PROTOCOL,
            connector="graphql",
        )
