"""Pure path rules of the sandbox: split, refuse, reserve. No I/O here.

A path given to the connector is split into its components *before* any
file is touched. Refused with PERMISSION_DENIED: an absolute path, a NUL
byte, and any ``..`` component, even one that would stay inside the root
(``a/../b``): the only way up is never taken. Empty and ``.`` components are
dropped (``a//./b`` is ``a/b``); the empty path (or ``.``) is the root.

Refused with INVALID_REQUEST: a path the file system cannot encode (a lone
surrogate), a component longer than 255 bytes, a path longer than 4096
bytes, and, for the data verbs, the names the connector reserves for its
own files (temporary files of writes in progress, lock sidecars, the
transaction journal), which ``list()`` never shows.
"""

from __future__ import annotations

import os
import re
from typing import Any

from dictamesh_connectors.file.errors import DENIED, INVALID, error, where, wrong_type

__all__ = [
    "JOURNAL_PREFIX",
    "NAME_MAX",
    "PATH_MAX",
    "TEMP_PREFIX",
    "is_hidden",
    "is_temp",
    "join",
    "split",
    "temp_name",
]

NAME_MAX = 255
"""Longest component, in bytes (Linux, macOS, most file systems)."""
PATH_MAX = 4096
"""Longest path, in bytes."""

TEMP_PREFIX = ".dmtmp-"
"""Temporary files of atomic writes in progress: ``.dmtmp-<32 hex digits>``."""
JOURNAL_PREFIX = ".dmtxn-"
"""Transaction journals: ``.dmtxn-<32 hex digits>``."""

_TEMP = re.compile(r"\.dm(tmp|txn)-[0-9a-f]{32}\Z")


def split(path: Any, operation: str) -> tuple[str, ...]:
    """Split a path relative to the root into its components, refusing unsafe ones.

    Args:
        path: A ``str`` or ``os.PathLike`` (e.g. ``PurePosixPath``).
        operation: The verb, for the error message.

    Returns:
        The components, e.g. ``("inbox", "a.csv")``; ``()`` for the root.

    Raises:
        ArgumentTypeError: ``path`` is not a string or a path-like object
            naming a string (INVALID_REQUEST; also a ``TypeError``).
        ConnectorError: PERMISSION_DENIED (absolute, NUL, ``..``) or
            INVALID_REQUEST (not encodable, too long).
    """
    if type(path) is str:
        known = _SPLIT.get(path)
        if known is not None:
            return known
        parts = _split(path, operation)
        if len(_SPLIT) >= _SPLIT_MAX:
            _SPLIT.clear()  # a crude bound: the hot paths come back at once
        _SPLIT[path] = parts
        return parts
    if not isinstance(path, str):
        if not isinstance(path, os.PathLike):
            raise wrong_type(operation, "a path", path, "a str or os.PathLike")
        path = os.fspath(path)
        if not isinstance(path, str):
            raise wrong_type(operation, "a path", path, "a str (not bytes)")
    return _split(path, operation)


# Paths split before (only accepted ones: a refusal is never cached). The
# same few paths are used over and over; splitting and checking one again
# costs more than the lookup. Reads and writes of the dict are atomic.
_SPLIT: dict[str, tuple[str, ...]] = {}
_SPLIT_MAX = 4096


def _split(path: str, operation: str) -> tuple[str, ...]:
    if "\x00" in path:
        raise error(where(operation, "<path with NUL>") + "NUL in a path is refused", DENIED)
    if path.startswith("/"):
        # Never echo it: it is an absolute path of this machine.
        raise error(
            f"file: {operation}: absolute paths are refused (paths are relative to the root)",
            DENIED,
        )
    pieces = path.split("/")
    if "" in pieces or "." in pieces:
        parts = tuple(part for part in pieces if part and part != ".")
    else:
        parts = tuple(pieces)
    if ".." in parts:
        raise error(where(operation, path) + "'..' in a path is refused", DENIED)
    if path.isascii():  # the common case: one byte per character, nothing to encode
        if len(path) <= NAME_MAX:  # no name in it can be too long, nor the path
            return parts
        if len(path) > PATH_MAX:
            raise error(where(operation, path[:60] + "...") + "path too long", INVALID)
        if any(len(part) > NAME_MAX for part in parts):
            raise error(where(operation, path[:60] + "...") + "file name too long", INVALID)
        return parts
    try:
        encoded = os.fsencode(path)
    except UnicodeError:
        raise error(
            f"file: {operation}: the path cannot be encoded for the file system", INVALID
        ) from None
    if len(encoded) > PATH_MAX:
        raise error(where(operation, path[:60] + "...") + "path too long", INVALID)
    for part in parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise error(where(operation, path[:60] + "...") + "file name too long", INVALID)
    return parts


def join(parts: tuple[str, ...]) -> str:
    """The path for messages and ``FileInfo.path``: ``a/b``; ``""`` is the root."""
    return "/".join(parts)


def is_temp(name: str) -> bool:
    """True for the connector's temporary files and journals."""
    return name.startswith(".dm") and _TEMP.match(name) is not None


def is_hidden(name: str, lock_suffix: str) -> bool:
    """True for every name ``list()`` hides: temporary files, journals, lock sidecars."""
    return name.endswith(lock_suffix) or is_temp(name)


def temp_name(token: str) -> str:
    """The temporary file name for a 32-hex-digit ``token``."""
    return TEMP_PREFIX + token
