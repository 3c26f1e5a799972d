"""Pagination helpers: iterate pages (or items) of a paginated HTTP resource.

Four common schemes, each a small frozen value you pass to
``HTTPConnector.paginate`` or ``iter_items``:

* ``LinkHeader``: RFC 8288 ``Link: <...>; rel="next"`` (GitHub, many REST APIs);
* ``Cursor``: an opaque cursor in the JSON body, sent back as a parameter;
* ``OffsetLimit``: ``?offset=0&limit=100``, ``offset += limit``;
* ``PageNumber``: ``?page=1&per_page=100``, ``page += 1``.

Pages are fetched lazily, one request per page, with the connector's usual
retries; stop iterating to stop fetching. Every helper stops on an empty
page and after ``max_pages`` (a guard against servers that never end).

Example::

    for item in iter_items(api, "/tickets", Cursor(items="data", next_cursor="meta.next")):
        handle(item)
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from dictamesh_connectors.http.errors import protocol_error

if TYPE_CHECKING:
    from dictamesh_connectors.http.models import Response

__all__ = [
    "Cursor",
    "GetPage",
    "LinkHeader",
    "OffsetLimit",
    "PageNumber",
    "PageSource",
    "Paginator",
    "iter_items",
    "parse_link_header",
]


class GetPage(Protocol):
    """What a paginator fetches pages with: ``HTTPConnector.get`` or anything like it."""

    def __call__(self, path: str, **kwargs: Any) -> Response:
        """GET ``path`` (``kwargs`` as ``HTTPConnector.get`` takes them)."""
        ...


class PageSource(Protocol):
    """What ``iter_items`` reads from: an ``HTTPConnector``, or any object with its ``get``."""

    def get(self, path: str = "", **kwargs: Any) -> Response:
        """GET ``path``."""
        ...


class Paginator(Protocol):
    """What ``HTTPConnector.paginate`` and ``iter_items`` accept.

    Implementations should be immutable values, like the four here, so one
    instance can serve every thread: each ``pages()`` call keeps its own
    iteration state.
    """

    def pages(self, get: GetPage, path: str, **kwargs: Any) -> Iterator[Response]:
        """Yield each page's response, fetched with ``get``."""
        ...

    def items_of(self, response: Response) -> list[Any]:
        """The items on one page."""
        ...


def parse_link_header(value: str | None) -> list[tuple[str, dict[str, str]]]:
    """Parse an RFC 8288 ``Link`` header into ``(target, params)`` pairs.

    Parameter names are lower-cased; quoted values are unquoted; commas and
    semicolons inside quotes or ``<...>`` are handled.

    Example::

        >>> parse_link_header('<https://x/?page=2>; rel="next", <https://x/?page=9>; rel=last')
        [('https://x/?page=2', {'rel': 'next'}), ('https://x/?page=9', {'rel': 'last'})]
    """
    links: list[tuple[str, dict[str, str]]] = []
    if not value:
        return links
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        if i >= n or value[i] != "<":
            # Malformed: skip to the next comma outside quotes.
            while i < n and value[i] != ",":
                i += 1
            continue
        end = value.find(">", i)
        if end < 0:
            break
        target = value[i + 1 : end].strip()
        i = end + 1
        params: dict[str, str] = {}
        while i < n:
            while i < n and value[i] in " \t":
                i += 1
            if i >= n or value[i] == ",":
                break
            if value[i] != ";":
                i += 1
                continue
            i += 1
            start = i
            while i < n and value[i] not in "=;,":
                i += 1
            name = value[start:i].strip().lower()
            param = ""
            if i < n and value[i] == "=":
                i += 1
                while i < n and value[i] in " \t":
                    i += 1
                if i < n and value[i] == '"':
                    i += 1
                    chars = []
                    while i < n and value[i] != '"':
                        if value[i] == "\\" and i + 1 < n:
                            i += 1
                        chars.append(value[i])
                        i += 1
                    i += 1
                    param = "".join(chars)
                else:
                    start = i
                    while i < n and value[i] not in ";,":
                        i += 1
                    param = value[start:i].strip()
            if name and name not in params:
                params[name] = param
        links.append((target, params))
    return links


def _dig(data: Any, path: str | None) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"``; ``None`` when a step is missing."""
    if path is None or path == "":
        return data
    for key in path.split("."):
        if isinstance(data, dict):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def _items(response: Response, path: str | None) -> list[Any]:
    found = _dig(response.json(), path)
    if found is None:
        return []
    if not isinstance(found, list):
        raise protocol_error(
            f"http: {response.request_method} {response.shown_url}: expected a list at "
            f"{path or 'the top level'} of the page, got {type(found).__name__}",
            connector="http",
        )
    return found


class _ItemsAt:
    """``items_of`` for the paginators: the list at their ``items`` path."""

    __slots__ = ()
    items: str | None

    def items_of(self, response: Response) -> list[Any]:
        """The items of one page (the list at ``items``; the body when ``None``).

        Raises:
            ConnectorError: ``PROTOCOL_ERROR`` when there is no list there;
                ``SERIALIZATION_ERROR`` when the body is not JSON.
        """
        return _items(response, self.items)


def _merge_params(kwargs: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    params = kwargs.get("params") or {}
    merged: Any
    if isinstance(params, dict):
        merged = {**params, **extra}
    else:
        merged = [*(p for p in params if p[0] not in extra), *extra.items()]
    return {**kwargs, "params": merged}


@attrs.frozen
class LinkHeader(_ItemsAt):
    """Follow ``Link: <url>; rel="next"`` until there is none.

    Immutable (like every paginator here): one instance may be reused by
    many threads; each ``pages()`` call has its own iteration state.

    Example::

        for page in api.paginate("/repos/o/r/issues", LinkHeader()):
            handle(page.json())

    Attributes:
        rel: The relation to follow.
        items: Dotted path to the list of items in the JSON body (``None``:
            the body is the list).
        max_pages: Stop after this many pages.
    """

    rel: str = "next"
    items: str | None = None
    max_pages: int = 10_000

    def pages(self, get: GetPage, path: str, **kwargs: Any) -> Iterator[Response]:
        """Yield each page's response, fetched with ``get``. Raises as ``get`` does."""
        seen: set[str] = set()
        response = get(path, **kwargs)
        kwargs.pop("params", None)  # the next URL carries its own query
        for _ in range(self.max_pages):
            yield response
            target = None
            for url, params in parse_link_header(response.headers.get("Link")):
                if self.rel in params.get("rel", "").lower().split():
                    target = urllib.parse.urljoin(response.url, url)
                    break
            if target is None or target in seen:
                return
            seen.add(target)
            response = get(target, **kwargs)


@attrs.frozen
class Cursor(_ItemsAt):
    """Send back the cursor each page gives, until it is empty.

    Immutable: one instance may be reused by many threads (each ``pages()``
    call has its own iteration state).

    Example::

        iter_items(api, "/contacts", Cursor(next_cursor="meta.next_cursor", items="payload"))

    Attributes:
        next_cursor: Dotted path to the next cursor in the JSON body.
        cursor_param: Query parameter that carries it.
        items: Dotted path to the list of items (``None``: the body is the list).
        max_pages: Stop after this many pages.
    """

    next_cursor: str = "next_cursor"
    cursor_param: str = "cursor"
    items: str | None = "data"
    max_pages: int = 10_000

    def pages(self, get: GetPage, path: str, **kwargs: Any) -> Iterator[Response]:
        """Yield each page's response, fetched with ``get``. Raises as ``get`` does."""
        seen: set[str] = set()
        response = get(path, **kwargs)
        for _ in range(self.max_pages):
            yield response
            cursor = _dig(response.json(), self.next_cursor)
            if cursor in (None, "", False) or not self.items_of(response):
                return
            cursor = str(cursor)
            if cursor in seen:
                return
            seen.add(cursor)
            response = get(path, **_merge_params(kwargs, {self.cursor_param: cursor}))


@attrs.frozen
class OffsetLimit(_ItemsAt):
    """``offset``/``limit`` parameters; stops on a short or empty page.

    Immutable: one instance may be reused by many threads (each ``pages()``
    call has its own iteration state).

    Example::

        iter_items(api, "/orders", OffsetLimit(limit=200, items="results"))

    Attributes:
        limit: Page size requested.
        offset_param, limit_param: The parameter names.
        items: Dotted path to the list of items (``None``: the body is the list).
        start: The first offset.
        max_pages: Stop after this many pages.
    """

    limit: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    items: str | None = None
    start: int = 0
    max_pages: int = 10_000

    def pages(self, get: GetPage, path: str, **kwargs: Any) -> Iterator[Response]:
        """Yield each page's response, fetched with ``get``. Raises as ``get`` does."""
        offset = self.start
        for _ in range(self.max_pages):
            params = {self.offset_param: offset, self.limit_param: self.limit}
            response = get(path, **_merge_params(kwargs, params))
            yield response
            count = len(self.items_of(response))
            if count < self.limit:
                return
            offset += count


@attrs.frozen
class PageNumber(_ItemsAt):
    """``page``/``per_page`` parameters; stops on a short or empty page.

    Immutable: one instance may be reused by many threads (each ``pages()``
    call has its own iteration state).

    Example::

        iter_items(api, "/conversations", PageNumber(per_page=25, items="data.payload"))

    Attributes:
        per_page: Page size requested (``0``: do not send one; stop only on
            an empty page).
        page_param, per_page_param: The parameter names.
        items: Dotted path to the list of items (``None``: the body is the list).
        start: The first page number.
        max_pages: Stop after this many pages.
    """

    per_page: int = 100
    page_param: str = "page"
    per_page_param: str = "per_page"
    items: str | None = None
    start: int = 1
    max_pages: int = 10_000

    def pages(self, get: GetPage, path: str, **kwargs: Any) -> Iterator[Response]:
        """Yield each page's response, fetched with ``get``. Raises as ``get`` does."""
        for number in range(self.start, self.start + self.max_pages):
            params: dict[str, Any] = {self.page_param: number}
            if self.per_page:
                params[self.per_page_param] = self.per_page
            response = get(path, **_merge_params(kwargs, params))
            yield response
            count = len(self.items_of(response))
            if count == 0 or (self.per_page and count < self.per_page):
                return


def iter_items(
    source: PageSource, path: str, paginator: Paginator | None = None, **kwargs: Any
) -> Iterator[Any]:
    """Yield every item of every page of ``source`` (pages fetched lazily with its ``get``).

    Raises:
        As ``HTTPConnector.execute``; ``ConnectorError`` (``PROTOCOL_ERROR``)
        when a page has no list where ``items`` points.
    """
    paginator = paginator or LinkHeader()
    for response in paginator.pages(source.get, path, **kwargs):
        yield from paginator.items_of(response)
