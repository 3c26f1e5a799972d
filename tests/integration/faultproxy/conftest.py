"""Helpers for the connectors-through-FaultProxy tests.

One file per network connector (PostgreSQL, HTTP, MongoDB, Kafka, GraphQL,
SOAP), each against its real server. The file connector has no network, so
it has no proxy test (its faults are proved in tests/integration/file/).

``bounded(fn)`` runs one connector call in a daemon thread and waits for it
a long but finite time: a connector that hangs through a fault fails the
test instead of hanging the suite. The only time checked is "it came back".
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import attrs
import pytest

pytestmark = pytest.mark.integration

# Far beyond every timeout the tests configure (1-3 s), so a busy machine
# cannot make a working connector look hung.
HANG = 60.0


@attrs.define
class Outcome:
    """What one bounded call did: its result, or the exception it raised."""

    result: Any = None
    error: BaseException | None = None
    thread: threading.Thread | None = None
    hung: bool = False


def bounded(fn: Callable[[], Any], wait: float = HANG, *, may_hang: bool = False) -> Outcome:
    """Call ``fn()`` in a thread; fail the test if it has not returned after ``wait`` s.

    With ``may_hang`` a call still running is returned with ``hung=True``
    (the caller lifts the fault, then joins ``outcome.thread``).
    """
    outcome = Outcome()

    def run() -> None:
        try:
            outcome.result = fn()
        except BaseException as exc:  # handed to the test
            outcome.error = exc

    outcome.thread = threading.Thread(target=run, name="bounded-call", daemon=True)
    outcome.thread.start()
    outcome.thread.join(wait)
    if outcome.thread.is_alive():
        outcome.hung = True
        if may_hang:
            return outcome
        pytest.fail(f"{fn!r} did not return within {wait} s through the fault: it hangs")
    return outcome


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll ``predicate`` until true or ``timeout`` passes; return whether it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
