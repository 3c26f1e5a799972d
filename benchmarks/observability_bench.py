"""Cost of the base class's events and stats per operation (no server needed).

Prints client CPU µs per operation (time.thread_time) of one ``_use()``
block (the in-flight accounting every verb runs through, counters included)
with no listener, with a no-op listener subscribed, and of the bare
in-flight registration it is built on (a set add and discard: the hot path
takes no lock), so the events' own cost can be read off, and the
trace-propagation check of the send paths, and what a Kafka consumer's
poll()/consume() call (one per batch) pays to be counted and reported
outside the in-flight accounting (``_operation_clock`` and
``_record_operation``). Also ``_run()`` with an
operation that succeeds at once (the retry loop is not entered). Exits 1
when the cost with no listener is over the 2 µs budget.

    python benchmarks/observability_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dictamesh_connectors.observability import Listener
from tests.unit.fakes import FakeConfig, FakeConnector

N = 200_000
BUDGET_US = 2.0  # issue #13: events and stats cost at most this per operation, no listener


def cpu_us(fn, n: int = N) -> float:
    best = float("inf")
    for _ in range(5):
        start = time.thread_time()
        fn(n)
        best = min(best, (time.thread_time() - start) / n * 1e6)
    return best


def main() -> None:
    c = FakeConnector(FakeConfig())
    c.connect()

    def use(n: int) -> None:
        for _ in range(n):
            with c._use("op"):
                pass

    ops: set[object] = set()
    token = object()

    def bare(n: int) -> None:  # the registration the block is built on
        add, discard = ops.add, ops.discard
        for _ in range(n):
            add(token)
            discard(token)

    def run(n: int) -> None:
        for _ in range(n):
            c._run(_nothing, idempotent=True)

    def record(n: int) -> None:  # a consumer's call: counted, never in flight
        clock, finish = c._operation_clock, c._record_operation
        for _ in range(n):
            finish("consume", clock())

    bare_us = cpu_us(bare)
    quiet = cpu_us(use)
    recorded = cpu_us(record)
    run_us = cpu_us(run)
    c.add_listener(Listener())
    listened = cpu_us(use)
    c.disconnect()
    print(f"{'':34} {'CPU µs/op':>10}")
    print(f"{'bare in-flight set add+discard':34} {bare_us:10.2f}")
    print(f"{'_use() block, no listener':34} {quiet:10.2f}   (accounting + counters + check)")
    print(f"{'_use() block, no-op listener':34} {listened:10.2f}   (+ clock reads and 2 calls)")
    print(f"{'_run(), first attempt succeeds':34} {run_us:10.2f}   (no retry loop)")
    print(f"events+stats over the bare registration, no listener: {quiet - bare_us:.2f} µs/op")
    hook = hook_us()
    print(f"{'propagation hook check (tracing off)':34} {hook:10.3f}   (HTTP and Kafka send paths)")
    print(f"{'consumer call recorded, no listener':34} {recorded:10.2f}   (Kafka poll/consume)")
    total = max(quiet - bare_us + hook, recorded)
    verdict = "within" if total <= BUDGET_US else "OVER"
    print(
        f"events+stats per operation, no listener: {total:.2f} µs, {verdict} the "
        f"{BUDGET_US:g} µs budget (the whole _use() block: {quiet + hook:.2f} µs)"
    )
    if total > BUDGET_US:
        sys.exit(1)


def _nothing(handle: object) -> None:
    return None


def hook_us() -> float:
    """The send paths' ``if observability.propagator is not None`` with tracing off."""
    from dictamesh_connectors import observability

    def check(n: int) -> None:
        for _ in range(n):
            if observability.propagator is not None:
                raise AssertionError("tracing is on")

    def empty(n: int) -> None:
        for _ in range(n):
            pass

    return max(0.0, cpu_us(check) - cpu_us(empty))


if __name__ == "__main__":
    main()
