"""Prometheus metrics of connectors (extra ``prometheus``).

``ConnectorCollector`` is both a listener (it counts operations, errors,
retries and durations as they happen) and a ``prometheus_client``
collector (at each scrape it adds each watched connector's ``stats()``:
pool gauges, operations in flight, whether it is connected).

===============================================  ===========  ========================
metric                                           type         labels
===============================================  ===========  ========================
``dictamesh_connector_operations_total``         counter      connector, operation
``dictamesh_connector_errors_total``             counter      connector, operation, code
``dictamesh_connector_retries_total``            counter      connector, operation
``dictamesh_connector_operation_duration_seconds``  histogram  connector, operation
``dictamesh_connector_in_flight``                gauge        connector
``dictamesh_connector_up``                       gauge        connector
``dictamesh_connector_pool_{in_use,idle,waiting,size,max}``  gauge  connector
===============================================  ===========  ========================

Label sets are bounded: ``connector`` is the name given to ``watch()``;
``operation`` is the verb (an HTTP operation is its method alone, never
its URL) and at most ``max_operations`` distinct ones per connector are
kept (the rest count as ``"other"``); ``code`` is an ``ErrorCode`` value.

Example::

    from prometheus_client import REGISTRY, start_http_server
    from dictamesh_connectors.observability_prometheus import ConnectorCollector

    collector = ConnectorCollector(REGISTRY)
    collector.watch(db, "orders-db")
    collector.watch(api, "crm-api")
    start_http_server(9464)
"""

from __future__ import annotations

import bisect
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require
from dictamesh_connectors.observability import Listener

if TYPE_CHECKING:
    from prometheus_client import metrics_core
    from prometheus_client.registry import CollectorRegistry

    from dictamesh_connectors.errors import ConnectorError
else:
    metrics_core = require(
        "prometheus_client.metrics_core", extra="prometheus", connector="prometheus"
    )

__all__ = ["DEFAULT_BUCKETS", "ConnectorCollector"]

DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Duration buckets in seconds: sub-millisecond local calls to slow remote ones."""

_POOL_KEYS = ("in_use", "idle", "waiting", "size", "max")
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})
_OTHER = "other"


class _Series:
    """One (connector, operation) histogram and counters; guarded by the collector's lock."""

    __slots__ = ("buckets", "count", "retries", "sum")

    def __init__(self, n_buckets: int) -> None:
        self.count = 0
        self.sum = 0.0
        self.retries = 0
        self.buckets = [0] * (n_buckets + 1)  # the last one is +Inf


class ConnectorCollector(Listener):
    """Counts what watched connectors do and exposes it, with their pools, to Prometheus.

    Thread safety: events arrive from every thread; one small lock guards
    the counters (held for a few additions, never across I/O). ``collect``
    reads ``stats()``, which does no I/O.

    Args:
        registry: Where to register (``None``: don't; call
            ``registry.register(collector)`` yourself).
        buckets: Histogram upper bounds in seconds, increasing.
        max_operations: Distinct operation labels kept per connector.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        max_operations: int = 64,
    ) -> None:
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)):
            raise ValueError("buckets must be increasing and not empty")
        self._bounds = bounds
        self._max_operations = max_operations
        self._lock = _fork.create_lock()
        # connector -> its label; weak: a connector dropped by the app goes away
        self._names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._series: dict[tuple[str, str], _Series] = {}  # guarded by _lock
        self._operations: dict[str, set[str]] = {}  # label -> operations seen; guarded by _lock
        self._errors: dict[tuple[str, str, str], int] = {}  # guarded by _lock
        if registry is not None:
            registry.register(self)

    # --------------------------------------------------------------- watching

    def watch(self, connector: Any, name: str | None = None) -> None:
        """Count ``connector``'s operations under the label ``name`` (default: its kind)."""
        with self._lock:  # names
            self._names[connector] = name or connector.name
        connector.add_listener(self)

    def unwatch(self, connector: Any) -> None:
        """Stop counting ``connector`` (its counted series stay exposed)."""
        connector.remove_listener(self)
        with self._lock:  # names
            self._names.pop(connector, None)

    # ----------------------------------------------------------------- events

    def _label(self, connector: Any, operation: str) -> tuple[str, str] | None:
        """(connector, operation) labels, bounded; call with the lock held."""
        name = self._names.get(connector)
        if name is None:
            return None
        verb = operation.partition(" ")[0]
        if verb in _HTTP_METHODS:
            operation = verb
        seen = self._operations.setdefault(name, set())
        if operation not in seen:
            if len(seen) >= self._max_operations:
                operation = _OTHER
            else:
                seen.add(operation)
        return name, operation

    def on_operation(
        self, connector: Any, operation: str, duration: float, error: ConnectorError | None
    ) -> None:
        """Count the operation and its duration (and its error code)."""
        index = bisect.bisect_left(self._bounds, duration)
        with self._lock:  # counters
            key = self._label(connector, operation)
            if key is None:
                return
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self._bounds))
            series.count += 1
            series.sum += duration
            series.buckets[index] += 1
            if error is not None:
                ekey = (*key, error.code.value)
                self._errors[ekey] = self._errors.get(ekey, 0) + 1

    def on_retry(
        self, connector: Any, operation: str, attempt: int, wait: float, error: ConnectorError
    ) -> None:
        """Count a retry of ``operation``."""
        with self._lock:  # counters
            key = self._label(connector, operation)
            if key is None:
                return
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self._bounds))
            series.retries += 1

    # ------------------------------------------------------------- collecting

    def collect(self) -> Iterator[Any]:
        """The metric families (``prometheus_client`` calls this at each scrape)."""
        with self._lock:  # a consistent copy of the counters
            series = {
                key: (s.count, s.sum, s.retries, list(s.buckets)) for key, s in self._series.items()
            }
            errors = dict(self._errors)
            watched = list(self._names.items())
        ops = metrics_core.CounterMetricFamily(
            "dictamesh_connector_operations",
            "Operations ended (every attempt counts).",
            labels=["connector", "operation"],
        )
        retries = metrics_core.CounterMetricFamily(
            "dictamesh_connector_retries",
            "Waits made by the retry loop before another attempt.",
            labels=["connector", "operation"],
        )
        durations = metrics_core.HistogramMetricFamily(
            "dictamesh_connector_operation_duration_seconds",
            "Duration of operations, in seconds.",
            labels=["connector", "operation"],
        )
        for (name, operation), (count, total, retried, counts) in sorted(series.items()):
            ops.add_metric([name, operation], count)
            retries.add_metric([name, operation], retried)
            cumulative, running = [], 0
            for bound, n in zip((*self._bounds, float("inf")), counts, strict=True):
                running += n
                cumulative.append((_bound(bound), running))
            durations.add_metric([name, operation], cumulative, total)
        errs = metrics_core.CounterMetricFamily(
            "dictamesh_connector_errors",
            "Operations that raised a ConnectorError, by error code.",
            labels=["connector", "operation", "code"],
        )
        for labels, count in sorted(errors.items()):
            errs.add_metric(list(labels), count)
        yield from (ops, errs, retries, durations)
        in_flight = metrics_core.GaugeMetricFamily(
            "dictamesh_connector_in_flight", "Operations running now.", labels=["connector"]
        )
        up = metrics_core.GaugeMetricFamily(
            "dictamesh_connector_up", "1 while the connector is connected.", labels=["connector"]
        )
        pools = {
            key: metrics_core.GaugeMetricFamily(
                f"dictamesh_connector_pool_{key}",
                f"The driver pool's {key.replace('_', ' ')} (connections; Kafka: see docs).",
                labels=["connector"],
            )
            for key in _POOL_KEYS
        }
        for connector, name in sorted(watched, key=lambda item: item[1]):
            stats = connector.stats()
            in_flight.add_metric([name], stats.in_flight)
            up.add_metric([name], 1 if connector.is_connected else 0)
            for key, family in pools.items():
                value = stats.pool.get(key)
                if isinstance(value, (int, float)):
                    family.add_metric([name], value)
        yield from (in_flight, up, *pools.values())

    def describe(self) -> list[Any]:
        """No fixed description: the registry then calls ``collect`` to learn the names."""
        return []


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)
