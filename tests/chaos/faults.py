"""The seeded fault schedule and the injectors that play it.

``plan(seed, total, proxies=...)`` is a pure function: the same seed and
options give the same list of faults, in the same order, with the same
parameters and waits (its ``digest`` is printed, so a replay can be seen to
be the same schedule). Each backend's faults are played in order by one
injector thread; the four injectors run side by side, so faults on
different servers overlap while the workload runs. Only the timing of the
workload against the schedule varies between runs.

Fault kinds:

==========================  ========================================================
``pg_terminate_backend``    ``pg_terminate_backend()`` on 1-4 workload backends
``pg_sigkill``              SIGKILL to the postmaster and every backend; restart
``mongo_failpoint``         a ``failCommand`` fail point (closeConnection, a
                            retryable error with its label, a blocked
                            connection, a plain error) for the workload's appName
``mongo_sigkill``           SIGKILL the SecantusDB daemon; restart on the same data
``kafka_broker_restart``    SIGKILL (or SIGTERM) the broker; start it again
``http_server_fault``       the next 1-3 POSTs answered 503, 500 after applying,
                            or dropped before / after applying
``http_server_restart``     the HTTP server stops listening, then starts again
``proxy_reset``             every proxied connection reset (RST)
``proxy_blackhole``         the proxy accepts and forwards nothing, for a while
``proxy_latency``           added latency with jitter, for a while
``proxy_refuse``            new connections refused, for a while
``proxy_half_open``         the server end of every connection vanishes; the
                            client's stays open and is never answered
==========================  ========================================================
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import random
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

BACKENDS = ("postgresql", "mongodb", "kafka", "http")

# Share of the faults each backend gets.
_BACKEND_SHARE = {"postgresql": 0.3, "mongodb": 0.3, "kafka": 0.15, "http": 0.25}

# Cheap faults per backend (weight), and the proxy ones added when a proxy
# sits in front of the backend.
_CHEAP = {
    "postgresql": {"pg_terminate_backend": 4},
    "mongodb": {"mongo_failpoint": 5},
    "kafka": {},
    "http": {"http_server_fault": 5},
}
_PROXY = {
    "proxy_reset": 3,
    "proxy_blackhole": 1,
    "proxy_latency": 2,
    "proxy_refuse": 1,
    "proxy_half_open": 1,
}

# Heavy faults: one per this many faults of the backend (at least one).
_HEAVY = {
    "postgresql": ("pg_sigkill", 40),
    "mongodb": ("mongo_sigkill", 40),
    "kafka": ("kafka_broker_restart", 30),
    "http": ("http_server_restart", 30),
}


@dataclass(frozen=True)
class Fault:
    backend: str
    kind: str
    hold: float  # seconds the fault stays on (or the server stays down)
    gap: float  # seconds of calm after it
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Schedule:
    seed: int
    faults: dict[str, list[Fault]]

    @property
    def total(self) -> int:
        return sum(len(v) for v in self.faults.values())

    @property
    def digest(self) -> str:
        text = json.dumps(
            {b: [asdict(f) for f in fs] for b, fs in sorted(self.faults.items())},
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def by_kind(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((f.backend, f.kind) for fs in self.faults.values() for f in fs)


def _mongo_failpoint(rng: random.Random) -> dict[str, Any]:
    commands = rng.choice([["insert"], ["update"], ["find"], ["insert", "update"]])
    variant = rng.choice(["close", "close", "retryable", "block", "error"])
    data: dict[str, Any] = {"failCommands": commands}
    if variant == "close":
        data["closeConnection"] = True
    elif variant == "retryable":
        data["errorCode"] = rng.choice([91, 11600, 10107, 189])
        data["errorLabels"] = ["RetryableWriteError"]
    elif variant == "block":
        data["blockConnection"] = True
        data["blockTimeMS"] = rng.choice([100, 300, 800])
    else:
        data["errorCode"] = rng.choice([2, 8000])  # BadValue, AtlasError: no retry
    return {"variant": variant, "times": rng.choice([1, 1, 2, 3]), "data": data}


def _params(kind: str, rng: random.Random) -> tuple[float, dict[str, Any]]:
    """(hold, params) for one fault of ``kind``."""
    if kind == "pg_terminate_backend":
        return 0.0, {"count": rng.randint(1, 4)}
    if kind == "pg_sigkill":
        return rng.uniform(0.2, 2.0), {}
    if kind == "mongo_failpoint":
        return rng.uniform(0.1, 0.8), _mongo_failpoint(rng)
    if kind == "mongo_sigkill":
        return rng.uniform(0.2, 2.0), {}
    if kind == "kafka_broker_restart":
        return rng.uniform(0.5, 3.0), {"signal": rng.choice(["KILL", "KILL", "TERM"])}
    if kind == "http_server_fault":
        faults = ["503", "500_after_apply", "drop_before_apply", "drop_after_apply"]
        return 0.0, {"arm": [rng.choice(faults) for _ in range(rng.randint(1, 3))]}
    if kind == "http_server_restart":
        return rng.uniform(0.1, 1.0), {}
    if kind == "proxy_reset":
        return 0.0, {}
    if kind == "proxy_blackhole":
        return rng.uniform(0.2, 1.5), {}
    if kind == "proxy_latency":
        return rng.uniform(0.3, 1.5), {
            "latency": rng.choice([0.02, 0.05, 0.2]),
            "jitter": rng.choice([0.0, 0.01, 0.05]),
        }
    if kind == "proxy_refuse":
        return rng.uniform(0.2, 1.0), {}
    if kind == "proxy_half_open":
        return rng.uniform(0.1, 0.5), {}
    raise ValueError(f"unknown fault kind {kind!r}")


def plan(seed: int, total: int, *, proxies: Sequence[str] = (), gap: float = 0.4) -> Schedule:
    """The fault schedule for ``seed``: ``total`` faults spread over the backends.

    ``proxies`` names the backends with a fault proxy in front (they also
    get proxy faults). ``gap`` is the mean calm between two faults of one
    backend. Pure: no clock, no I/O, only ``random.Random(seed)``.
    """
    rng = random.Random(seed)
    counts = {b: int(total * _BACKEND_SHARE[b]) for b in BACKENDS}
    counts["postgresql"] += total - sum(counts.values())
    faults: dict[str, list[Fault]] = {}
    for backend in BACKENDS:
        n = counts[backend]
        heavy_kind, every = _HEAVY[backend]
        heavy = max(1, n // every)
        cheap = dict(_CHEAP[backend])
        if backend in proxies:
            cheap.update(_PROXY)
        if not cheap:  # nothing cheap to inject (Kafka without a proxy): heavy ones only,
            spare, n = n - heavy, heavy  # and the rest goes to the next backends
            for other in BACKENDS[BACKENDS.index(backend) + 1 :] or ("postgresql",):
                counts[other] += spare
                break
        kinds = [heavy_kind] * heavy
        names, weights = list(cheap), list(cheap.values())
        kinds += [rng.choices(names, weights)[0] for _ in range(n - heavy)] if names else []
        rng.shuffle(kinds)
        out = []
        for kind in kinds:
            hold, params = _params(kind, rng)
            out.append(Fault(backend, kind, round(hold, 3), round(rng.uniform(0.2, 1.8) * gap, 3),
                             params))  # fmt: skip
        faults[backend] = out
    return Schedule(seed, faults)


class Injectors:
    """One thread per backend plays that backend's faults in order.

    ``actions[kind](fault)`` applies a fault and returns a callable that
    undoes it (or ``None``); the injector holds the fault for
    ``fault.hold`` seconds in between. A fault that could not be applied is
    recorded (``failures``) and counts as not injected.
    """

    def __init__(
        self,
        schedule: Schedule,
        actions: dict[str, Callable[[Fault], Callable[[], None] | None]],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.schedule = schedule
        self.actions = actions
        self.on_progress = on_progress
        self._lock = threading.Lock()
        self.injected: collections.Counter[tuple[str, str]] = collections.Counter()  # guarded
        self.failures: list[str] = []  # guarded by _lock
        # guarded by _lock: (start, end, backend, kind) of each injected fault, monotonic time
        self.timeline: list[tuple[float, float, str, str]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for backend, faults in self.schedule.faults.items():
            t = threading.Thread(
                target=self._play, args=(faults,), name=f"chaos-injector-{backend}"
            )
            self._threads.append(t)
            t.start()

    def join(self) -> None:
        for t in self._threads:
            t.join()

    def abort(self) -> None:
        """No further fault: each injector undoes the one it holds (hold cut short), then ends."""
        self._stop.set()

    def running(self) -> bool:
        """Whether an injector is still playing its part of the schedule."""
        return any(t.is_alive() for t in self._threads)

    @property
    def total_injected(self) -> int:
        with self._lock:
            return sum(self.injected.values())

    def _play(self, faults: list[Fault]) -> None:
        for fault in faults:
            if self._stop.is_set():
                return
            undo: Callable[[], None] | None = None
            began = time.monotonic()
            try:
                undo = self.actions[fault.kind](fault)
                with self._lock:
                    self.injected[(fault.backend, fault.kind)] += 1
                    done = sum(self.injected.values())
                if self.on_progress is not None:
                    self.on_progress(done)
                if fault.hold:
                    self._stop.wait(fault.hold)
            except Exception:
                with self._lock:
                    self.failures.append(f"{fault}: {traceback.format_exc()}")
            finally:
                if undo is not None:
                    try:
                        undo()
                    except Exception:
                        with self._lock:
                            self.failures.append(f"undo {fault}: {traceback.format_exc()}")
            with self._lock:
                self.timeline.append((began, time.monotonic(), fault.backend, fault.kind))
            with contextlib.suppress(Exception):
                self._stop.wait(fault.gap)
