"""The locks reachable from a connector, for the suite's lock and fork checks.

``reachable_locks`` walks a connector's own objects (those of its package
and of ``dictamesh_connectors``; a driver's objects are leaves) through
attributes, slots and containers, and names each ``threading`` lock,
``RLock`` and ``Condition`` it finds by its path (``"_txn_lock"``,
``"_listeners[0]._lock"``). ``is_locked`` tells whether one is held now,
without taking it; ``fork_registered`` whether a forked child gets it back
unlocked (it was made by ``_fork.create_lock()``, ``create_rlock()`` or
``create_condition()``).
"""

from __future__ import annotations

import collections
import re
import threading
import types
import weakref
from collections.abc import Iterator
from typing import Any

from dictamesh_connectors import _fork

__all__ = ["fork_registered", "is_locked", "owner_of", "reachable_locks", "underlying"]

_LOCK = type(threading.Lock())
_RLOCKS: tuple[type, ...] = tuple(
    {type(threading.RLock()), getattr(threading, "_PyRLock", type(threading.RLock()))}
)
_OWNER = re.compile(r"owner=(\d+)")
_LEAVES = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.CodeType,
    types.FrameType,
    types.TracebackType,
    threading.Thread,
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
)


def _is_lock(value: Any) -> bool:
    return isinstance(value, (_LOCK, *_RLOCKS, threading.Condition))


def _attributes(value: Any) -> Iterator[tuple[str, Any]]:
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        yield from list(attributes.items())
    for cls in type(value).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            try:
                yield slot, getattr(value, slot)
            except AttributeError:
                continue


def reachable_locks(
    root: Any, own: tuple[str, ...], *, max_depth: int = 8, max_objects: int = 50_000
) -> list[tuple[str, Any]]:
    """Every lock, RLock and Condition reachable from ``root`` through its own objects.

    Args:
        root: Where to start (a connector).
        own: Module-name prefixes whose objects are walked into (the
            connector's package, ``dictamesh_connectors``); any other
            object is a leaf (a driver's internals are the driver's).
        max_depth: How many attribute or container steps from ``root``.
        max_objects: A bound on the objects visited.

    Returns:
        ``(path, lock)`` pairs, each lock once (by its shortest path found
        first, breadth-first).
    """
    found: list[tuple[str, Any]] = []
    seen: set[int] = {id(root)}
    queue: collections.deque[tuple[str, Any, int]] = collections.deque([("", root, 0)])

    def owned(value: Any) -> bool:
        module = getattr(type(value), "__module__", "") or ""
        return any(module == p or module.startswith(p + ".") for p in own)

    while queue and len(seen) < max_objects:
        path, value, depth = queue.popleft()
        if depth >= max_depth:
            continue
        children: list[tuple[str, Any]]
        if isinstance(value, dict):
            children = [(f"{path}[{key!r}]", item) for key, item in list(value.items())]
        elif isinstance(value, (list, tuple, collections.deque)):
            children = [(f"{path}[{i}]", item) for i, item in enumerate(list(value))]
        elif isinstance(value, (set, frozenset, weakref.WeakSet)):
            children = [(f"{path}{{}}", item) for item in list(value)]
        elif value is root or owned(value):
            children = [
                (f"{path}.{name}" if path else name, item) for name, item in _attributes(value)
            ]
        else:
            continue
        for child_path, child in children:
            if isinstance(child, _LEAVES) or id(child) in seen:
                continue
            seen.add(id(child))
            if _is_lock(child):
                found.append((child_path, child))
                continue
            queue.append((child_path, child, depth + 1))
    return found


def underlying(lock: Any) -> Any:
    """The Lock or RLock itself: a Condition's own lock, else ``lock``."""
    if isinstance(lock, threading.Condition):
        return lock._lock  # type: ignore[attr-defined]
    return lock


def is_locked(lock: Any) -> bool:
    """Whether ``lock`` (a Lock, an RLock, or a Condition's lock) is held now; never takes it."""
    lock = underlying(lock)
    if isinstance(lock, _LOCK):
        return bool(lock.locked())
    return repr(lock).startswith("<locked")


def owner_of(lock: Any) -> int | None:
    """The thread ident holding an RLock (or a Condition over one); ``None`` when unknown."""
    lock = underlying(lock)
    if isinstance(lock, _LOCK):
        return None
    match = _OWNER.search(repr(lock))
    return int(match.group(1)) if match and repr(lock).startswith("<locked") else None


def fork_registered(lock: Any) -> bool:
    """Whether a forked child gets ``lock`` back unlocked (``_fork`` re-initialises it)."""
    if lock in _fork._locks:
        return True
    # A lock that a registered Condition is made over is re-initialised with it.
    return any(
        isinstance(other, threading.Condition) and underlying(other) is lock
        for other in list(_fork._locks)
    )
