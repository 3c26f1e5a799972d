"""The Response model: text, JSON, encoding, headers built on first use."""

import pytest
from requests.structures import CaseInsensitiveDict
from urllib3 import HTTPHeaderDict

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.http import Request, Response


def test_response_text_json_and_encoding():
    r = Response(200, {"Content-Type": "text/plain; charset=latin-1"}, "café".encode("latin-1"))
    assert r.text == "café" and r.encoding == "iso8859-1"
    assert Response(200, {}, b"\xff").text == "\ufffd"
    assert Response(200, {"content-type": "text/plain; charset=nope"}, b"a").encoding == "utf-8"
    with pytest.raises(ConnectorError) as info:
        Response(200, {}, b"{not json").json()
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    assert list(Response(204, {}, b"")) == []
    assert "200" in repr(r) and r.content == r.body


@pytest.mark.parametrize(
    "charset", ["base64", "rot13", "hex", "zlib", "uu", "idna", "punycode", "undefined"]
)
def test_a_charset_that_cannot_decode_text_is_ignored(charset):
    # A server names the charset: a bytes-to-bytes codec made bytes.decode
    # raise a raw LookupError, idna/punycode a UnicodeError even with
    # errors="replace" (issue #8, item 8: a server's answer never crashes the client).
    body = b"caf\xc3\xa9 \xff\r\nline 2"
    r = Response(200, {"Content-Type": f"text/plain; charset={charset}"}, body)
    assert r.encoding == "utf-8"
    assert r.text == "caf\xe9 \ufffd\r\nline 2"
    assert "".join(r.iter_text()) == r.text
    assert list(r.iter_lines()) == ["caf\xe9 \ufffd", "line 2"]


def test_iter_lines_keeps_a_crlf_split_across_chunks_and_long_lines_whole():
    chunks = [b"a" * 5000, b"b" * 5000 + b"\r", b"\nnext\r", b"\r", b"last"]
    r = Response(200, {}, None, chunks=iter(chunks))
    assert list(r.iter_lines()) == ["a" * 5000 + "b" * 5000, "next", "", "last"]


def test_headers_from_the_wire_become_one_case_insensitive_dict_on_first_use():
    wire = HTTPHeaderDict()
    wire.add("Set-Cookie", "a=1")
    wire.add("Set-Cookie", "b=2")
    wire.add("X-Trace", "t")
    r = Response(200, wire, b"")
    headers = r.headers
    assert isinstance(headers, CaseInsensitiveDict) and r.headers is headers
    assert headers["x-trace"] == "t" and headers["SET-COOKIE"] == "a=1, b=2"
    r.headers = {"A": "1"}
    assert r.headers["a"] == "1"


def test_request_repr_hides_header_values():
    request = Request("GET", "/x", headers={"Authorization": "Bearer s3cret"})
    assert "s3cret" not in repr(request)
