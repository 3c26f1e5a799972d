"""The one after-fork hook, and the locks a forked child must not inherit held.

``os.fork()`` copies a process with only the calling thread. A lock that
another thread held at that moment stays held in the child forever, and a
socket or pool inherited from the parent must not be used (nor closed) by
the child. This module is the single place that deals with both, modelled
on pymongo's ``lock.py``:

* every lock that a child may inherit is made by ``create_lock()``,
  ``create_rlock()`` or ``create_condition()``. They are ordinary
  ``threading`` objects, remembered weakly; in the child, each one is
  re-initialised (unlocked, no waiters) before anything else runs;
* objects that hold per-process state (a connector's driver handle, a token
  refresh in flight) call ``register_child_reset(obj)``; in the child, after
  the locks, ``obj._after_fork_in_child()`` runs for each of them.

No other module calls ``os.register_at_fork``. ``generation`` counts the
forks this process descends from (0 in the original process, bumped in each
child before any reset runs): a hot path compares it with the value it
recorded, one attribute read, where ``os.getpid()`` is a system call.
Paths that are not hot (connecting, reconnecting) should still compare
``os.getpid()`` with the pid they recorded: the second net for a fork made
by a C extension that bypassed these hooks (where ``generation`` does not
move).

Example::

    class TokenCache:
        def __init__(self) -> None:
            self._lock = _fork.create_lock()
            self._flight = None
            _fork.register_child_reset(self)

        def _after_fork_in_child(self) -> None:
            self._flight = None  # the refreshing thread does not exist here
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any, Protocol

__all__ = [
    "ChildReset",
    "create_condition",
    "create_lock",
    "create_rlock",
    "generation",
    "register_child_reset",
]

logger = logging.getLogger(__name__)


class ChildReset(Protocol):
    """An object with per-process state to reset in a forked child."""

    def _after_fork_in_child(self) -> None:
        """Drop (never close) what belongs to the parent process."""


# Weak: a lock or object that is gone needs no reset. WeakSet iteration is
# safe against concurrent collection; the child runs single-threaded anyway.
_locks: weakref.WeakSet[Any] = weakref.WeakSet()
_resets: weakref.WeakSet[Any] = weakref.WeakSet()

generation = 0
"""How many forks separate this process from the original one (read, never assign)."""


def create_lock() -> threading.Lock:
    """A ``threading.Lock`` that a forked child gets back unlocked."""
    lock = threading.Lock()
    _locks.add(lock)
    return lock


def create_rlock() -> threading.RLock:
    """A ``threading.RLock`` that a forked child gets back unlocked."""
    lock = threading.RLock()
    _locks.add(lock)
    return lock


def create_condition(lock: threading.Lock | threading.RLock | None = None) -> threading.Condition:
    """A ``threading.Condition`` (over ``lock``, or a new forkable RLock).

    In a forked child it has no waiters and its lock is unlocked.
    """
    condition = threading.Condition(lock if lock is not None else create_rlock())
    _locks.add(condition)
    return condition


def register_child_reset(obj: ChildReset) -> None:
    """Call ``obj._after_fork_in_child()`` in every forked child (``obj`` held weakly)."""
    _resets.add(obj)


def _after_fork_in_child() -> None:
    global generation
    generation += 1  # first: a reset, or a hot path, compares against it
    # Locks next: the resets below take them.
    for lock in list(_locks):
        lock._at_fork_reinit()
    for obj in list(_resets):
        try:
            obj._after_fork_in_child()
        except Exception:  # a reset that fails must not break the child's start
            logger.debug("after-fork reset of %s failed", type(obj).__name__, exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
