"""Link header parsing, and pagers driven by any ``get`` callable (no connector needed)."""

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.http import Cursor, LinkHeader, OffsetLimit, Response, iter_items
from dictamesh_connectors.http.pagination import parse_link_header


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, []),
        ("", []),
        ('<https://x/?page=2>; rel="next"', [("https://x/?page=2", {"rel": "next"})]),
        (
            '<https://x/?a=1,2>; rel="next last"; title="a, b; c", <https://x/p>;rel=prev',
            [
                ("https://x/?a=1,2", {"rel": "next last", "title": "a, b; c"}),
                ("https://x/p", {"rel": "prev"}),
            ],
        ),
        ("garbage, <https://x/2>; REL=Next", [("https://x/2", {"rel": "Next"})]),
        ('<https://x/2>; rel="ne\\"xt"', [("https://x/2", {"rel": 'ne"xt'})]),
        ("<unterminated", []),
    ],
)
def test_parse_link_header(value, expected):
    assert parse_link_header(value) == expected


class Pages:
    """A fake ``get``: answers from a dict of path -> (json body text, headers)."""

    def __init__(self, pages):
        self.pages = pages
        self.calls = []

    def get(self, path, **kwargs):
        self.calls.append((path, kwargs.get("params")))
        key = path if not kwargs.get("params") else f"{path}?{sorted(kwargs['params'].items())}"
        body, headers = self.pages[key]
        return Response(200, headers, body.encode(), url="https://api.test" + path.split("?")[0])


def test_link_header_pager_with_a_plain_get_callable():
    source = Pages(
        {
            "/items": ("[1, 2]", {"Link": '</items2>; rel="next"'}),
            "https://api.test/items2": ("[3]", {}),
        }
    )
    pages = list(LinkHeader().pages(source.get, "/items"))
    assert [page.json() for page in pages] == [[1, 2], [3]]
    assert [path for path, _ in source.calls] == ["/items", "https://api.test/items2"]


def test_iter_items_takes_anything_with_get_and_stops_on_a_short_page():
    source = Pages(
        {
            "/o?[('limit', 2), ('offset', 0)]": ("[1, 2]", {}),
            "/o?[('limit', 2), ('offset', 2)]": ("[3]", {}),
        }
    )
    assert list(iter_items(source, "/o", OffsetLimit(limit=2))) == [1, 2, 3]
    assert len(source.calls) == 2


def test_a_page_without_a_list_is_a_protocol_error():
    source = Pages({"/c": ('{"data": {"not": "a list"}}', {})})
    with pytest.raises(ConnectorError) as info:
        list(iter_items(source, "/c", Cursor(items="data")))
    assert info.value.code is ErrorCode.PROTOCOL_ERROR and not info.value.transient
