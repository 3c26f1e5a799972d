"""``FileConfig``: which directory the connector is sandboxed to, and how it writes.

Pure data (no I/O): it validates, compares, pickles and builds from a
``file://`` URL or the environment without touching the file system.
"""

from __future__ import annotations

import os
import urllib.parse
from typing import Any, ClassVar

import attrs

from dictamesh_connectors._convert import to_seconds
from dictamesh_connectors.config import (
    BaseConfig,
    bool_field,
    describe_value,
    field_converter,
    int_field,
    query_params,
)
from dictamesh_connectors.errors import InvalidConfigError

__all__ = ["MAX_CHUNK_SIZE", "MAX_FILE_SIZE", "FileConfig"]

MAX_FILE_SIZE = 2**63 - 1
"""The largest ``max_file_size`` (the largest file offset the OS can express)."""
MAX_CHUNK_SIZE = 1 << 30
"""The largest ``chunk_size`` (1 GiB)."""
MAX_SECONDS = 10 * 365 * 86400.0
"""The largest finite ``lock_timeout`` / ``orphan_age`` (ten years); ``inf`` means never."""


def _mode(value: Any) -> int:
    # Permission bits; strings (URL, environment) are octal, as chmod reads them.
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidConfigError(f"expected permission bits, got {describe_value(value)}")
    if isinstance(value, str):
        text = value.strip().lower().removeprefix("0o")
        if not text or any(c not in "01234567" for c in text) or len(text) > 5:
            raise InvalidConfigError(f"expected octal permission bits, got {describe_value(value)}")
        value = int(text, 8)
    assert isinstance(value, int)
    if not 0 <= value <= 0o7777:
        raise InvalidConfigError(f"permission bits out of range 0..0o7777: {describe_value(value)}")
    return value


def _converted(fn: Any, **kwargs: Any) -> Any:
    # attrs.field with a converter whose failures are InvalidConfigError naming the field.
    return attrs.field(converter=field_converter(fn), **kwargs)


def _seconds(value: Any) -> float:
    # A duration (the core's converter); inf (or "inf", "none") means "no limit".
    try:
        return to_seconds(value, name="", maximum=MAX_SECONDS, no_limit="inf", text=True)
    except TypeError:
        raise InvalidConfigError(f"expected seconds, got {describe_value(value)}") from None


def _root(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InvalidConfigError(f"expected a directory path, got {describe_value(value)}")
    if not value.strip():
        raise InvalidConfigError("must not be empty")
    if "\x00" in value:
        raise InvalidConfigError("must not contain NUL characters")
    try:
        os.fsencode(value)
    except UnicodeError:
        raise InvalidConfigError("cannot be encoded for the file system") from None
    return value


def _suffix(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidConfigError(f"expected a string, got {describe_value(value)}")
    if not value.startswith(".") or len(value) < 2 or len(value) > 32:
        raise InvalidConfigError("must start with '.' and be 2 to 32 characters")
    if "/" in value or "\x00" in value or value in ("..",):
        raise InvalidConfigError("must be a plain file name suffix")
    try:
        value.encode("utf-8")
    except UnicodeError:
        raise InvalidConfigError("cannot be encoded for the file system") from None
    return value


@attrs.frozen(kw_only=True)
class FileConfig(BaseConfig):
    """Configuration of a ``FileConnector``.

    Immutable and validated on construction (every bad value raises
    ``InvalidConfigError`` naming the field), so one instance is safe to
    share between threads and processes. Build it with keywords, from a URL
    or from the environment::

        FileConfig(root="/var/data/inbox", read_only=True)
        FileConfig.from_url("file:///var/data/inbox?read_only=true")
        FileConfig.from_env("INBOX_")   # INBOX_URL, then INBOX_ROOT, INBOX_READ_ONLY, ...

    Attributes:
        root: The directory every path is relative to; nothing outside it is
            ever read or written. A relative root is made absolute against
            the working directory when the connector connects.
        create_root: Create the root (and its parents, with ``dir_mode``)
            on ``connect()`` if it does not exist.
        read_only: Refuse every write (INVALID_REQUEST) and check only that
            the root is readable in ``ping()``.
        follow_symlinks: Follow a symlink whose target stays inside the root.
            Off (the default): any symlink in a path is refused
            (PERMISSION_DENIED). A symlink leading outside is refused either way.
        fsync: Make writes durable: fsync the file before its rename and the
            directory after it (``append`` fsyncs the file). Off, writes are
            still atomic (old or new content, never a mix), but a machine
            crash may lose the last ones.
        max_file_size: Refuse to write (or read into memory) a file of more
            bytes than this: PAYLOAD_TOO_LARGE. ``None``: no limit. At most
            ``2**63 - 1``.
        file_mode: Permission bits of new files (octal in URLs and the
            environment, e.g. ``0640``), before the process umask.
        dir_mode: Permission bits of new directories, before the umask.
        lock_timeout: Seconds ``lock()`` waits by default before raising
            LOCK_TIMEOUT; ``inf`` waits as long as it takes. At most ten years.
        orphan_age: A temporary file left by a crashed writer is removed by
            a later write in the same directory once it is this many seconds
            old and no live writer holds it (``inf``: never). At most ten years.
        lock_suffix: Suffix of the sidecar file ``lock(path)`` locks
            (``<path>.lock``). Names ending with it are reserved: never
            listed, never written by the data methods.
        chunk_size: Bytes per read/write system call when streaming and
            copying (1 to 1 GiB).
    """

    url_schemes: ClassVar[tuple[str, ...]] = ("file",)

    root: str = _converted(_root)
    create_root: bool = bool_field(False)
    read_only: bool = bool_field(False)
    follow_symlinks: bool = bool_field(False)
    fsync: bool = bool_field(True)
    max_file_size: int | None = int_field(None, min=0, max=MAX_FILE_SIZE, optional=True)
    file_mode: int = _converted(_mode, default=0o644)
    dir_mode: int = _converted(_mode, default=0o755)
    lock_timeout: float = _converted(_seconds, default=30.0)
    orphan_age: float = _converted(_seconds, default=3600.0)
    lock_suffix: str = _converted(_suffix, default=".lock")
    chunk_size: int = int_field(1 << 20, min=1, max=MAX_CHUNK_SIZE)

    @orphan_age.validator
    def _check_orphan_age(self, _attribute: attrs.Attribute[float], value: float) -> None:
        if value < 1.0:
            # A live writer's file is locked microseconds after it is created;
            # a second of age keeps a cleaner out of that window.
            raise InvalidConfigError(f"orphan_age: must be at least 1 second, got {value!r}")

    @property
    def target(self) -> str:
        """The root as given, for reprs (error messages name paths relative to it)."""
        return self.root

    # ------------------------------------------------------------ constructors

    @classmethod
    def _fields_from_url(cls, parts: urllib.parse.SplitResult) -> dict[str, Any]:
        if parts.netloc not in ("", "localhost"):
            raise InvalidConfigError(
                "file:// URLs name a local directory: the host must be empty or localhost"
            )
        fields: dict[str, Any] = {}
        root = urllib.parse.unquote(parts.path, errors="surrogateescape")
        if root:
            fields["root"] = root
        fields.update(query_params(parts))
        return fields

    def connection_string(self, redact: bool = True) -> str:
        """A ``file://`` URL for this config (it holds no secret; ``redact`` is accepted).

        ``from_url(config.connection_string())`` rebuilds an equal config
        (retry policy aside) when the root is absolute.
        """
        query: dict[str, str] = {}
        defaults = attrs.fields_dict(type(self))
        for name, attribute in defaults.items():
            if name in ("root", "retry"):
                continue
            value = getattr(self, name)
            if value == attribute.default:
                continue
            if isinstance(value, bool):
                query[name] = "true" if value else "false"
            elif name in ("file_mode", "dir_mode"):
                query[name] = f"0{value:o}"
            elif value is None:
                query[name] = ""
            else:
                query[name] = str(value)
        path = urllib.parse.quote(self.root, errors="surrogateescape")
        suffix = "?" + urllib.parse.urlencode(query) if query else ""
        return f"file://{path}{suffix}"
