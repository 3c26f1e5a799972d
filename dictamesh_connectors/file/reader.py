"""``open(path, "rb")``: a streaming reader with its own position (``pread``).

The reader keeps its offset itself and reads with ``os.pread``, so a
descriptor copied into a forked child never moves the parent's position;
the connector also closes the child's copies at fork.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from types import TracebackType

from dictamesh_connectors.file.args import MAX_OFFSET, check_int
from dictamesh_connectors.file.errors import (
    INVALID,
    TOO_LARGE,
    error,
    translate,
    where,
    wrong_type,
)

__all__ = ["FileReader"]


class FileReader:
    """A file opened for reading, in chunks. Not thread-safe: one per thread.

    Example::

        with files.open("exports/big.csv", "rb") as src:
            for chunk in src:          # chunks of config.chunk_size bytes
                digest.update(chunk)
    """

    def __init__(
        self,
        fd: int,
        path: str,
        *,
        chunk_size: int,
        max_size: int | None,
        on_done: Callable[[FileReader], None] | None = None,
    ) -> None:
        self._fd = fd
        self._path = path
        self._chunk_size = chunk_size
        self._max_size = max_size
        self._pos = 0
        self._pid = os.getpid()
        self._on_done = on_done

    @property
    def name(self) -> str:
        """The path, relative to the root."""
        return self._path

    @property
    def closed(self) -> bool:
        """True once closed (or dropped in a forked child)."""
        return self._fd < 0

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return True

    def _check(self) -> int:
        if self._fd < 0:
            raise error(where("read", self._path) + "the reader is closed", INVALID)
        return self._fd

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when negative); ``b""`` at the end.

        Raises:
            ArgumentTypeError: ``size`` is not an ``int`` or ``None``.
            ConnectorError: PAYLOAD_TOO_LARGE when reading everything would
                pass ``max_file_size``; a translated ``OSError``.
        """
        if size is not None:
            size = check_int(size, "size", "read", maximum=None)  # any int: huge reads what is left
        fd = self._check()
        with translate("read", self._path):
            if size is None or size < 0:
                chunks = []
                while True:
                    chunk = os.pread(fd, self._chunk_size, self._pos)
                    if not chunk:
                        break
                    self._pos += len(chunk)
                    if self._max_size is not None and self._pos > self._max_size:
                        raise error(
                            where("read", self._path)
                            + f"more than max_file_size ({self._max_size}) bytes",
                            TOO_LARGE,
                        )
                    chunks.append(chunk)
                return b"".join(chunks)
            # Never ask the OS for (and allocate) more than the file can hold.
            left = max(os.fstat(fd).st_size - self._pos, 0)
            data = os.pread(fd, min(size, left + self._chunk_size), self._pos)
            self._pos += len(data)
            return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        """Read into ``buffer``; return the number of bytes (0 at the end).

        Raises:
            ArgumentTypeError: ``buffer`` is not a writable bytes-like object.
        """
        try:
            view = memoryview(buffer).cast("B")
        except (TypeError, ValueError):  # not a buffer; a non-contiguous view
            raise wrong_type("read", "buffer", buffer, "a writable bytes-like object") from None
        if view.readonly:
            raise wrong_type("read", "buffer", buffer, "a writable bytes-like object")
        fd = self._check()
        with translate("read", self._path):
            count = os.preadv(fd, [view], self._pos)
        self._pos += count
        return count

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks()

    def chunks(self, size: int | None = None) -> Iterator[bytes]:
        """Yield the rest of the file in chunks of ``size`` (default ``chunk_size``) bytes.

        Raises:
            ArgumentTypeError: ``size`` is not an ``int`` or ``None`` (raised here, not
                at the first chunk).
            ConnectorError: INVALID_REQUEST for a ``size`` below 1.
        """
        step = self._chunk_size if size is None else check_int(size, "size", "read", minimum=1)
        return self._chunks(step)

    def _chunks(self, step: int) -> Iterator[bytes]:
        while True:
            chunk = self.read(step)
            if not chunk:
                return
            yield chunk

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the position (``SEEK_SET``, ``SEEK_CUR``, ``SEEK_END``); return it.

        Raises:
            ArgumentTypeError: ``offset`` or ``whence`` is not an ``int``.
            ConnectorError: INVALID_REQUEST for another ``whence`` or a
                position below 0 or past ``2**63 - 1``.
        """
        offset = check_int(offset, "offset", "seek", maximum=MAX_OFFSET)
        if not isinstance(whence, int) or isinstance(whence, bool):
            raise wrong_type("seek", "whence", whence, "an int")
        fd = self._check()
        if whence == os.SEEK_SET:
            base = 0
        elif whence == os.SEEK_CUR:
            base = self._pos
        elif whence == os.SEEK_END:
            with translate("read", self._path):
                base = os.fstat(fd).st_size
        else:
            raise error(where("read", self._path) + "whence must be 0, 1 or 2", INVALID)
        if base + offset < 0:
            raise error(where("read", self._path) + "negative seek position", INVALID)
        if base + offset > MAX_OFFSET:
            raise error(where("read", self._path) + "seek position out of range", INVALID)
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        """The current position."""
        return self._pos

    def close(self) -> None:
        """Close the file. Idempotent."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)
            if self._on_done is not None:
                callback, self._on_done = self._on_done, None
                callback(self)

    def _forget(self) -> None:
        """In a forked child: close the child's copy only."""
        self._on_done = None
        self.close()

    def __enter__(self) -> FileReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        fd = getattr(self, "_fd", -1)
        if fd >= 0 and getattr(self, "_pid", None) == os.getpid():
            with contextlib.suppress(OSError):
                os.close(fd)

    def __repr__(self) -> str:
        return f"<FileReader {self._path!r} {'closed' if self.closed else f'at {self._pos}'}>"
