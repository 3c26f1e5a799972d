"""``OSError`` -> ``ConnectorError``: the file connector's errno table.

Every ``OSError`` that leaves the file connector goes through
``translate()``, one context manager; ``classify()`` is its pure core. The
rule is picked by ``errno`` alone (never by the message text), and the
message names the operation and the path *relative to the root*, never the
machine's absolute path::

    file: write 'inbox/a.csv': No space left on device

Exception mapping::

    OSError errno
    |   ENOENT ........................ NOT_FOUND            permanent  NONE
    |   EEXIST ........................ CONFLICT             permanent  NONE
    |   ENOTEMPTY ..................... CONFLICT             permanent  NONE
    |   EBUSY, ETXTBSY ................ CONFLICT             permanent  NONE
    |   EACCES, EPERM ................. PERMISSION_DENIED    permanent  NONE
    |   EROFS ......................... PERMISSION_DENIED    permanent  NONE
    |   ENOSPC, EDQUOT ................ RESOURCE_EXHAUSTED   transient  RETRY
    |   EMFILE, ENFILE, ENOMEM ........ RESOURCE_EXHAUSTED   transient  RETRY
    |   EFBIG ......................... PAYLOAD_TOO_LARGE    permanent  NONE
    |   EISDIR, ENOTDIR, ENAMETOOLONG . INVALID_REQUEST      permanent  NONE
    |   ELOOP, EINVAL ................. INVALID_REQUEST      permanent  NONE
    |   EXDEV, ENOTSUP/EOPNOTSUPP ..... UNSUPPORTED          permanent  NONE
    |   EIO ........................... CONNECTION_LOST      transient  RECONNECT
    |                                   (a network file system lost its server)
    |   ESTALE, ENOTCONN, EBADF ....... CONNECTION_LOST      transient  RECONNECT
    |                                   (the root directory handle went bad: reopened)
    |   ETIMEDOUT ..................... TIMEOUT              transient  RETRY
    |   EAGAIN/EWOULDBLOCK, EINTR ..... UNAVAILABLE          transient  RETRY
    |   (any other errno) ............. QUERY_FAILED (reads) / EXEC_FAILED (writes)
    UnicodeDecodeError (read_text) .... SERIALIZATION_ERROR  permanent  NONE
    UnicodeEncodeError (write_text) ... SERIALIZATION_ERROR  permanent  NONE
    OverflowError (a size, an offset) . INVALID_REQUEST      permanent  NONE

Raised by the connector itself, before any file is touched::

    a path with "..", absolute, with NUL, a symlink leading out of the root,
    any symlink while follow_symlinks is off .. PERMISSION_DENIED  permanent
    a write on a read_only connector ........... INVALID_REQUEST    permanent
    a bad argument value (unknown encoding or
    error handler, mode, negative size, ...) ... INVALID_REQUEST    permanent
    an argument of the wrong type .............. INVALID_REQUEST    permanent
                                                 (ArgumentTypeError: also a TypeError)
    more than max_file_size bytes .............. PAYLOAD_TOO_LARGE  permanent
    lock() not granted within its timeout ...... LOCK_TIMEOUT       transient

``maybe_applied`` is set when a write may have taken effect: an atomic
write that failed after its rename (the directory fsync), an ``append``
that failed after writing some bytes. An atomic write that failed before
its rename left nothing behind (its temporary file is removed), so retrying
it is always safe.
"""

from __future__ import annotations

import errno
from typing import Any

from dictamesh_connectors.errors import (
    ArgumentTypeError,
    ConnectorError,
    ErrorCode,
    ErrorRule,
    RetryHint,
    Translator,
    build_error,
)

__all__ = [
    "CONFLICT",
    "DENIED",
    "ERRNO_RULES",
    "INVALID",
    "LOCK_TIMEOUT",
    "NOT_FOUND",
    "TOO_LARGE",
    "ArgumentTypeError",
    "Rule",
    "classify",
    "error",
    "translate",
    "where",
    "wrong_type",
]

CONNECTOR = "file"


Rule = ErrorRule
"""How one errno is reported: our code, whether it is transient, the hint."""

_PERMANENT = RetryHint.NONE

_NOT_FOUND = Rule(ErrorCode.NOT_FOUND, False, _PERMANENT)
_CONFLICT = Rule(ErrorCode.CONFLICT, False, _PERMANENT)
_DENIED = Rule(ErrorCode.PERMISSION_DENIED, False, _PERMANENT)
_EXHAUSTED = Rule(ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY)
_INVALID = Rule(ErrorCode.INVALID_REQUEST, False, _PERMANENT)
_UNSUPPORTED = Rule(ErrorCode.UNSUPPORTED, False, _PERMANENT)
_LOST = Rule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)


def _errnos(*names: str) -> list[int]:
    # Some errno names do not exist on every platform (EDQUOT, ESTALE...).
    return [getattr(errno, name) for name in names if hasattr(errno, name)]


ERRNO_RULES: dict[int, Rule] = {
    **dict.fromkeys(_errnos("ENOENT"), _NOT_FOUND),
    # EEXIST: overwrite=False met an existing file, mkdir met an existing path.
    **dict.fromkeys(_errnos("EEXIST", "ENOTEMPTY", "EBUSY", "ETXTBSY"), _CONFLICT),
    **dict.fromkeys(_errnos("EACCES", "EPERM", "EROFS"), _DENIED),
    # Space or quota may come back (a cleanup job, another writer's delete).
    **dict.fromkeys(_errnos("ENOSPC", "EDQUOT", "EMFILE", "ENFILE", "ENOMEM"), _EXHAUSTED),
    **dict.fromkeys(_errnos("EFBIG"), Rule(ErrorCode.PAYLOAD_TOO_LARGE, False, _PERMANENT)),
    **dict.fromkeys(_errnos("EISDIR", "ENOTDIR", "ENAMETOOLONG", "ELOOP", "EINVAL"), _INVALID),
    **dict.fromkeys(_errnos("EXDEV", "ENOTSUP", "EOPNOTSUPP"), _UNSUPPORTED),
    # EIO is how NFS/SMB/FUSE report a server that went away; ESTALE and
    # EBADF mean our root directory handle is no longer usable: the base
    # class reopens it (RECONNECT) and the retry runs on a fresh one.
    **dict.fromkeys(_errnos("EIO", "ESTALE", "ENOTCONN", "EBADF"), _LOST),
    **dict.fromkeys(_errnos("ETIMEDOUT"), Rule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)),
    **dict.fromkeys(
        _errnos("EAGAIN", "EWOULDBLOCK", "EINTR"),
        Rule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY),
    ),
}
"""errno -> rule. Anything else is QUERY_FAILED (reads) or EXEC_FAILED (writes)."""

_SERIALIZATION = Rule(ErrorCode.SERIALIZATION_ERROR, False, _PERMANENT)

# The connector's own refusals (no OSError behind them).
DENIED = _DENIED
"""A path refused by the sandbox."""
INVALID = _INVALID
"""A malformed request: a write on a read-only connector, a reserved name, a bad mode."""
TOO_LARGE = Rule(ErrorCode.PAYLOAD_TOO_LARGE, False, _PERMANENT)
"""More than ``max_file_size`` bytes."""
LOCK_TIMEOUT = Rule(ErrorCode.LOCK_TIMEOUT, True, RetryHint.RETRY)
"""``lock()`` was not granted within its timeout."""
NOT_FOUND = _NOT_FOUND
"""The path does not exist."""
CONFLICT = _CONFLICT
"""The target exists (``overwrite=False``) or is not empty."""


def wrong_type(operation: str, what: str, value: object, expected: str) -> ArgumentTypeError:
    """``file: <operation>: <what> must be <expected>, not <type>`` (the value is never shown)."""
    return ArgumentTypeError(
        f"{CONNECTOR}: {operation}: {what} must be {expected}, not {type(value).__name__:.60}",
        connector=CONNECTOR,
    )


def error(
    message: str,
    rule: Rule,
    *,
    maybe_applied: bool = False,
    details: dict[str, Any] | None = None,
) -> ConnectorError:
    """Build the ``ConnectorError`` for ``rule`` (through the core's one builder)."""
    return build_error(
        message, rule, connector=CONNECTOR, maybe_applied=maybe_applied, details=details
    )


def where(operation: str, path: str) -> str:
    """``file: <operation> '<path>': `` (the path relative to the root)."""
    shown = path or "."
    return f"{CONNECTOR}: {operation} {shown!r:.200}: "


def classify(
    exc: BaseException,
    *,
    operation: str,
    path: str,
    write: bool = False,
    maybe_applied: bool = False,
) -> ConnectorError | None:
    """Return the ``ConnectorError`` for ``exc``, or ``None`` if it is not a file error.

    Args:
        exc: What the ``os`` call raised.
        operation: The verb ("read", "write", "list", ...), for the message.
        path: The path relative to the root, for the message.
        write: The operation changes files (picks EXEC_FAILED as the fallback).
        maybe_applied: The write may have taken effect already.
    """
    prefix = where(operation, path)
    if isinstance(exc, UnicodeError):
        # The reason only: the message of a UnicodeError quotes the data.
        kind = "decode" if isinstance(exc, UnicodeDecodeError) else "encode"
        reason = getattr(exc, "reason", "invalid data")
        encoding = getattr(exc, "encoding", "?")
        return error(f"{prefix}cannot {kind} as {encoding}: {reason}", _SERIALIZATION)
    if isinstance(exc, OverflowError):
        # A size or offset the OS cannot take (read(10**20), seek(2**70)).
        return error(prefix + "a size or offset is out of range", INVALID)
    if not isinstance(exc, OSError):
        return None
    code = exc.errno
    rule = ERRNO_RULES.get(code) if code is not None else None
    if rule is None:
        fallback = ErrorCode.EXEC_FAILED if write else ErrorCode.QUERY_FAILED
        rule = Rule(fallback, False, _PERMANENT)
    name = errno.errorcode.get(code, "") if code is not None else ""
    # strerror only: str(exc) would add the file name the OS call received.
    reason = exc.strerror or type(exc).__name__
    return error(
        prefix + reason,
        rule,
        maybe_applied=maybe_applied,
        details={"errno": name} if name else None,
    )


class translate(Translator):
    """Translate ``OSError`` (and codec errors) raised in the block into ``ConnectorError``.

    The core ``Translator`` (the one translation site every connector
    shares): ``ConnectorError`` and exceptions that ``classify`` does not
    call file errors pass through unchanged; the ``OSError`` is kept as
    ``__cause__``, its file names dropped (``scrub``). Its fields are slots,
    not the base's ``context`` dict: it sits on every operation's hot path.

    Example::

        with translate("read", "inbox/a.csv"):
            fd = os.open(name, os.O_RDONLY, dir_fd=parent)

    Raises:
        ConnectorError: Translated from the ``OSError``.
    """

    __slots__ = ("maybe_applied", "path", "write")

    def __init__(
        self, operation: str, path: str, *, write: bool = False, maybe_applied: bool = False
    ) -> None:
        self.operation = operation
        self.path = path
        self.write = write
        self.maybe_applied = maybe_applied

    def classify(self, exc: Exception) -> ConnectorError | None:
        """``classify`` for the block's operation and path (``None``: not a file error)."""
        return classify(
            exc,
            operation=self.operation,
            path=self.path,
            write=self.write,
            maybe_applied=self.maybe_applied,
        )

    def scrub(self, exc: Exception) -> None:
        """Drop the ``OSError``'s file names.

        They are names inside the root (only names relative to a directory
        descriptor are passed), but nothing in the chain should carry more of
        the path than the message does.
        """
        if isinstance(exc, OSError):
            exc.filename = exc.filename2 = None
