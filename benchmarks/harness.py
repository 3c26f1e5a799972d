"""What every benchmark shares: many threads calling one operation for a fixed time.

The benchmarks are scripts (``python benchmarks/x_bench.py``); this module
sits beside them, so they import it as ``harness``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def run_threads(
    op: Callable[[int], Any], threads: int, seconds: float, *, named: bool = False
) -> float:
    """Call op(i) in a loop from ``threads`` threads for ``seconds``; return ops/s."""
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        start.wait()
        i = 0
        try:
            while not stop.is_set():
                op(i)
                i += 1
        except BaseException as exc:  # surface failures, never hide them in a figure
            errors.append(exc)
        counts[n] = i

    pool = [
        threading.Thread(target=worker, args=(n,), name=str(n) if named else None)
        for n in range(threads)
    ]
    for t in pool:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return sum(counts) / elapsed
