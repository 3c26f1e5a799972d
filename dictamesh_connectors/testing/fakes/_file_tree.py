"""The in-memory tree of ``FakeFile``: its nodes, and the one way it reports a failure.

``_fail`` raises what the real connector raises when a system call fails
with an ``errno``: an ``OSError`` translated by the real ``file/errors.py``
table, so codes, ``details["errno"]`` and messages are the real ones.
"""

from __future__ import annotations

import os
import time
from typing import NoReturn

from dictamesh_connectors.file.errors import translate

__all__ = ["Dir", "File", "Mount", "Node", "fail"]


class File:
    """A regular file: its bytes and modification time."""

    __slots__ = ("data", "mtime")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.mtime = time.time()


class Dir:
    """A directory: name -> node."""

    __slots__ = ("entries", "mtime")

    def __init__(self) -> None:
        self.entries: dict[str, Dir | File] = {}
        self.mtime = time.time()


Node = Dir | File


class Mount:
    """The fake's handle (the real one is the root directory's descriptor)."""

    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


def fail(
    operation: str, path: str, code: int, *, write: bool = False, maybe_applied: bool = False
) -> NoReturn:
    """Raise what the real connector raises when a system call fails with ``code``."""
    with translate(operation, path, write=write, maybe_applied=maybe_applied):
        raise OSError(code, os.strerror(code))
    raise AssertionError("unreachable")
