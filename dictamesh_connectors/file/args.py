"""Checks of the verbs' arguments, made before any file is touched. No I/O here.

Every public method of the file connector (and of its readers, writers,
locks and transactions) checks its arguments with these first, so garbage
in is a ``ConnectorError`` with a code, never a raw ``TypeError``,
``ValueError`` or ``LookupError`` from deep inside ``os`` or ``codecs``:

* a value of the wrong type: ``ArgumentTypeError`` (INVALID_REQUEST, and a
  ``TypeError``);
* a value of the right type that cannot be used (an unknown encoding or
  error handler, one with a NUL, a size below its minimum or past what
  the OS takes): INVALID_REQUEST.
"""

from __future__ import annotations

import codecs
from typing import Any

from dictamesh_connectors.file.errors import INVALID, error, wrong_type

__all__ = ["MAX_OFFSET", "check_codec", "check_flag", "check_int"]

MAX_OFFSET = 2**63 - 1
"""The largest size or file offset the OS takes (``off_t``)."""

# Accepted (encoding, errors) pairs: a lookup costs more than this dict.
_CODECS: set[tuple[str, str]] = set()
_CODECS_MAX = 256


def check_flag(value: Any, name: str, operation: str) -> bool:
    """``value`` if it is a ``bool``; ``ArgumentTypeError`` otherwise (``"no"`` is not false)."""
    if value is True or value is False:
        return value
    raise wrong_type(operation, name, value, "True or False")


def check_int(
    value: Any,
    name: str,
    operation: str,
    *,
    minimum: int | None = None,
    maximum: int | None = MAX_OFFSET,
) -> int:
    """``value`` if it is an ``int`` (not a ``bool``) within ``[minimum, maximum]``.

    Raises:
        ArgumentTypeError: Not an ``int``.
        ConnectorError: INVALID_REQUEST when out of range.
    """
    if not isinstance(value, int) or isinstance(value, bool):
        raise wrong_type(operation, name, value, "an int")
    if minimum is not None and value < minimum:
        raise error(f"file: {operation}: {name} must be >= {minimum}", INVALID)
    if maximum is not None and value > maximum:
        raise error(f"file: {operation}: {name} must be <= {maximum}", INVALID)
    return int(value)


def check_codec(encoding: Any, errors: Any, operation: str) -> None:
    """Refuse an ``encoding`` / ``errors`` pair ``str.encode`` / ``bytes.decode`` would.

    Checked up front, not when the data is decoded: ``b"".decode(x)``
    never looks ``x`` up, an error handler is looked up only at the first
    bad byte, and a read would have been made for nothing.

    Raises:
        ArgumentTypeError: Either is not a ``str``.
        ConnectorError: INVALID_REQUEST for an unknown encoding or error
            handler, one holding a NUL or a lone surrogate, or a codec
            that is not a text encoding (``base64``, ``rot13``).
    """
    if type(encoding) is str and type(errors) is str and (encoding, errors) in _CODECS:
        return
    if not isinstance(encoding, str):
        raise wrong_type(operation, "encoding", encoding, "a str")
    if not isinstance(errors, str):
        raise wrong_type(operation, "errors", errors, "a str")
    try:
        info = codecs.lookup(encoding)
    except (LookupError, ValueError, UnicodeError):
        raise error(f"file: {operation}: unknown encoding {encoding!r:.40}", INVALID) from None
    # bytes.decode / str.encode refuse the bytes-to-bytes and str-to-str codecs.
    if not getattr(info, "_is_text_encoding", True):
        raise error(f"file: {operation}: {encoding!r:.40} is not a text encoding", INVALID)
    try:
        codecs.lookup_error(errors)
    except (LookupError, ValueError, UnicodeError):
        raise error(f"file: {operation}: unknown error handler {errors!r:.40}", INVALID) from None
    if type(encoding) is str and type(errors) is str:
        if len(_CODECS) >= _CODECS_MAX:
            _CODECS.clear()
        _CODECS.add((encoding, errors))
