"""Cost of the base class's events and stats per operation (no server needed).

Prints client CPU µs per operation (time.thread_time) of one ``_use()``
block (the in-flight accounting every verb runs through, counters included)
with no listener, with a no-op listener subscribed, and of the bare
lock round trip it is built on, so the events' own cost can be read off.

    python benchmarks/observability_bench.py
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dictamesh_connectors.observability import Listener
from tests.unit.fakes import FakeConfig, FakeConnector

N = 200_000


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

    lock = threading.RLock()

    def bare(n: int) -> None:  # the two lock round trips of acquire/release
        for _ in range(n):
            with lock:
                pass
            with lock:
                pass

    bare_us = cpu_us(bare)
    quiet = cpu_us(use)
    c.add_listener(Listener())
    listened = cpu_us(use)
    c.disconnect()
    print(f"{'':34} {'CPU µs/op':>10}")
    print(f"{'two bare RLock round trips':34} {bare_us:10.2f}")
    print(f"{'_use() block, no listener':34} {quiet:10.2f}   (accounting + counters + check)")
    print(f"{'_use() block, no-op listener':34} {listened:10.2f}   (+ clock reads and 2 calls)")
    print(f"events+stats over bare locking, no listener: {quiet - bare_us:.2f} µs/op")


if __name__ == "__main__":
    main()
