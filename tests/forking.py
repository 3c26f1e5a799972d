"""Fork helpers of our own tests.

``run_in_child`` lives in the conformance suite now (re-exported so ``from
tests.forking import run_in_child`` keeps working; see
``dictamesh_connectors.testing.conformance.forking``); ``held_by_another_thread``
sets up the fork-while-locked case.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from dictamesh_connectors.testing.conformance.forking import run_in_child

__all__ = ["held_by_another_thread", "run_in_child"]


@contextlib.contextmanager
def held_by_another_thread(*locks: Any, hold_for: float = 10.0) -> Iterator[None]:
    """Another thread holds every one of ``locks`` for the whole block.

    Fork inside the block to prove the child gets the locks free: one
    inherited held would deadlock it. The holder lets go when the block
    ends (or after ``hold_for`` seconds at the latest).
    """
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with contextlib.ExitStack() as stack:
            for lock in locks:
                stack.enter_context(lock)
            held.set()
            release.wait(hold_for)

    holder = threading.Thread(target=hold, daemon=True, name="fork-test-lock-holder")
    holder.start()
    try:
        assert held.wait(5), "the holder thread could not take the lock(s)"
        yield
    finally:
        release.set()
        holder.join(5)
