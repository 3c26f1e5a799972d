"""Request bodies, as pure functions: ``encode_body(request) -> (headers, body)``.

No I/O and no connector state: the body a ``Request`` describes (``json``,
form ``data``, multipart ``files`` or a raw ``body``) becomes what goes on
the wire plus the headers that describe it. ``merge_content_headers`` adds
those to the request's own headers (a header the caller set wins, except a
``Content-Length`` computed from a body held in memory).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import requests
from requests.structures import CaseInsensitiveDict

if TYPE_CHECKING:
    from dictamesh_connectors.http.models import Request

__all__ = [
    "BODY_HEADERS",
    "JSONError",
    "decode_json",
    "encode_body",
    "encode_json",
    "find_header",
    "get_header",
    "has_header",
    "is_form",
    "merge_content_headers",
    "set_header",
    "without_headers",
]

BODY_HEADERS = frozenset(
    {"content-type", "content-length", "transfer-encoding", "content-encoding"}
)
"""Headers that describe a body (dropped when a redirect turns the request into a GET)."""


class JSONError(ValueError):
    """A document that is not JSON (or not encodable as JSON); the reason only.

    It never holds the document (a ``JSONDecodeError`` keeps it in ``.doc``,
    and a token response or a user's payload may be secret), and it is
    raised outside the ``except`` block, so no ``__context__`` holds it either.
    """


def decode_json(data: bytes | str) -> Any:
    """``json.loads(data)`` that fails only with ``JSONError``.

    Invalid JSON, bytes that are not UTF-8/16/32, and nesting too deep for
    the parser (``[[[[...]]]]``, a ``RecursionError``) all become
    ``JSONError(reason)``.
    """
    reason = ""
    try:
        return json.loads(data)
    except RecursionError:
        reason = "nested too deeply"
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        reason = f"{type(exc).__name__} at position {getattr(exc, 'pos', '?')}"
    raise JSONError(reason)


def encode_json(value: Any) -> bytes:
    """Compact JSON of ``value`` (no NaN), failing only with ``JSONError``."""
    reason = ""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
    except RecursionError:
        reason = "nested too deeply"
    except (TypeError, ValueError) as exc:
        reason = str(exc)[:200]
    raise JSONError(f"json is not serialisable ({reason})")


_WITH_EMPTY_BODY = frozenset({"POST", "PUT", "PATCH"})


def encode_body(request: Request) -> tuple[dict[str, str], Any]:
    """The wire body of ``request`` and the headers describing it.

    Returns:
        ``(headers, body)``: ``body`` is ``None``, ``bytes``, a ``str`` (form
        fields, as requests encodes them), a file object or an iterator of
        ``bytes``; ``headers`` holds ``Content-Type``, ``Content-Length`` or
        ``Transfer-Encoding: chunked`` as the body needs.

    Raises:
        ValueError: More than one of body/json/data(+files), a value that is
            not JSON-serialisable, bad form data or an unsupported body type.
    """
    given = [n for n in ("body", "json", "data") if getattr(request, n) is not None]
    if len(given) > 1 or (
        request.files is not None and (request.body is not None or request.json is not None)
    ):
        raise ValueError("pass only one of body, json, data(+files)")
    headers: dict[str, str] = {}
    body = request.body
    if request.json is not None:
        body = encode_json(request.json)
        headers["Content-Type"] = "application/json"
    elif request.data is not None or request.files is not None:
        prepared = requests.PreparedRequest()
        prepared.headers = CaseInsensitiveDict()
        prepared.url = "http://body.invalid/"
        try:
            prepared.prepare_body(request.data, request.files)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"bad data/files ({type(exc).__name__})") from None
        headers.update(prepared.headers)
        return headers, prepared.body
    elif isinstance(body, str):
        body = body.encode("utf-8")
    elif body is not None and not isinstance(body, (bytes, bytearray, memoryview)):
        if isinstance(body, Mapping) or not (hasattr(body, "read") or hasattr(body, "__iter__")):
            raise ValueError(f"unsupported body type {type(body).__name__}")
        length = _length(body)
        if length is not None:
            headers["Content-Length"] = str(length)
        else:
            headers["Transfer-Encoding"] = "chunked"
        return headers, body
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    if isinstance(body, bytes):
        headers["Content-Length"] = str(len(body))
    elif body is None and request.method.upper() in _WITH_EMPTY_BODY:
        headers["Content-Length"] = "0"
    return headers, body


def merge_content_headers(
    headers: MutableMapping[str, str], content: Mapping[str, str], body: Any
) -> None:
    """Add ``content`` (from ``encode_body``) to ``headers``, in place.

    A header already set wins, except ``Content-Length`` of a body held in
    memory (``bytes`` or none), which is always the real one; ``chunked`` is
    not added when the caller gave a ``Content-Length``.
    """
    in_memory = body is None or isinstance(body, bytes)
    for name, value in content.items():
        if name == "Content-Length" and in_memory:
            set_header(headers, name, value)
        elif name == "Transfer-Encoding" and has_header(headers, "Content-Length"):
            continue
        elif not has_header(headers, name):
            headers[name] = value


def find_header(headers: Mapping[str, str], name: str) -> str | None:
    """The key ``headers`` spells ``name`` with (case-insensitive), or ``None``."""
    if name in headers:
        return name
    lowered = name.lower()
    for key in headers:
        if key.lower() == lowered:
            return key
    return None


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """``headers[name]`` (case-insensitive), or ``None``."""
    key = find_header(headers, name)
    return None if key is None else headers[key]


def has_header(headers: Mapping[str, str], name: str) -> bool:
    """Whether ``headers`` has ``name`` (case-insensitive)."""
    return find_header(headers, name) is not None


def set_header(headers: MutableMapping[str, str], name: str, value: str) -> None:
    """``headers[name] = value``, replacing any other spelling of ``name``."""
    key = find_header(headers, name)
    if key is not None and key != name:
        del headers[key]
    headers[name] = value


def without_headers(headers: Mapping[str, str], names: frozenset[str]) -> dict[str, str]:
    """A copy of ``headers`` without ``names`` (lower-case, compared case-insensitively)."""
    return {k: v for k, v in headers.items() if k.lower() not in names}


def is_form(data: Any) -> bool:
    """Whether ``data`` is form fields (a mapping or pairs) rather than a raw body."""
    if isinstance(data, Mapping):
        return True
    return isinstance(data, list) and all(isinstance(i, tuple) and len(i) == 2 for i in data)


def _length(body: Any) -> int | None:
    """The remaining size of a file-like body, or ``None`` when unknown (chunked)."""
    if isinstance(body, io.BytesIO):
        return len(body.getbuffer()) - body.tell()
    fileno = getattr(body, "fileno", None)
    if fileno is not None:
        try:
            size = os.fstat(fileno()).st_size
            return max(0, size - int(body.tell()))
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            return None
    return None
