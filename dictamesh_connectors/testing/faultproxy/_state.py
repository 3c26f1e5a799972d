"""What the proxy's API and its loop thread share: settings, counters, commands.

Everything here is guarded by ``State.lock``, held for memory only, never
across socket I/O.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Callable, Mapping

import attrs

from dictamesh_connectors._fork import create_lock

UP = "upstream"
DOWN = "downstream"
FAULT_KINDS = (
    "bandwidth",
    "blackhole",
    "half_open",
    "latency",
    "refuse",
    "reset",
    "slow_close",
)


class FaultProxyError(Exception):
    """The proxy itself failed: it could not listen, its loop did not answer
    in time or died, or it is closed."""


@attrs.frozen
class FaultProxyStats:
    """A snapshot of what a ``FaultProxy`` has done since it started.

    Attributes:
        accepted: connections accepted from clients.
        active: connections open now.
        bytes_upstream: bytes delivered to the server.
        bytes_downstream: bytes delivered to clients (each send is counted
            as it starts, so the receiver is never ahead of the counter;
            the counter may be ahead of it by the send under way).
        upstream_failures: connections whose server end could not be opened
            (the client end was then reset).
        faults: how often each fault was applied: ``reset`` (connections
            reset), ``half_open`` (connections cut), ``blackhole``
            (connections held, once per switch-on), ``latency`` (chunks
            delayed), ``bandwidth`` (sends paced), ``slow_close`` (closes
            delayed), ``refuse`` (times the listener was closed).
    """

    accepted: int
    active: int
    bytes_upstream: int
    bytes_downstream: int
    upstream_failures: int
    faults: Mapping[str, int]


@attrs.define
class Shape:
    """The settings of one direction (guarded by State.lock)."""

    latency: float = 0.0
    jitter: float = 0.0
    bandwidth: float | None = None
    blackhole: bool = False
    blackhole_epoch: int = 0


@attrs.define
class ResetPlan:
    """A ``reset_next`` armed for one direction (guarded by State.lock)."""

    count: int
    after_bytes: int
    seen: int = 0


@attrs.frozen
class Settings:
    """What the loop reads once per turn (a copy, so no lock is held after)."""

    shapes: Mapping[str, Shape]
    half_open: bool
    slow_close: float


class Command:
    """A function the loop thread runs for a caller that waits for it."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: object = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.fn()
        except BaseException as exc:  # handed to the caller, who re-raises it
            self.error = exc
        finally:
            self.done.set()


def noop() -> None:
    """A command that only waits for the loop's next turn."""


class State:
    """The settings, counters, pending commands and lifecycle flags.

    Every attribute is guarded by ``lock``; the API thread writes settings,
    the loop thread reads a copy of them once per turn and bumps counters.
    """

    def __init__(self) -> None:
        self.lock = create_lock()
        # settings
        self.shapes = {UP: Shape(), DOWN: Shape()}
        self.half_open = False
        self.slow_close = 0.0
        self.refusing = False
        self.reset_plans: dict[str, ResetPlan] = {}
        # commands for the loop thread
        self.commands: list[Command] = []
        # lifecycle flags
        self.stopping = False
        self.closed = False
        self.close_called = False
        self.failure: BaseException | None = None
        self.forked = False
        # counters
        self.accepted = 0
        self.active = 0
        self.bytes = {UP: 0, DOWN: 0}
        self.upstream_failures = 0
        self.faults = dict.fromkeys(FAULT_KINDS, 0)

    def count(self, kind: str, n: int = 1) -> None:
        """Count ``n`` applications of fault ``kind``."""
        with self.lock:  # counters
            self.faults[kind] += n

    def settings(self) -> Settings:
        """A copy of the settings (taken under the lock, used without it)."""
        with self.lock:  # settings
            return Settings(
                shapes={name: attrs.evolve(shape) for name, shape in self.shapes.items()},
                half_open=self.half_open,
                slow_close=self.slow_close,
            )

    def snapshot(self) -> FaultProxyStats:
        """The counters, consistent with each other."""
        with self.lock:  # counters
            return FaultProxyStats(
                accepted=self.accepted,
                active=self.active,
                bytes_upstream=self.bytes[UP],
                bytes_downstream=self.bytes[DOWN],
                upstream_failures=self.upstream_failures,
                faults=types.MappingProxyType(dict(self.faults)),
            )
