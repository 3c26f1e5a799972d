"""The producer side: one librdkafka producer per connector, its delivery thread, futures.

``ProducerHandle`` is the connector's handle: the ``confluent_kafka.Producer``
shared by every thread, a daemon thread that serves its delivery reports
(``poll()``), so no caller ever polls, and, on demand, an ``AdminClient``.
Each ``produce()`` returns a ``concurrent.futures.Future`` that the delivery
thread resolves with ``RecordMetadata`` or fails with a translated
``ConnectorError``; no delivery callback runs under the connector lock.

``ProducerHandle.close()`` is where "nothing is lost" is kept: it flushes
up to its timeout, then purges what is left so that every pending future
fails with a classified error (TIMEOUT; ``maybe_applied`` for in-flight
ones), and returns how many that was.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import itertools
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import ConnectorError, ErrorCode, ErrorRule, RetryHint, build_error
from dictamesh_connectors.kafka.config import KafkaConfig
from dictamesh_connectors.kafka.errors import (
    QUEUE_FULL,
    classify,
    from_kafka_error,
)
from dictamesh_connectors.observability_pools import parse_librdkafka_stats

if TYPE_CHECKING:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")
    AdminClient = require("confluent_kafka.admin", extra="kafka", connector="kafka").AdminClient

__all__ = ["BatchResult", "ProducerHandle", "RecordMetadata", "check_topic", "encode_headers"]

logger = logging.getLogger(__name__)

CONNECTOR = "kafka"
_POLL_INTERVAL = 0.1
_QUIET = 0.02
# Producer.flush() is only ever called for this long at a time. confluent-kafka
# splits a flush of 200 ms or more into chunks, and once librdkafka has failed
# fatally (a fenced transactional producer) it sets a Python exception after
# one chunk and runs the next chunk's delivery callbacks with it pending: the
# first callback dies with "SystemError: ... returned a result with an
# exception set", flush() raises that SystemError, and the record's delivery
# report is lost (its future never resolves). One short call raises the fatal
# error cleanly (a KafkaException) and leaves the reports to poll().
_FLUSH_SLICE = 0.1
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
# Kafka's own rule for topic names (kafka.common.internals.Topic).
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_known_topics: set[str] = set()  # names already checked (a set add/lookup is atomic)
_MAX_INT32 = 2**31 - 1
_MAX_INT64 = 2**63 - 1

# Handles inherited from a parent process: never destroyed in the child
# (rd_kafka_destroy would wait for threads that do not exist here).
_orphans: list[Any] = []


class RecordMetadata(NamedTuple):
    """Where the broker stored a record: what a ``produce()`` future resolves to."""

    topic: str
    partition: int
    offset: int
    timestamp: int | None
    """Milliseconds since the epoch (create or log-append time), if known."""


# RecordMetadata(...) without the NamedTuple __new__ frame: once per record.
_metadata = functools.partial(tuple.__new__, RecordMetadata)


class BatchResult(NamedTuple):
    """What a ``produce_many()`` future resolves to."""

    delivered: int
    """How many records the brokers acknowledged."""
    failed: list[tuple[int, ConnectorError]]
    """``(index in the batch, error)`` for each record that was not delivered."""


def _bad_request(message: str) -> ConnectorError:
    return build_error(f"{CONNECTOR}: {message}", _BAD_REQUEST, connector=CONNECTOR)


def check_topic(topic: object) -> str:
    """Return ``topic`` if it is a legal Kafka topic name.

    Raises:
        TypeError: ``topic`` is not a ``str``.
        ConnectorError: INVALID_REQUEST: not a legal name (1-249 of ``[A-Za-z0-9._-]``).
    """
    if type(topic) is str and topic in _known_topics:
        return topic
    if not isinstance(topic, str):
        raise TypeError(f"a topic name must be a str, got {type(topic).__name__}")
    if not _TOPIC.match(topic) or topic in (".", ".."):
        raise _bad_request(f"{topic!r:.60} is not a legal topic name (1-249 of [A-Za-z0-9._-])")
    if len(_known_topics) < 100_000:
        _known_topics.add(topic)
    return topic


def check_partition(partition: object) -> int | None:
    """Return ``partition`` (an int in 0..2**31-1) or ``None`` (the partitioner picks)."""
    if partition is None:
        return None
    if isinstance(partition, bool) or not isinstance(partition, int):
        raise TypeError(f"partition must be an int, got {type(partition).__name__}")
    if not 0 <= partition <= _MAX_INT32:
        raise _bad_request(f"partition {partition} is out of range (0..{_MAX_INT32})")
    return partition


def check_timestamp(timestamp: object) -> int:
    """Return a record timestamp in milliseconds since the epoch (0 = now)."""
    if timestamp is None:
        return 0
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError(f"timestamp must be an int (milliseconds), got {type(timestamp).__name__}")
    if not 0 <= timestamp <= _MAX_INT64:
        raise _bad_request("timestamp is out of range (0..2**63-1 milliseconds)")
    return timestamp


def encode_headers(
    headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
) -> list[tuple[str, str | bytes | None]] | None:
    """Headers as librdkafka takes them: ``(str, bytes | None)`` pairs.

    ``str`` values are UTF-8 encoded. Keys repeat when given as pairs.

    Raises:
        TypeError: A key that is not ``str``, a value not ``bytes``/``str``/``None``.
        ConnectorError: SERIALIZATION_ERROR: a key or value not encodable as UTF-8.
    """
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, str | bytes | None]] = []
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise TypeError("headers must be a mapping or (key, value) pairs") from None
        if not isinstance(key, str):
            raise TypeError(f"a header key must be a str, got {type(key).__name__}")
        try:
            key.encode("utf-8")
            if isinstance(value, str):
                value = value.encode("utf-8")
        except UnicodeEncodeError:
            raise build_error(
                f"{CONNECTOR}: a header is not encodable as UTF-8",
                ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE),
                connector=CONNECTOR,
            ) from None
        if value is not None and not isinstance(value, bytes):
            if isinstance(value, (bytearray, memoryview)):
                value = bytes(value)
            else:
                raise TypeError(
                    f"a header value must be bytes, str or None, got {type(value).__name__}"
                )
        out.append((key, value))
    return out


librdkafka_logger = logging.getLogger("dictamesh_connectors.kafka.librdkafka")
"""Where librdkafka's own log lines go (served by the delivery thread's poll())."""


def _weak_callback(method: Any) -> Any:
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> None:
        target = ref()
        if target is not None:
            target(*args)

    return call


def _as_bytes(data: Any) -> Any:
    """A record's key or value as its delivery report gives it back (``str`` is UTF-8)."""
    return data.encode("utf-8") if type(data) is str else data


class Batch:
    """Counts the delivery reports of one ``produce_many()`` and resolves its future.

    Every record of the batch has the same callback, ``report`` (one bound
    method: no object per record, which would cost more than librdkafka's
    own work). A failed record's report carries its key and value, and
    those name its index: the lowest index of a record with those bytes not
    already named. Records with equal keys and values are interchangeable,
    and within a partition librdkafka reports them in the order produced.

    Reports of one batch may be served by several threads at once (the
    producing threads serve inline, the delivery thread when they are
    quiet), yet success reports take no lock: ``next()`` on an
    ``itertools.count`` is one atomic call under the GIL, and the report
    that draws the last number resolves the future. Naming a failed record
    takes the batch's own lock (never held across I/O or user code).
    """

    __slots__ = (
        "_last",
        "_lock",
        "_named",
        "_reported",
        "_unnamed",
        "_where",
        "failed",
        "future",
        "messages",
        "size",
    )

    def __init__(self, size: int) -> None:
        self.future: concurrent.futures.Future[BatchResult] = concurrent.futures.Future()
        self.future.set_running_or_notify_cancel()
        self.size = size
        self.failed: list[tuple[int, ConnectorError]] = []
        # The ``size`` messages as librdkafka's produce_batch() takes them,
        # each with ``report`` as its callback: set by the caller.
        self.messages: list[dict[str, Any]] = []
        self._named: set[int] = set()  # indexes already in failed
        self._unnamed: dict[tuple[Any, Any], collections.deque[int]] | None = None
        self._where: dict[int, int] | None = None  # id(message) -> index, for refused()
        self._lock = _fork.create_lock()  # a child forked mid-report gets it unlocked
        self._reported = itertools.count(1).__next__  # draws 1, 2, ... size
        self._last = size
        if size == 0:
            self._finish()

    def report(self, err: Any, msg: Any) -> None:
        """One delivery report (on whichever thread serves ``poll()``)."""
        if err is not None:
            with self._lock:
                index = self._name(_as_bytes(msg.key()), _as_bytes(msg.value()))
            self._failed(index, err, msg.topic())
        if self._reported() == self._last:
            self._finish()

    def _failed(self, index: int, err: Any, topic: str) -> None:
        error = from_kafka_error(err, operation=f"produce to {topic}", write=True, topic=topic)
        self.failed.append((index, error))

    def _name(self, key: Any, value: Any) -> int:
        """The index of a failed record with these bytes (under ``_lock``)."""
        if self._unnamed is None:
            unnamed: dict[tuple[Any, Any], collections.deque[int]] = {}
            for index, message in enumerate(self.messages):
                if index not in self._named:
                    pair = (_as_bytes(message.get("key")), _as_bytes(message["value"]))
                    unnamed.setdefault(pair, collections.deque()).append(index)
            self._unnamed = unnamed
        indexes = self._unnamed.get((key, value))
        while indexes:
            index = indexes.popleft()
            if index not in self._named:
                self._named.add(index)
                return index
        # Not a record of this batch as given (cannot happen): the lowest unnamed.
        index = min(set(range(self.size)) - self._named, default=0)
        self._named.add(index)
        return index

    def refused(self, message: dict[str, Any], err: Any, topic: str) -> None:
        """librdkafka refused ``message`` (one of the batch's) at once, for good."""
        with self._lock:
            if self._where is None:  # built once: a batch may be refused whole
                self._where = {id(m): i for i, m in enumerate(self.messages)}
            index = self._where[id(message)]
            self._named.add(index)
        self._failed(index, err, topic)
        if self._reported() == self._last:
            self._finish()

    def fail_unqueued(self, indexes: list[int], error: ConnectorError) -> None:
        """The records at ``indexes`` were never queued: count them failed."""
        with self._lock:
            self._named.update(indexes)
        self.failed.extend([(i, error) for i in indexes])  # one call: atomic
        last = False
        for _ in indexes:
            last = self._reported() == self._last or last
        if last:
            self._finish()

    def _finish(self) -> None:
        # Each message holds ``report`` (so this batch): break that cycle, and
        # the batch and its messages go as soon as nothing else holds them.
        self.messages = []
        self._unnamed = self._where = None
        failed = sorted(self.failed, key=lambda pair: pair[0])
        self.future.set_result(BatchResult(self.size - len(failed), failed))


class ProducerHandle:
    """The connector's handle: producer, delivery thread, and a lazy admin client.

    Thread safety: ``producer`` is librdkafka's thread-safe producer; the
    delivery thread is the only regular poller. ``admin()`` creates the
    admin client once, under its own small lock.
    """

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config
        self.target = config.target
        conf = config.producer_conf()
        # Weak: the producer holds its callbacks, and must not keep this
        # handle (and so itself) alive in a reference cycle.
        conf["error_cb"] = _weak_callback(self._on_error)
        conf["logger"] = librdkafka_logger
        # Pool numbers for stats(): librdkafka's statistics, every 5 s unless
        # producer_options says otherwise ("statistics.interval.ms": 0 turns them off).
        conf.setdefault("statistics.interval.ms", 5000)
        conf["stats_cb"] = _weak_callback(self._on_stats)
        self.stats: dict[str, Any] | None = None  # the latest, replaced whole
        # librdkafka's local queue holds this many records at most.
        self.queue_limit = max(int(conf.get("queue.buffering.max.messages", 100_000)), 1)
        with _translate_config(config):
            self.producer = confluent_kafka.Producer(conf)
        self.last_error: ConnectorError | None = None  # the latest error_cb report
        self.fatal: ConnectorError | None = None  # set once the producer failed fatally
        self.in_transaction = False
        # A transaction begun and not yet committed or aborted for sure (an
        # abort or a commit that failed leaves it so): see close().
        self.txn_unsettled = False
        self.closed = False
        # Bumped whenever produce() serves reports inline (a racy += is fine:
        # any change means "producers are active", and it never goes back).
        self.activity = 0
        self._stop = threading.Event()
        self._admin: AdminClient | None = None  # guarded by _admin_lock
        self._admin_lock = _fork.create_lock()
        self._thread = threading.Thread(
            target=self._serve, name="dictamesh-kafka-delivery", daemon=True
        )

    # ---------------------------------------------------------- the poll loop

    def start(self) -> None:
        self._thread.start()

    @property
    def delivery_thread(self) -> threading.Thread:
        return self._thread

    def _serve(self) -> None:
        # Serves the reports nobody else serves: while threads are producing,
        # produce() serves them inline (poll(0), no thread switch per
        # record); this thread takes over once they are quiet for _QUIET.
        stop = self._stop
        seen = -1
        while not stop.is_set():
            activity = self.activity
            if activity != seen:  # produce() served inline meanwhile
                seen = activity
                stop.wait(_QUIET)
                continue
            self.serve(_QUIET)

    def serve(self, timeout: float) -> None:
        """Serve delivery reports for up to ``timeout`` seconds (any thread, no lock held)."""
        try:
            self.producer.poll(timeout)
        except confluent_kafka.KafkaException as exc:
            error = classify(exc, operation="poll", target=self.target)
            if error is not None and error.retry_hint is RetryHint.RECONNECT:
                self.fatal = error
            logger.warning("kafka: producer on %s: %s", self.target, error)
            self._stop.wait(_POLL_INTERVAL)
        except RuntimeError:
            pass  # closed by disconnect() meanwhile: its close() serves the rest
        except Exception:  # a delivery callback of the user's raised
            logger.exception("kafka: a delivery callback raised")

    def _on_error(self, error: Any) -> None:
        # librdkafka's informational errors (it reconnects by itself); they
        # tell connect() why no broker answered (e.g. SASL refused).
        translated = from_kafka_error(error, operation="client", target=self.target)
        self.last_error = translated
        if bool(error.fatal()):
            self.fatal = translated
        logger.warning("%s", translated.message)

    def _on_stats(self, payload: str) -> None:
        # Served by poll(); a bad document keeps the last one.
        try:
            self.stats = parse_librdkafka_stats(payload)
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.debug("kafka: unreadable statistics from librdkafka", exc_info=True)

    def flush(self, timeout: float | None) -> int:
        """``flush_producer(self.producer, timeout)``."""
        return flush_producer(self.producer, timeout)

    def _drain(self, deadline: float) -> int:
        """Serve delivery reports until none is pending or ``deadline``; return how many are.

        A fatally failed producer refuses ``flush()`` (it raises the fatal
        error at once); its reports are still served, by ``poll()``.
        """
        producer = self.producer
        while True:
            left = min(_FLUSH_SLICE, max(0.0, deadline - time.monotonic()))
            try:
                remaining = int(producer.flush(left))
            except confluent_kafka.KafkaException:
                producer.poll(left)
                remaining = len(producer)
            if remaining == 0 or time.monotonic() >= deadline:
                return remaining

    # ----------------------------------------------------------------- admin

    def admin(self) -> AdminClient:
        with self._admin_lock:  # _admin: built once
            if self._admin is None:
                with _translate_config(self.config):
                    self._admin = AdminClient(self.config.admin_conf())
            return self._admin

    # ----------------------------------------------------------------- close

    def close(self, timeout: float) -> int:
        """Deliver what is queued (up to ``timeout``), fail the rest; return how many failed."""
        self.closed = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        producer = self.producer
        deadline = time.monotonic() + timeout
        if self.in_transaction or self.txn_unsettled:
            try:
                producer.abort_transaction(max(0.1, timeout))
                self.txn_unsettled = False
            except confluent_kafka.KafkaException as exc:
                error = classify(exc, operation="abort_transaction", target=self.target)
                logger.warning(
                    "kafka: aborting the open transaction failed: %s",
                    error.message if error is not None else exc,
                )
        remaining = 0
        try:
            remaining = self._drain(deadline)
            if remaining:
                # Every message still queued or in flight gets its delivery
                # report now (_PURGE_QUEUE / _PURGE_INFLIGHT): no silent drop.
                producer.purge(in_queue=True, in_flight=True, blocking=True)
                self._drain(time.monotonic() + 5.0)
        except confluent_kafka.KafkaException as exc:
            error = classify(exc, operation="close", target=self.target)
            logger.warning(
                "kafka: closing the producer on %s: %s",
                self.target,
                error.message if error is not None else exc,
            )
        except Exception:
            logger.exception("kafka: a delivery callback raised while closing")
        finally:
            if self.txn_unsettled:
                # confluent-kafka's close() aborts the transaction again with
                # no time limit: while no broker answers it never returns. The
                # handle is destroyed without it instead (when the last
                # reference goes, at once here; rd_kafka_destroy does not wait
                # for the transaction), and the broker aborts the transaction
                # after transaction_timeout.
                logger.warning(
                    "kafka: closing the producer on %s with its transaction not settled; "
                    "the broker aborts it after transaction_timeout",
                    self.target,
                )
                self.producer = _CLOSED
                del producer
            else:
                # Destroys the librdkafka handle now (its threads and sockets),
                # not whenever the garbage collector gets to it.
                try:
                    producer.close()
                except Exception:
                    logger.debug("kafka: producer.close() failed", exc_info=True)
            admin, self._admin = self._admin, None
            del admin
        return remaining

    def orphan(self) -> None:
        """In a forked child: keep the parent's handles alive, unused, forever."""
        self.closed = True
        _orphans.append((self.producer, self._admin))


def flush_producer(producer: Any, timeout: float | None) -> int:
    """``producer.flush()`` in short slices (see ``_FLUSH_SLICE``); ``None``: no limit.

    Returns:
        How many records still await their delivery report.

    Raises:
        confluent_kafka.KafkaException: librdkafka failed fatally (fenced).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if deadline is None:
            left = _FLUSH_SLICE
        else:
            left = min(_FLUSH_SLICE, max(0.0, deadline - time.monotonic()))
        remaining = int(producer.flush(left))
        if remaining == 0 or (deadline is not None and time.monotonic() >= deadline):
            return remaining


class _ClosedProducer:
    """Stands in for a producer destroyed without ``close()``: every call is refused."""

    def __getattr__(self, name: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("Producer has been closed")

        return refused

    def __len__(self) -> int:
        return 0


_CLOSED: Any = _ClosedProducer()


class _translate_config:
    """librdkafka refusing settings at handle creation -> InvalidConfigError."""

    __slots__ = ("config",)

    def __init__(self, config: KafkaConfig) -> None:
        self.config = config

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, confluent_kafka.KafkaException):
            error = classify(exc, operation="create client", target=self.config.target)
            if error is not None:
                raise error from None


def produce_one(
    handle: ProducerHandle,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, str | bytes | None]] | None,
    partition: int | None,
    timestamp: int,
    callback: Any,
    timeout: float,
) -> None:
    """Queue one record; wait for room while the local queue is full (back-pressure).

    Raises:
        ConnectorError: RESOURCE_EXHAUSTED when the queue stayed full for
            ``timeout`` seconds; a translated error when librdkafka refused
            the record at once (too large, unknown partition, fatal state).
    """
    producer = handle.producer
    deadline = 0.0
    pause = 0.0005
    while True:
        try:
            if partition is None and headers is None and not timestamp:
                # The common case, all positional (partition -1: the
                # partitioner; the fifth is the callback): confluent-kafka's
                # keyword parsing cost about 0.3 us per record.
                producer.produce(topic, value, key, -1, callback)
            elif partition is None:
                producer.produce(
                    topic, value, key, on_delivery=callback, timestamp=timestamp, headers=headers
                )
            else:
                producer.produce(
                    topic,
                    value,
                    key,
                    partition=partition,
                    on_delivery=callback,
                    timestamp=timestamp,
                    headers=headers,
                )
            break
        except BufferError:
            now = time.monotonic()
            if not deadline:
                deadline = now + timeout
            if now >= deadline or handle.closed:
                raise build_error(
                    f"{CONNECTOR}: produce to {topic} on {handle.target}: the local queue "
                    f"stayed full for {timeout:g}s (queue.buffering.max.messages/kbytes)",
                    QUEUE_FULL,
                    connector=CONNECTOR,
                    details={"kafka_code": "_QUEUE_FULL", "topic": topic},
                ) from None
            # Room comes back as delivery reports are served: serve them
            # while waiting (the delivery thread is quiet while we produce).
            handle.activity += 1
            handle.serve(min(pause, deadline - now))
            pause = min(pause * 2, 0.02)
        except confluent_kafka.KafkaException as exc:
            error = classify(
                exc, operation=f"produce to {topic}", target=handle.target, write=True, topic=topic
            )
            if error is not None and error.retry_hint is RetryHint.RECONNECT:
                handle.fatal = error  # fenced or fatal: rebuilt on next use
            if error is not None and error.details.get("kafka_code") == "_STATE":
                error = _explain_state(handle, error)
            raise error from exc  # type: ignore[misc]
        except RuntimeError as exc:  # "Producer has been closed": disconnect() won a race
            error = classify(exc, operation=f"produce to {topic}", target=handle.target)
            if error is None:
                raise
            raise error from None
    if not handle.closed:
        handle.activity += 1
        handle.serve(0)


def _explain_state(handle: ProducerHandle, error: ConnectorError) -> ConnectorError:
    """librdkafka's bare "Erroneous state", said in our words where we know why."""
    if handle.config.transactional_id is None:
        return error
    return build_error(
        f"{error.message} (a transactional producer produces only inside transaction(); "
        "after its producer was fenced and rebuilt, the old transaction is gone: start a new one)",
        (error.code, error.transient, error.retry_hint),
        connector=CONNECTOR,
        details=error.details,
    )


# Makes a DeliveryFuture's Condition once, for whichever waiter comes first
# (memory only, held for a few instructions; the delivery thread never takes it).
_condition_lock = _fork.create_lock()
_FINISHED = concurrent.futures._base.FINISHED
_RUNNING = concurrent.futures._base.RUNNING


class DeliveryFuture(concurrent.futures.Future[RecordMetadata]):
    """A ``concurrent.futures.Future`` for one record, cheap to make and to resolve.

    It starts RUNNING (the record is on its way: it cannot be cancelled) and
    makes its ``threading.Condition`` (and the waiter and callback lists that
    only matter once someone waits) only when someone first waits on it or
    adds a callback: most futures of a busy producer are never waited on
    one by one, and those are most of what a plain Future costs. Until then
    its state lives in class defaults, so making one is a bare allocation.
    It is its own delivery callback (``on_delivery=future``): librdkafka
    calls it with ``(err, msg)``. It is a real ``Future``: ``result()``,
    ``exception()``, ``add_done_callback()``, ``concurrent.futures.wait()``
    and ``as_completed()`` work as usual.
    """

    # Future.__init__'s instance state, as defaults until first assigned.
    # _waiters and _done_callbacks are made with the Condition: every use of
    # them in concurrent.futures goes through _condition first.
    _cond: threading.Condition | None = None
    _state = _RUNNING
    _exception: BaseException | None = None
    # The delivery report's numbers, kept as plain attributes: the
    # RecordMetadata is built when first read (most futures of a bulk load
    # are dropped unread), and a held future is one object for the garbage
    # collector to track, not two.
    _made: RecordMetadata | None = None
    _topic: str | None = None
    _partition = 0
    _offset = 0
    _timestamp: int | None = None

    def __init__(self) -> None:  # Future.__init__ would make the Condition now
        pass

    @property
    def _result(self) -> RecordMetadata | None:  # what Future's methods read
        made = self._made
        if made is None and self._topic is not None:
            # Racing first readers each build an equal one: harmless.
            made = self._made = _metadata(
                (self._topic, self._partition, self._offset, self._timestamp)
            )
        return made

    @_result.setter
    def _result(self, value: RecordMetadata | None) -> None:
        self._made = value

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._cond
        if cond is None:
            with _condition_lock:  # _cond: made once, by whoever comes first
                if self._cond is None:
                    self._waiters: list[Any] = []
                    self._done_callbacks: list[Any] = []
                    # Forkable: a child gets it back unlocked, without waiters.
                    self._cond = _fork.create_condition()
                cond = self._cond
        return cond

    def __call__(self, err: Any, msg: Any) -> None:
        """The record's delivery report (on whichever thread serves ``poll()``, no lock held)."""
        if err is not None:
            topic = msg.topic() if msg is not None else None
            self.set_exception(
                from_kafka_error(err, operation=f"produce to {topic}", write=True, topic=topic)
            )
            return
        self._topic = msg.topic()
        self._partition = msg.partition()
        self._offset = msg.offset()
        self._timestamp = msg.timestamp()[1] or None
        # Finished first, the Condition read second (see _finish): under the
        # GIL a waiter either made its Condition before that read (and is
        # woken below) or checks the state after it (and sees FINISHED).
        self._state = _FINISHED
        if self._cond is not None:
            self._wake()

    def set_result(self, result: RecordMetadata) -> None:
        self._finish()
        self._result = result
        self._state = _FINISHED
        if self._cond is not None:
            self._wake()

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish()
        self._exception = exception
        self._state = _FINISHED
        if self._cond is not None:
            self._wake()

    def _finish(self) -> None:
        """Refuse a second resolution, as ``Future`` does.

        A delivery future is resolved by exactly one delivery report, on
        the thread serving ``poll()``; no lock orders it against waiters.
        Resolving sets the result and FINISHED *first* and reads ``_cond``
        *second*; a waiter makes ``_cond`` *first* and checks the state
        (under it) *second*. So either the waiter sees FINISHED, or the
        resolver sees the Condition and wakes everyone through it.
        """
        if self._state == _FINISHED:
            raise concurrent.futures.InvalidStateError(f"{self._state}: {self!r}")

    def _wake(self) -> None:
        """Someone waits or added a callback: wake them as ``Future.set_result`` does."""
        with self._condition:
            for waiter in self._waiters:
                if self._exception is None:
                    waiter.add_result(self)
                else:
                    waiter.add_exception(self)
            self._condition.notify_all()
        self._invoke_callbacks()  # type: ignore[attr-defined]

    def result(self, timeout: float | None = None) -> RecordMetadata:
        if self._state == _FINISHED and self._exception is None:
            return self._result  # type: ignore[return-value]  # final: read without a lock
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state == _FINISHED:
            return self._exception
        return super().exception(timeout)

    def done(self) -> bool:
        return self._state == _FINISHED


# DeliveryFuture() without running an __init__: once per record.
new_future: Callable[[], DeliveryFuture] = functools.partial(object.__new__, DeliveryFuture)
"""A future that a caller cannot cancel (the record is already on its way)."""


def produce_batch(
    handle: ProducerHandle,
    topic: str,
    batch: Batch,
    partition: int | None,
    timeout: float,
) -> None:
    """Queue ``batch``'s messages with one call into librdkafka; wait for room as ``produce_one``.

    Records librdkafka refuses for good are counted failed by ``batch``;
    records refused because the queue is full are retried after a pause,
    until ``timeout``.

    Raises:
        ConnectorError: RESOURCE_EXHAUSTED when the queue stayed full; the
            records still unqueued keep an ``_error`` key.
    """
    producer = handle.producer
    pending = batch.messages
    deadline = 0.0
    while True:
        handle.activity += 1  # producers are active: the delivery thread stays off
        try:
            with translate_produce(handle, topic):
                if partition is None:
                    queued = producer.produce_batch(topic, pending)
                else:
                    queued = producer.produce_batch(topic, pending, partition=partition)
        except BufferError:
            pass  # nothing queued: every one is retried below
        except ConnectorError:
            for message in pending:
                message["_error"] = True  # not queued
            raise
        else:
            refused = [m for m in pending if "_error" in m] if queued != len(pending) else []
            pending = []
            for message in refused:
                error = message["_error"]
                name = error.name() if isinstance(error, confluent_kafka.KafkaError) else ""
                if name == "_QUEUE_FULL":
                    del message["_error"]
                    pending.append(message)
                else:
                    message.pop("_error")
                    batch.refused(message, error, topic)
        handle.activity += 1
        handle.serve(0)
        if not pending:
            return
        for message in pending:
            message["_error"] = True  # until queued
        now = time.monotonic()
        if not deadline:
            deadline = now + timeout
        if now >= deadline or handle.closed:
            raise build_error(
                f"{CONNECTOR}: produce to {topic} on {handle.target}: the local queue "
                f"stayed full for {timeout:g}s (queue.buffering.max.messages/kbytes)",
                QUEUE_FULL,
                connector=CONNECTOR,
                details={"kafka_code": "_QUEUE_FULL", "topic": topic},
            )
        # Serving reports is what makes room. Wait until there is room for
        # what is left (or for half the queue): offered again too soon,
        # librdkafka would refuse most of them again, each refusal costing
        # as much as queueing.
        room_at = handle.queue_limit - min(len(pending), handle.queue_limit // 2)
        while True:
            handle.activity += 1
            handle.serve(min(0.005, deadline - now))
            now = time.monotonic()
            if handle.closed or now >= deadline or _queued(producer) <= room_at:
                break
        for message in pending:
            del message["_error"]


def _queued(producer: Any) -> int:
    """Records in librdkafka's queue (0 once the producer was closed meanwhile)."""
    try:
        return len(producer)
    except RuntimeError:
        return 0


class translate_produce:
    """librdkafka refusing a produce call at once -> ConnectorError (``RuntimeError``
    after ``close()`` included)."""

    __slots__ = ("handle", "topic")

    def __init__(self, handle: ProducerHandle, topic: str) -> None:
        self.handle = handle
        self.topic = topic

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if isinstance(exc, (confluent_kafka.KafkaException, RuntimeError, SystemError)):
            error = classify(
                exc,
                operation=f"produce to {self.topic}",
                target=self.handle.target,
                write=True,
                topic=self.topic,
            )
            if error is not None:
                if error.retry_hint is RetryHint.RECONNECT:
                    self.handle.fatal = error  # fenced or fatal: rebuilt on next use
                raise error from exc if isinstance(exc, confluent_kafka.KafkaException) else None
