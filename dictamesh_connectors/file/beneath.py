"""``openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)``: a sandboxed path in one system call.

Linux 5.6 added ``openat2``, whose ``resolve`` flags make the kernel itself
refuse, during the lookup, any component that is a symlink
(``RESOLVE_NO_SYMLINKS``, magic links included) and any step above the
starting directory (``RESOLVE_BENEATH``). That is the walk of ``sandbox.py``
(one ``openat`` per component with ``O_NOFOLLOW``) done by the kernel in
one call, with the same guarantee against a directory swapped for a symlink
mid-lookup: the swapped component is refused, not followed.

Python has no binding for it, so it is called through ``ctypes``
(``syscall(437, ...)``: 437 on every Linux architecture that uses the
common system call table). It is only a fast path: a call that fails for
any reason (a symlink ``follow_symlinks`` wants followed, a missing
component, a kernel without ``openat2``, a seccomp filter answering
``ENOSYS`` or ``EPERM``) returns -1 and the caller walks the path component
by component, which decides and reports exactly as before. ``load()`` probes
the call once on the root directory and returns ``None`` where it does not
work, so a machine without it never pays for a failing call.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from collections.abc import Callable

__all__ = ["RESOLVE", "SYS_OPENAT2", "OpenBeneath", "load"]

SYS_OPENAT2 = 437
"""The system call number (the common table: x86_64, arm64, riscv, ppc, s390...)."""
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS
"""The ``resolve`` flags of every call: stay below the directory, follow no link."""

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | _CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC
# Architectures whose system call numbers are not the common table's.
_OTHER_TABLES = frozenset({"alpha", "ia64"})

OpenBeneath = Callable[[int, bytes, bool], int]
"""``open_beneath(dir_fd, path, directory) -> fd``, or -1 when the walk must decide."""

enabled = True
"""False makes ``load()`` return ``None`` (tests use it to run the walk alone)."""


class _OpenHow(ctypes.Structure):
    # struct open_how (include/uapi/linux/openat2.h)
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


def _build() -> OpenBeneath | None:
    if not sys.platform.startswith("linux") or platform.machine() in _OTHER_TABLES:
        return None
    try:
        syscall = ctypes.CDLL(None).syscall
    except (OSError, AttributeError):
        return None
    syscall.restype = ctypes.c_long
    # No argtypes: the arguments are ready-made C values (or an int and a
    # bytes, which ctypes passes as int and char *), the cheapest call ctypes has.
    file_how = _OpenHow(_FILE_FLAGS, 0, RESOLVE)
    dir_how = _OpenHow(_DIR_FLAGS, 0, RESOLVE)
    _HOWS.extend((file_how, dir_how))  # kept for good: the closure holds their addresses
    file_addr = ctypes.c_void_p(ctypes.addressof(file_how))
    dir_addr = ctypes.c_void_p(ctypes.addressof(dir_how))
    size = ctypes.c_size_t(ctypes.sizeof(_OpenHow))
    number = ctypes.c_long(SYS_OPENAT2)

    def open_beneath(dir_fd: int, path: bytes, directory: bool) -> int:
        fd: int = syscall(number, dir_fd, path, dir_addr if directory else file_addr, size)
        return fd if fd >= 0 else -1

    return open_beneath


_built: list[OpenBeneath | None] = []  # [] until the first load()
_HOWS: list[_OpenHow] = []


def load(probe_dir_fd: int) -> OpenBeneath | None:
    """The fast opener if ``openat2`` works here (probed on ``probe_dir_fd``), else ``None``."""
    if not enabled:
        return None
    if not _built:
        _built.append(_build())
    opener = _built[0]
    if opener is None:
        return None
    fd = opener(probe_dir_fd, b".", True)
    if fd < 0:  # ENOSYS (old kernel), EPERM/ENOSYS (seccomp), anything: walk instead
        return None
    with contextlib.suppress(OSError):
        os.close(fd)
    return opener
