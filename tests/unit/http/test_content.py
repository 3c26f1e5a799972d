"""Request bodies as a pure function: encode_body and how its headers merge."""

import io

import pytest

from dictamesh_connectors.http import Request
from dictamesh_connectors.http.content import (
    encode_body,
    find_header,
    merge_content_headers,
    set_header,
    without_headers,
)


def test_json_form_raw_and_empty_bodies():
    assert encode_body(Request("POST", json={"a": [1]})) == (
        {"Content-Type": "application/json", "Content-Length": "9"},
        b'{"a":[1]}',
    )
    headers, body = encode_body(Request("POST", data={"f": "v"}))
    assert body == "f=v" and headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert encode_body(Request("PUT", body="é")) == ({"Content-Length": "2"}, "é".encode())
    assert encode_body(Request("post")) == ({"Content-Length": "0"}, None)
    assert encode_body(Request("GET")) == ({}, None)


def test_streams_are_sized_when_possible_else_chunked():
    assert encode_body(Request("PUT", body=io.BytesIO(b"abcd")))[0] == {"Content-Length": "4"}
    chunks = iter([b"a"])
    assert encode_body(Request("PUT", body=chunks)) == ({"Transfer-Encoding": "chunked"}, chunks)


@pytest.mark.parametrize(
    "request_",
    [
        Request("POST", body=b"a", json={}),
        Request("POST", json={"x": float("nan")}),
        Request("POST", body={"not": "raw"}),
        Request("POST", body=42),
    ],
)
def test_bad_bodies_are_value_errors(request_):
    with pytest.raises(ValueError):
        encode_body(request_)


def test_merge_keeps_the_callers_headers_but_never_a_wrong_length():
    headers = {"content-type": "text/csv", "Content-Length": "999"}
    merge_content_headers(
        headers, {"Content-Type": "application/json", "Content-Length": "3"}, b"abc"
    )
    assert headers == {"content-type": "text/csv", "Content-Length": "3"}
    sized = {"content-length": "10"}
    merge_content_headers(sized, {"Transfer-Encoding": "chunked"}, iter([]))
    assert sized == {"content-length": "10"}


def test_header_helpers_are_case_insensitive():
    headers = {"X-A": "1", "cookie": "c"}
    assert find_header(headers, "x-a") == "X-A" and find_header(headers, "nope") is None
    set_header(headers, "x-a", "2")
    assert headers == {"cookie": "c", "x-a": "2"}
    assert without_headers(headers, frozenset({"cookie"})) == {"x-a": "2"}
