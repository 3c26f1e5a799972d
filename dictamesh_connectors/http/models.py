"""``Request`` and ``Response``: what goes into and comes out of ``HTTPConnector``."""

from __future__ import annotations

import codecs
import datetime
import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any

import attrs
from requests.structures import CaseInsensitiveDict

from dictamesh_connectors.config import redact_url
from dictamesh_connectors.errors import ErrorCode, ErrorRule, RetryHint, build_error
from dictamesh_connectors.http.config import redact_headers
from dictamesh_connectors.http.content import JSONError, decode_json

__all__ = ["Request", "Response"]

_LINE_END = re.compile(r"\r\n|\r|\n")
_NOT_JSON = ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE)


@attrs.frozen
class Request:
    """One HTTP request, as data (``HTTPConnector.execute`` sends it).

    Frozen; safe to share and to send from several threads, unless its body
    is a file object or an iterator (those are consumed by sending).

    Attributes:
        method: ``GET``, ``POST``, ... (case-insensitive; validated).
        path: Joined to ``base_url`` (``"/users/1"``), or an absolute URL on
            the base host or an ``allowed_hosts`` host.
        headers: Extra headers; they win over the config's default headers.
        body: Raw body: ``bytes``, ``str`` (UTF-8), a file object or an
            iterator of ``bytes`` (streamed, chunked when its size is unknown).
        query: Query parameters (mapping or pairs), appended to ``path``'s own.
        json: A value sent as JSON (``Content-Type: application/json``).
        data: Form fields (``application/x-www-form-urlencoded``; multipart
            with ``files``).
        files: Multipart files, as accepted by ``requests``.
        timeout: Read timeout for this request, or ``(connect, read)``.
        idempotency_key: Sent in the configured Idempotency-Key header; makes
            the request retryable.
        idempotent: ``None`` decides from the method and the key;
            ``True``/``False`` overrides (a GraphQL query over POST is
            ``True``).

    Example::

        connector.execute(Request("POST", "/orders", json={"sku": 1}, idempotency_key=key))
    """

    method: str
    path: str = ""
    headers: Mapping[str, str] | None = attrs.field(default=None, repr=redact_headers)
    body: Any = None
    query: Any = None
    json: Any = attrs.field(default=None, kw_only=True)
    data: Any = attrs.field(default=None, kw_only=True)
    files: Any = attrs.field(default=None, kw_only=True)
    timeout: float | tuple[float, float] | None = attrs.field(default=None, kw_only=True)
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)
    idempotent: bool | None = attrs.field(default=None, kw_only=True)


class Response:
    """An HTTP response: status, case-insensitive headers and the body.

    Non-streamed responses hold the whole body (``body``), read up to
    ``max_response_bytes``. Streamed ones (``stream=True``,
    ``HTTPConnector.stream``) read it on demand with ``iter_bytes()``; close
    them (or use them as context managers) to return the connection.

    A ``Response`` is not thread-safe (it is one caller's result); reading a
    complete response's attributes from many threads is fine.

    Attributes:
        status_code: The HTTP status.
        headers: Case-insensitive mapping of the response headers.
        url: The final URL (after redirects), credentials stripped.
        elapsed: Time from sending to the end of the headers.
        request_method: The method of the final request (a 303 makes it GET).
        reason: The reason phrase the server sent.
        history: The redirect responses followed to get here (bodies empty).
    """

    __slots__ = (
        "_body",
        "_elapsed",
        "_headers",
        "_iter",
        "_raw_headers",
        "_release",
        "_seconds",
        "_secret_params",
        "history",
        "reason",
        "request_method",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = b"",
        *,
        url: str = "",
        elapsed: datetime.timedelta | None = None,
        request_method: str = "GET",
        reason: str = "",
        history: list[Response] | None = None,
        chunks: Iterator[bytes] | None = None,
        release: Callable[[], None] | None = None,
        secret_params: Collection[str] = (),
    ) -> None:
        self.status_code = status_code
        self._secret_params = secret_params  # query names redact_url hides in messages
        # Built on first use: most callers never look at the headers (and the
        # isinstance check against the ABC costs a Python call, so it waits too).
        self._headers: CaseInsensitiveDict[str] | None = None
        self._raw_headers = headers
        self._body = body
        self._iter = chunks
        self._release = release
        self.url = url
        self._elapsed: datetime.timedelta | None = (
            elapsed if elapsed is not None else datetime.timedelta(0)
        )
        self._seconds = 0.0
        self.request_method = request_method
        self.reason = reason
        self.history: list[Response] = history or []

    @property
    def elapsed(self) -> datetime.timedelta:
        """Time from sending to the end of the headers."""
        elapsed = self._elapsed
        if elapsed is None:  # made by _response: a timedelta costs more than the rest
            elapsed = self._elapsed = datetime.timedelta(seconds=self._seconds)
        return elapsed

    @elapsed.setter
    def elapsed(self, value: datetime.timedelta) -> None:
        self._elapsed = value

    @property
    def headers(self) -> CaseInsensitiveDict[str]:
        """Case-insensitive mapping of the response headers."""
        headers = self._headers
        if headers is None:
            raw = self._raw_headers
            headers = raw if isinstance(raw, CaseInsensitiveDict) else CaseInsensitiveDict(raw)
            self._headers = headers
        return headers

    @headers.setter
    def headers(self, value: Mapping[str, str]) -> None:
        self._headers = value if isinstance(value, CaseInsensitiveDict) else None
        self._raw_headers = value

    # ---------------------------------------------------------------- body

    @property
    def body(self) -> bytes:
        """The whole body (reads the rest of a streamed response first).

        Raises:
            ConnectorError: Reading failed (``CONNECTION_LOST``, ``TIMEOUT``)
                or the body exceeds ``max_response_bytes``.
        """
        if self._body is None:
            self._body = b"".join(self.iter_bytes())
        return self._body

    @property
    def content(self) -> bytes:
        """Alias of ``body`` (the ``requests`` name)."""
        return self.body

    @property
    def encoding(self) -> str:
        """The charset from ``Content-Type``; UTF-8 when absent, unknown or not a text charset.

        A server names the charset: one that is not a text encoding
        (``base64``, ``zlib``, ``rot13``) or that cannot replace bad bytes
        (``idna``, ``punycode``) would make decoding raise, so it is ignored.
        """
        content_type = self.headers.get("Content-Type", "")
        for param in content_type.split(";")[1:]:
            name, _, value = param.strip().partition("=")
            if name.lower() == "charset":
                return _text_codec(value.strip("\"' ")) or "utf-8"
        return "utf-8"

    @property
    def text(self) -> str:
        """The body decoded with ``encoding`` (undecodable bytes replaced)."""
        body = self.body
        try:
            return body.decode(self.encoding, errors="replace")
        except (UnicodeError, LookupError, ValueError):  # a codec that fails anyway
            return body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            ConnectorError: ``SERIALIZATION_ERROR`` when it is not valid JSON.
        """
        body = self.body
        try:
            return decode_json(body)
        except JSONError as exc:
            error = exc
        raise build_error(
            f"http: {self.request_method} {self.shown_url}: response is not valid JSON ({error})",
            _NOT_JSON,
            connector="http",
            details={"status_code": self.status_code},
        ) from error

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body in chunks (for a streamed response, as it arrives).

        Raises:
            ConnectorError: Reading failed or the body exceeds
                ``max_response_bytes``.
        """
        if self._body is not None:
            if self._body:
                yield self._body
            return
        if self._iter is None:
            return
        chunks, self._iter = self._iter, None
        yield from chunks

    iter_content = iter_bytes

    def iter_text(self) -> Iterator[str]:
        """Yield the body decoded with ``encoding``, as it arrives (bad bytes replaced).

        A multi-byte character split between two chunks is decoded whole.

        Raises:
            ConnectorError: Reading failed or the body exceeds
                ``max_response_bytes``.
        """
        decoder = codecs.getincrementaldecoder(self.encoding)(errors="replace")
        for chunk in self.iter_bytes():
            try:
                text = decoder.decode(chunk)
            except (UnicodeError, LookupError, ValueError):  # a codec that fails anyway
                decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                text = decoder.decode(chunk)
            if text:
                yield text
        try:
            tail = decoder.decode(b"", final=True)
        except (UnicodeError, LookupError, ValueError):
            tail = "\ufffd"
        if tail:
            yield tail

    def iter_lines(self) -> Iterator[str]:
        """Yield the body line by line as text, without the line endings, as it arrives.

        For streaming endpoints (server-sent lines, NDJSON): lines end with
        ``\n``, ``\r\n`` or ``\r`` (a ``\r\n`` split across chunks is one
        ending); a last line without an ending is yielded too. Unlike
        ``requests`` (bytes unless ``decode_unicode``), lines are ``str``,
        decoded as ``iter_text`` does.

        Raises:
            ConnectorError: Reading failed or the body exceeds
                ``max_response_bytes``.
        """
        pending = ""
        for text in self.iter_text():
            # What is pending holds no line ending but perhaps a last "\r":
            # scan only from there, so a long line costs linear time, not quadratic.
            scan = max(0, len(pending) - 1)
            pending += text
            start = 0
            for match in _LINE_END.finditer(pending, scan):
                if match.end() == len(pending) and match.group() == "\r":
                    break  # perhaps the first half of a \r\n
                yield pending[start : match.start()]
                start = match.end()
            pending = pending[start:]
        if pending:
            yield pending[:-1] if pending.endswith("\r") else pending

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_bytes()

    @property
    def shown_url(self) -> str:
        """``url`` as messages and logs show it (``redact_url``: secrets ``***``)."""
        return redact_url(self.url, self._secret_params)

    @property
    def ok(self) -> bool:
        """True when the status is below 400."""
        return self.status_code < 400

    @property
    def is_streamed(self) -> bool:
        """True while body bytes may still be unread from the connection."""
        return self._body is None

    def close(self) -> None:
        """Release the connection of a streamed response (idempotent)."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Response [{self.status_code}] {self.request_method} {self.shown_url}>"


_new = object.__new__


def _response(
    status_code: int,
    headers: Mapping[str, str],
    body: bytes | None,
    url: str,
    seconds: float,
    request_method: str,
    reason: str,
    history: list[Response],
    chunks: Iterator[bytes] | None,
    release: Callable[[], None] | None,
    secret_params: Collection[str],
) -> Response:
    """``Response(...)`` for the connector's hot path: positional, ``elapsed`` in seconds.

    Calling a class with keyword arguments costs CPython a dict per call
    (its ``__init__`` is reached through ``tp_init``), and a ``timedelta``
    from a float costs more than the rest: this builds the same object
    without either (``elapsed`` is made on first use).
    """
    response: Response = _new(Response)
    response.status_code = status_code
    response._secret_params = secret_params
    response._headers = None
    response._raw_headers = headers
    response._body = body
    response._iter = chunks
    response._release = release
    response.url = url
    response._elapsed = None
    response._seconds = seconds
    response.request_method = request_method
    response.reason = reason
    response.history = history
    return response


@functools.lru_cache(maxsize=64)
def _text_codec(charset: str) -> str | None:
    """The codec name for a server's ``charset``, or ``None`` when it cannot decode text.

    Only text encodings that decode any bytes with ``errors="replace"``
    (probed once per name, the answers cached): ``bytes.decode`` refuses
    ``base64`` and its kin with a ``LookupError``, and ``idna`` or
    ``punycode`` raise even with ``errors="replace"``.
    """
    try:
        info = codecs.lookup(charset)
        if not getattr(info, "_is_text_encoding", True):
            return None
        probe = b"\xff\xfe\x00a\x80\r\n\\"
        probe.decode(info.name, errors="replace")
        info.incrementaldecoder(errors="replace").decode(probe, final=True)
    except Exception:  # LookupError, UnicodeError, a codec's own ValueError
        return None
    return info.name
