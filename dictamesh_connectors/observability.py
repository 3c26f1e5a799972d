"""Events and statistics of every connector: one mechanism, in the base class.

A *listener* is any object with some of the methods of ``Listener``. It is
subscribed to one connector (``connector.add_listener(l)``) or to every
connector of the process (``add_listener(l)``). The events:

==================  ==========================================================
``on_connect``      the connector opened its handle (pool, client, producer)
``on_disconnect``   ``disconnect()`` finished
``on_operation``    an operation ended: its name, duration in seconds, and the
                    ``ConnectorError`` it raised (``None`` when it succeeded)
``on_retry``        the retry loop is about to wait and try again
``on_error``        an operation raised a ``ConnectorError``
==================  ==========================================================

Rules the base class keeps:

* no listener ever runs under the connector lock;
* a listener that raises is logged (WARNING, with its traceback) and never
  breaks the operation;
* with no listener subscribed, an operation pays no clock reads and no
  calls: the cost is one check of two tuples.

``connector.stats()`` returns a ``Stats`` snapshot: operations, errors by
code, retries, operations in flight, and the driver pool's own numbers.

Example::

    class Slow(Listener):
        def on_operation(self, connector, operation, duration, error):
            if duration > 0.5:
                print(f"{connector.name} {operation} took {duration:.2f}s")

    connector.add_listener(Slow())
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from dictamesh_connectors import _fork

if TYPE_CHECKING:
    from dictamesh_connectors.errors import ConnectorError

__all__ = [
    "Listener",
    "Operation",
    "Stats",
    "add_listener",
    "global_listeners",
    "propagator",
    "remove_listener",
    "responded",
]

logger = logging.getLogger(__name__)


class Listener:
    """The events a listener may receive; every method here does nothing.

    Subclass it and override what you need (or write any object with some of
    these methods). Listeners are called from the thread that ran the
    operation, outside every connector lock; keep them fast.
    """

    def on_connect(self, connector: Any) -> None:
        """``connector`` opened its handle."""

    def on_disconnect(self, connector: Any) -> None:
        """``connector.disconnect()`` finished."""

    def on_operation(
        self, connector: Any, operation: str, duration: float, error: ConnectorError | None
    ) -> None:
        """An operation ended after ``duration`` seconds; ``error`` if it failed."""

    def on_retry(
        self, connector: Any, operation: str, attempt: int, wait: float, error: ConnectorError
    ) -> None:
        """Attempt ``attempt`` of ``operation`` failed with ``error``; retrying in ``wait`` s."""

    def on_error(self, connector: Any, operation: str, error: ConnectorError) -> None:
        """``operation`` raised ``error``."""


class Operation(str):
    """An operation's name (``"find_one"``) that also tells what it acts on.

    Listeners receive it as the ``operation`` of ``on_operation`` and
    ``on_error`` when the connector knows the operation's target: it *is*
    the name (a ``str``, equal to and hashed as the plain name, so counters
    and labels keyed by it are unchanged), with ``target`` added. The
    MongoDB connector sets ``target`` to the collection of each collection
    verb, and to the command's name for ``execute``; the PostgreSQL
    connector to the statement's verb (``"SELECT"``), when it is one
    statement. It is never a filter, a document, a statement's text or a
    value. Built only when a listener is subscribed.

    The Kafka consumer's operations (``poll``, ``consume``, ``commit``,
    ``process``: see docs/observability.md) carry the topic as ``target``
    (``""`` when a batch spans several topics), the consumer group as
    ``group`` and, for ``poll``/``consume``, the number of records returned
    as ``count``.

    Attributes:
        target: The collection (or command name, or topic) the operation acts on.
        group: The Kafka consumer group, or ``None``.
        records: Records a Kafka ``poll``/``consume`` returned, or ``None``.
    """

    target: str
    group: str | None = None
    records: int | None = None

    def __new__(
        cls, name: str, target: str, *, group: str | None = None, records: int | None = None
    ) -> Operation:
        """``Operation("find_one", "users")``: the name, carrying ``target``."""
        self = super().__new__(cls, name)
        self.target = target
        if group is not None:
            self.group = group
        if records is not None:
            self.records = records
        return self


@attrs.frozen
class Stats:
    """A snapshot of one connector's counters (``connector.stats()``).

    Attributes:
        operations: Operations ended since the connector was created.
        errors: ``ConnectorError`` count by code value (``"TIMEOUT"`` ...).
        retries: Waits made by the retry loop.
        in_flight: Operations running now.
        pool: The driver pool's own numbers (``in_use``, ``idle``,
            ``waiting``, ``size``, ... where the driver tells them).
    """

    operations: int
    errors: Mapping[str, int]
    retries: int
    in_flight: int
    pool: Mapping[str, Any]


# Copy-on-write tuple: readers on the hot path need no lock.
_global: tuple[Any, ...] = ()

propagator: Callable[[Any, str, Any], Any] | None = None
"""The trace-context hook of the send paths; ``None`` unless tracing is on.

``observability_otel.instrument()`` sets it. The HTTP connector calls
``headers = propagator(connector, "METHOD url", headers)`` on each request it
sends and the Kafka connector ``pairs = propagator(connector, "produce",
pairs)`` on each message: it returns the headers with W3C ``traceparent``
added (a new dict, or a new list of ``(str, bytes)`` pairs). With tracing
off, the send path pays one attribute check.

The Kafka consumer's ``run()`` calls it the other way, with an
``Operation("process", topic)`` and a consumed record's headers: the hook
takes the trace context out of them and starts the record's ``process``
span (ended by the operation's ``on_operation`` event).
"""

responded: Callable[[Any, int], None] | None = None
"""The HTTP connector's response hook; ``None`` unless tracing is on.

``observability_otel.instrument()`` sets it (with ``propagator``): the HTTP
connector calls ``responded(connector, status)`` when a request's response
headers arrive, so the request's span gets ``http.response.status_code``.
"""
_global_lock = _fork.create_lock()


def add_listener(listener: Any) -> None:
    """Subscribe ``listener`` to the events of every connector in this process."""
    global _global
    with _global_lock:
        if listener not in _global:
            _global = (*_global, listener)


def remove_listener(listener: Any) -> None:
    """Unsubscribe a global listener (no error if it was not subscribed)."""
    global _global
    with _global_lock:
        _global = tuple(item for item in _global if item is not listener)


def global_listeners() -> tuple[Any, ...]:
    """The listeners subscribed to every connector."""
    return _global


def notify(listeners: tuple[Any, ...], event: str, *args: Any) -> None:
    """Call ``event`` on each listener that has it; log, never raise, what they raise."""
    for listener in (*listeners, *_global):
        method = getattr(listener, event, None)
        if method is None:
            continue
        try:
            method(*args)
        except Exception:
            logger.warning("listener %r failed in %s", listener, event, exc_info=True)
