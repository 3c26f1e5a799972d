"""The consumer side: ``KafkaConsumer`` (thread-confined) and its at-least-once loop.

A librdkafka consumer must be used from one thread; ``KafkaConsumer``
enforces it (a call from another thread, or from a forked child, is a clear
error instead of a crash). Offsets are never committed automatically: the
caller commits (``commit()``), or ``run()`` commits what its handler
finished, after each batch, before a rebalance takes partitions away, and
once more when it stops.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

from dictamesh_connectors import _fork, observability
from dictamesh_connectors._compat import require
from dictamesh_connectors._convert import MAX_TIMEOUT, check_timeout
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
    build_error,
)
from dictamesh_connectors.kafka.config import _options
from dictamesh_connectors.kafka.errors import classify, from_kafka_error, translate
from dictamesh_connectors.kafka.producer import (
    _orphans,
    _weak_callback,
    check_partition,
    check_topic,
    librdkafka_logger,
)
from dictamesh_connectors.kafka.serde import deserializer_for
from dictamesh_connectors.retry import RetryPolicy, retry_call

if TYPE_CHECKING:
    import confluent_kafka

    from dictamesh_connectors.kafka.connector import KafkaConnector
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")

__all__ = ["KafkaConsumer", "KafkaMessage", "MessageBatch", "RunResult"]

logger = logging.getLogger(__name__)

CONNECTOR = "kafka"
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_HANDLER_FAILED = ErrorRule(ErrorCode.EXEC_FAILED, False, RetryHint.NONE)
_PARTITION_EOF = -191  # KafkaError._PARTITION_EOF: not an error
_NO_TIMESTAMP = 0  # confluent_kafka.TIMESTAMP_NOT_AVAILABLE
_CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME
_MAX_ERROR_TEXT = 1000
_PER_CONSUMER = {
    "isolation.level": frozenset({"read_committed", "read_uncommitted"}),
    "auto.offset.reset": frozenset({"earliest", "latest", "error"}),
}

ERROR_CODE_HEADER = "dictamesh.error.code"
"""Dead-letter header: the ``ErrorCode`` (or exception type) that made the record poison."""
ERROR_MESSAGE_HEADER = "dictamesh.error.message"
ERROR_TYPE_HEADER = "dictamesh.error.type"
ORIGIN_HEADERS = (
    "dictamesh.original.topic",
    "dictamesh.original.partition",
    "dictamesh.original.offset",
)


class KafkaMessage:
    """One consumed record, as plain data.

    Attributes (read-only):
        topic, partition, offset: Where it is.
        key, value: Deserialized with the connector's deserializers.
        headers: ``(name, bytes | None)`` pairs, in order (names may repeat).
        timestamp: Milliseconds since the epoch, or ``None``.

    A consumed message reads its fields from librdkafka's record when they
    are asked for (no copy of fields the handler never looks at); one made
    with the constructor holds them itself. Both compare, print and pickle
    alike.
    """

    __slots__ = ("_key", "_raw", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: Any,
        value: Any,
        headers: list[tuple[str, bytes | None]],
        timestamp: int | None,
    ) -> None:
        self._raw: Any = _Detached(topic, partition, offset, headers, timestamp)
        self._key = key
        self._value = value

    @property
    def topic(self) -> str:
        """The topic the record was read from."""
        return self._raw.topic()  # type: ignore[no-any-return]

    @property
    def partition(self) -> int:
        """The record's partition."""
        return self._raw.partition()  # type: ignore[no-any-return]

    @property
    def offset(self) -> int:
        """The record's offset in its partition."""
        return self._raw.offset()  # type: ignore[no-any-return]

    @property
    def key(self) -> Any:
        """The key, deserialized (bytes, or ``None``, without a deserializer)."""
        return self._key

    @property
    def value(self) -> Any:
        """The value, deserialized (bytes, or ``None`` for a tombstone, without one)."""
        return self._value

    @property
    def headers(self) -> list[tuple[str, bytes | None]]:
        """The headers as ``(name, bytes | None)`` pairs, in order (a new list each time)."""
        return list(self._raw.headers() or ())

    @property
    def timestamp(self) -> int | None:
        """Milliseconds since the epoch, or ``None`` when the record has none."""
        kind, ts = self._raw.timestamp()
        return ts if kind != _NO_TIMESTAMP else None

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (``None`` if absent)."""
        for key, value in reversed(self._raw.headers() or ()):
            if key == name:
                return value  # type: ignore[no-any-return]
        return None

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.topic,
            self.partition,
            self.offset,
            self.key,
            self.value,
            self.headers,
            self.timestamp,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KafkaMessage):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (KafkaMessage, self._fields())

    def __repr__(self) -> str:
        # The payload may be anything (personal data included): not shown.
        return f"<KafkaMessage {self.topic}[{self.partition}]@{self.offset}>"


_new_message = KafkaMessage.__new__


def _wrap(raw: Any, key: Any, value: Any) -> KafkaMessage:
    """A KafkaMessage over librdkafka's record ``raw``, with its key and value decoded."""
    message = _new_message(KafkaMessage)
    message._raw = raw
    message._key = key
    message._value = value
    return message


class _Record(KafkaMessage):
    """A KafkaMessage whose key and value are the record's bytes (no deserializer)."""

    __slots__ = ()

    @property
    def key(self) -> Any:
        """The key's bytes, or ``None``."""
        return self._raw.key()

    @property
    def value(self) -> Any:
        """The value's bytes, or ``None`` for a tombstone."""
        return self._raw.value()


class _Detached:
    """The fields of a constructed KafkaMessage, with librdkafka's ``Message`` getters."""

    __slots__ = ("_headers", "_offset", "_partition", "_timestamp", "_topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        headers: list[tuple[str, bytes | None]],
        timestamp: int | None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._headers = list(headers)
        self._timestamp = timestamp

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def headers(self) -> list[tuple[str, bytes | None]]:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        ts = self._timestamp
        return (_NO_TIMESTAMP, 0) if ts is None else (_CREATE_TIME, ts)


def _record_of(raw: Any) -> KafkaMessage:
    record = _new_message(_Record)
    record._raw = raw
    return record


class MessageBatch(Sequence[KafkaMessage]):
    """The records of one ``KafkaConsumer.consume_batch()``, in order.

    A sequence of ``KafkaMessage`` (made when you index or iterate), plus
    ``values`` and ``keys``: columns read from librdkafka's records in one
    pass each, the cheap way to handle many small records.

    Example::

        batch = consumer.consume_batch(10_000, timeout=1.0)
        rows = [json.loads(v) for v in batch.values]
        consumer.commit()
    """

    __slots__ = ("_messages", "_raws")

    def __init__(self, messages: Sequence[KafkaMessage] = ()) -> None:
        self._raws: list[Any] | None = None
        self._messages: list[KafkaMessage] | None = list(messages)

    @classmethod
    def _of_records(cls, raws: list[Any]) -> MessageBatch:
        """Over librdkafka's records themselves (no deserializer, no error among them)."""
        batch = cls.__new__(cls)
        batch._raws = raws
        batch._messages = None
        return batch

    def _column(self, name: str) -> list[Any]:
        raws = self._raws
        if raws is None:
            return [getattr(m, name) for m in self._messages or ()]
        if not raws:
            return []
        # The getter of the records' own type (librdkafka's Message: a C
        # method descriptor), mapped in C: no Python frame per record.
        return list(map(getattr(type(raws[0]), name), raws))

    @property
    def values(self) -> list[Any]:
        """Every record's value, deserialized, in order (a new list each time)."""
        return self._column("value")

    @property
    def keys(self) -> list[Any]:
        """Every record's key, deserialized, in order (a new list each time)."""
        return self._column("key")

    def __len__(self) -> int:
        raws = self._raws
        return len(raws) if raws is not None else len(self._messages or ())

    def __iter__(self) -> Iterator[KafkaMessage]:
        raws = self._raws
        if raws is not None:
            return map(_record_of, raws)
        return iter(self._messages or ())

    def __getitem__(self, index: Any) -> Any:
        raws = self._raws
        if raws is None:
            return (self._messages or [])[index]
        if isinstance(index, slice):
            return [_record_of(raw) for raw in raws[index]]
        return _record_of(raws[index])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageBatch):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (MessageBatch, ([KafkaMessage(*m._fields()) for m in self],))

    def __repr__(self) -> str:
        return f"<MessageBatch of {len(self)} records>"


_NO_RECORDS = MessageBatch()


class RunResult(NamedTuple):
    """What ``KafkaConsumer.run()`` did before it stopped."""

    processed: int
    """Records whose handling finished (dead-lettered ones included)."""
    dead_lettered: int
    """Records sent to the dead-letter topic."""
    commits: int
    """Offset commits made."""


class _Stopped(BaseException):
    """Raised inside run() when the stop event fires during a retry wait."""


def _bad_request(message: str) -> ConnectorError:
    return build_error(f"{CONNECTOR}: {message}", _BAD_REQUEST, connector=CONNECTOR)


def _check_max_messages(max_messages: object) -> None:
    if isinstance(max_messages, bool) or not isinstance(max_messages, int):
        raise TypeError("max_messages must be an int")
    if not 1 <= max_messages <= 1_000_000:
        raise _bad_request("max_messages must be in 1..1000000")


def _check_topics(topics: object) -> list[str]:
    if isinstance(topics, str):
        names = [topics]
    elif isinstance(topics, Sequence) and all(isinstance(t, str) for t in topics):
        names = list(topics)
    else:
        raise TypeError("topics must be a str or a sequence of str")
    if not names:
        raise _bad_request("consumer() needs at least one topic")
    for name in names:
        if name.startswith("^"):
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise _bad_request("a topic pattern is not encodable as UTF-8") from None
        else:
            check_topic(name)
    return names


def _check_group(group_id: object) -> str:
    if not isinstance(group_id, str):
        raise TypeError(f"group_id must be a str, got {type(group_id).__name__}")
    if not group_id.strip() or "\x00" in group_id:
        # librdkafka trims the group id: a blank one makes confluent-kafka
        # abort the whole process (an assertion in Consumer_init).
        raise _bad_request("group_id must be a non-blank string without NUL")
    try:
        group_id.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad_request("group_id is not encodable as UTF-8") from None
    return group_id


class KafkaConsumer:
    """A consumer-group member, confined to the thread that created it.

    Made by ``KafkaConnector.consumer()``. Every method must be called from
    the creating thread (librdkafka consumers are not thread-safe); a call
    from another thread raises INVALID_REQUEST, one from a forked child
    NOT_CONNECTED. Use it as a context manager to close it (leave the group).

    Example::

        with kafka.consumer("billing", ["orders"]) as consumer:
            consumer.run(handle_order, dead_letter_topic="orders.dlq")
    """

    def __init__(
        self,
        connector: KafkaConnector,
        group_id: str,
        topics: str | Sequence[str],
        options: Mapping[str, Any],
    ) -> None:
        group = _check_group(group_id)
        names = _check_topics(topics)
        dotted = {str(k).replace("_", "."): v for k, v in options.items()}
        # Per-consumer choices that the config only gives a default for.
        chosen = {k: dotted.pop(k) for k in _PER_CONSUMER if k in dotted}
        extra = _options(dotted)
        for key, value in chosen.items():
            if value not in _PER_CONSUMER[key]:
                raise InvalidConfigError(
                    f"kafka: {key} must be one of {', '.join(sorted(_PER_CONSUMER[key]))}",
                    connector=CONNECTOR,
                )
        self._connector = connector
        self._target = connector.config.target
        self.group_id = group
        self.topics = names
        # None: the record's bytes as they are (no call per record).
        self._key = _decoder(connector.key_deserializer)
        self._value = _decoder(connector.value_deserializer)
        conf = connector.config.consumer_conf(group)
        conf.update(extra)
        conf.update(chosen)
        conf["error_cb"] = _weak_callback(self._on_error)
        conf["logger"] = librdkafka_logger
        try:
            self._consumer = confluent_kafka.Consumer(conf)
        except confluent_kafka.KafkaException as exc:
            error = exc.args[0] if exc.args else None
            text = error.str() if isinstance(error, confluent_kafka.KafkaError) else str(exc)
            raise InvalidConfigError(
                f"kafka: librdkafka refuses the consumer settings: {' '.join(text.split())}",
                connector=CONNECTOR,
            ) from None
        self._init_state()
        with translate("subscribe", self._target):
            # Weak: no reference cycle keeps an unclosed consumer alive for
            # the garbage collector (which might run in a forked child).
            self._consumer.subscribe(
                names,
                on_assign=_rebalance_callback(self._on_assign, "assign"),
                on_revoke=_rebalance_callback(self._on_revoke, "revoke"),
                on_lost=_rebalance_callback(self._on_lost, "lost"),
            )
        _fork.register_child_reset(self)

    def _init_state(self) -> None:
        """The member's own bookkeeping, confined to the creating thread."""
        self._owner = threading.get_ident()
        self._pid = os.getpid()
        self._closed = False
        # Next offset to commit per (topic, partition) that run()'s handler
        # finished. (What poll()/consume() returned is librdkafka's own
        # application position: see _positions().)
        self._done: dict[tuple[str, int], int] = {}
        self._stashed: ConnectorError | None = None
        # Records librdkafka handed over behind an error in the same batch:
        # the error is raised first, then these are returned, in order (the
        # consumer's position is already past them: dropping them would
        # lose them, and a later commit would skip them for good).
        self._pending: deque[Any] = deque()
        # Records handed over since the last commit() of everything: without
        # any, that commit() has nothing new to say (no round trip).
        self._handed = False

    # ---------------------------------------------------------------- checks

    def _check(self) -> Any:
        if self._pid != os.getpid():
            raise NotConnectedError(
                "kafka: this consumer belongs to the parent process; create one in the child",
                connector=CONNECTOR,
            )
        if threading.get_ident() != self._owner:
            raise _bad_request(
                "a KafkaConsumer is confined to the thread that created it "
                "(librdkafka consumers are not thread-safe); create one per thread"
            )
        if self._closed:
            raise NotConnectedError("kafka: the consumer is closed", connector=CONNECTOR)
        return self._consumer

    def _after_fork_in_child(self) -> None:
        # librdkafka's threads are not in the child: the parent's consumer
        # must never be closed or destroyed here (not even by the collector).
        _orphans.append(self._consumer)

    @property
    def closed(self) -> bool:
        """True once ``close()`` ran."""
        return self._closed

    def _on_error(self, error: Any) -> None:
        logger.warning(
            "%s",
            from_kafka_error(error, operation=f"consumer {self.group_id}", target=self._target),
        )

    # ---------------------------------------------------------- observability

    def _clock(self) -> float:
        """The start of a call, for ``_record`` (0.0, no clock read, without listeners)."""
        return self._connector._operation_clock()

    def _record(
        self,
        operation: str,
        started: float,
        error: ConnectorError | None,
        topic: str = "",
        count: int | None = None,
    ) -> None:
        """Count ``operation`` in the connector's stats and tell its listeners.

        Not an in-flight operation of the connector (``disconnect()`` never
        waits for a consumer); ``started`` is 0.0 (no listener: only the
        counters) or the ``_operation_clock()`` reading.
        """
        if started:
            operation = observability.Operation(
                operation, topic, group=self.group_id, records=count
            )
        self._connector._record_operation(operation, started, error)

    # ---------------------------------------------------------------- reading

    def _message(self, raw: Any) -> KafkaMessage:
        decode_key, decode_value = self._key, self._value
        if decode_key is None and decode_value is None:
            record = _new_message(_Record)
            record._raw = raw
            return record
        try:
            key = raw.key() if decode_key is None else decode_key(raw.key())
            value = raw.value() if decode_value is None else decode_value(raw.value())
        except ConnectorError as err:
            err.details.update(
                {"topic": raw.topic(), "partition": raw.partition(), "offset": raw.offset()}
            )
            raise
        return _wrap(raw, key, value)

    def _error_of(self, raw: Any, operation: str) -> ConnectorError | None:
        err = raw.error()
        if err is None or err.code() == _PARTITION_EOF:
            return None
        return from_kafka_error(err, operation=operation, target=self._target, topic=raw.topic())

    def poll(self, timeout: float = 1.0) -> KafkaMessage | None:
        """The next record, or ``None`` when none came within ``timeout`` seconds.

        Raises:
            ConnectorError: NOT_FOUND for a subscribed topic that does not
                exist; SERIALIZATION_ERROR for a record the deserializer
                refused (``details`` say where; the position moved past it).
        """
        consumer = self._check()
        wait = check_timeout(timeout)
        started = self._clock()
        failed: ConnectorError | None = None
        raw = None
        try:
            if self._stashed is not None:
                stashed, self._stashed = self._stashed, None
                raise stashed
            if self._pending:
                raw = self._pending.popleft()
            else:
                with translate("poll", self._target):
                    raw = consumer.poll(-1 if wait is None else wait)
            if raw is None:
                return None
            self._handed = True
            error = self._error_of(raw, "poll")
            if error is not None:
                raise error
            return self._message(raw)
        except ConnectorError as err:
            failed = err
            raise
        finally:
            if started and raw is not None:
                self._record("poll", started, failed, raw.topic() or "", 0 if failed else 1)
            else:
                self._record("poll", started, failed, count=0)

    def consume(self, max_messages: int = 100, timeout: float = 1.0) -> list[KafkaMessage]:
        """Up to ``max_messages`` records, waiting at most ``timeout`` seconds.

        Raises:
            ConnectorError: As ``poll()``. An error met after some records
                is raised by the next call, so no record is lost.
        """
        consumer = self._check()
        _check_max_messages(max_messages)
        wait = check_timeout(timeout)
        started = self._clock()
        messages: list[KafkaMessage] = []
        failed: ConnectorError | None = None
        try:
            self._consume_into(messages, consumer, max_messages, wait)
        except ConnectorError as err:
            failed = err
            raise
        finally:
            topic = ""
            if started and messages:
                topics = {message.topic for message in messages}
                topic = topics.pop() if len(topics) == 1 else ""
            self._record("consume", started, failed, topic, len(messages))
        return messages

    def consume_batch(self, max_messages: int = 10_000, timeout: float = 1.0) -> MessageBatch:
        """Up to ``max_messages`` records as one ``MessageBatch`` (the cheap path).

        The same records, errors and offsets as ``consume()``: only the
        container differs. Without deserializers the batch reads
        librdkafka's records in place, and ``batch.values`` / ``batch.keys``
        are made in one pass each (no Python object per record); that is
        the path for bulk reads of small records.

        Raises:
            ConnectorError: As ``consume()``.
        """
        consumer = self._check()
        _check_max_messages(max_messages)
        wait = check_timeout(timeout)
        started = self._clock()
        batch = _NO_RECORDS
        failed: ConnectorError | None = None
        try:
            if self._stashed is not None:
                stashed, self._stashed = self._stashed, None
                raise stashed
            raws = self._fetch(consumer, max_messages, -1 if wait is None else wait)
            if (
                self._key is None
                and self._value is None
                and raws
                and not any(map(type(raws[0]).error, raws))
            ):
                batch = MessageBatch._of_records(raws)
            else:
                messages: list[KafkaMessage] = []
                self._read(messages, raws)
                batch = MessageBatch(messages)
        except ConnectorError as err:
            failed = err
            raise
        finally:
            topic = ""
            if started and len(batch):
                topics = {message.topic for message in batch}
                topic = topics.pop() if len(topics) == 1 else ""
            self._record("consume", started, failed, topic, len(batch))
        return batch

    def _consume_into(
        self, messages: list[KafkaMessage], consumer: Any, max_messages: int, wait: float | None
    ) -> None:
        if self._stashed is not None:
            stashed, self._stashed = self._stashed, None
            raise stashed
        self._read(messages, self._fetch(consumer, max_messages, -1 if wait is None else wait))

    def _read(self, messages: list[KafkaMessage], raws: list[Any]) -> None:
        """Append the records of ``raws`` to ``messages`` up to the first error.

        The error is raised when no record came before it, else kept for the
        next call; the records behind it are held back (``_pending``).
        """
        append = messages.append
        first = 0
        if self._key is None and self._value is None:
            # Bytes as they are: nothing can fail per record, and a record is
            # only wrapped (the hot path of a bulk read: no call per record).
            new = _new_message
            for raw in raws:
                if raw.error() is not None:
                    break
                record = new(_Record)
                record._raw = raw
                append(record)
            first = len(messages)
            if first == len(raws):
                return
        make = self._message
        for index in range(first, len(raws)):
            raw = raws[index]
            error: ConnectorError | None
            if raw.error() is None:
                try:
                    append(make(raw))
                    continue
                except ConnectorError as err:
                    error = err
            else:
                error = self._error_of(raw, "consume")
                if error is None:
                    continue  # partition EOF
            self._pending.extendleft(reversed(raws[index + 1 :]))
            if not messages:
                raise error
            self._stashed = error
            break

    def _fetch(self, consumer: Any, max_messages: int, wait: float) -> list[Any]:
        """The next raw records: those held back first, else librdkafka's next batch."""
        pending = self._pending
        if not pending:
            with translate("consume", self._target):
                raws: list[Any] = consumer.consume(max_messages, wait)
            if raws:
                self._handed = True
            return raws
        self._handed = True
        take = pending.popleft
        return [take() for _ in range(min(max_messages, len(pending)))]

    def _forget_pending(self, partitions: set[tuple[str, int]]) -> None:
        """Drop held-back records of ``partitions`` (revoked, lost or sought).

        Their partition's next reader starts from the committed offset (or
        the position sought), so they are read again, not lost.
        """
        if self._pending:
            self._pending = deque(
                raw for raw in self._pending if (raw.topic(), raw.partition()) not in partitions
            )

    # ---------------------------------------------------------------- offsets

    def commit(self, message: KafkaMessage | None = None, asynchronous: bool = False) -> None:
        """Commit ``message`` (its offset + 1), or everything returned so far.

        Raises:
            ConnectorError: The group coordinator refused the commit
                (CONFLICT, transient, during a rebalance).
        """
        consumer = self._check()
        if message is not None:
            if not isinstance(message, KafkaMessage):
                raise TypeError("commit() takes a KafkaMessage")
            offsets = {(message.topic, message.partition): message.offset + 1}
        else:
            if not self._handed:
                return  # nothing handed over since the last commit()
            offsets = self._positions(consumer)
        if not offsets:
            return
        started = self._clock()
        failed: ConnectorError | None = None
        try:
            with translate("commit", self._target, write=True):
                consumer.commit(offsets=_partitions(offsets), asynchronous=asynchronous)
            if message is None:
                self._handed = False
        except ConnectorError as err:
            failed = err
            raise
        finally:
            self._record("commit", started, failed, _one_topic(offsets) if started else "")

    def seek(self, topic: str, partition: int, offset: int) -> None:
        """Make the next read of an assigned partition start at ``offset``."""
        consumer = self._check()
        check_topic(topic)
        check_partition(partition)
        check_offset(offset)
        with translate("seek", self._target):
            consumer.seek(confluent_kafka.TopicPartition(topic, partition, offset))
        self._done.pop((topic, partition), None)
        self._forget_pending({(topic, partition)})
        self._handed = True  # the position moved: a commit() says where

    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs currently assigned to this member."""
        consumer = self._check()
        with translate("assignment", self._target):
            return [(tp.topic, tp.partition) for tp in consumer.assignment()]

    def lag(self, timeout: float = 5.0) -> dict[tuple[str, int], int]:
        """Records not yet read, per assigned ``(topic, partition)``.

        The distance from this member's position (or, before its first read,
        the group's committed offset) to the partition's high watermark.

        Raises:
            ConnectorError: The brokers did not answer within ``timeout``.
        """
        consumer = self._check()
        wait = check_timeout(timeout, positive=True) or MAX_TIMEOUT
        timeout = wait
        with translate("lag", self._target):
            assigned = consumer.assignment()
            positions = consumer.position(assigned)
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(assigned, timeout=timeout)
            }
            lags: dict[tuple[str, int], int] = {}
            for tp in positions:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
                position = (
                    tp.offset if tp.offset >= 0 else committed.get((tp.topic, tp.partition), -1)
                )
                lags[(tp.topic, tp.partition)] = max(0, high - (position if position >= 0 else low))
        return lags

    def _next_offsets(
        self, offsets: Iterable[KafkaMessage] | Mapping[tuple[str, int], int] | None
    ) -> list[Any]:
        consumer = self._check()
        if offsets is None:
            return _partitions(self._positions(consumer))
        if isinstance(offsets, Mapping):
            checked: dict[tuple[str, int], int] = {}
            for key, offset in offsets.items():
                if not isinstance(key, tuple) or len(key) != 2:
                    raise TypeError("offsets keys must be (topic, partition) pairs")
                check_topic(key[0])
                check_partition(key[1])
                checked[(key[0], key[1])] = check_offset(offset)
            return _partitions(checked)
        latest: dict[tuple[str, int], int] = {}
        for message in offsets:
            if not isinstance(message, KafkaMessage):
                raise TypeError(
                    "offsets must be KafkaMessages or a {(topic, partition): offset} map"
                )
            key = (message.topic, message.partition)
            latest[key] = max(latest.get(key, 0), message.offset + 1)
        return _partitions(latest)

    def _positions(self, consumer: Any) -> dict[tuple[str, int], int]:
        """The next offset of each assigned partition past every record returned.

        librdkafka's application position moves past each record it hands
        over (not per record here: nothing to do on the hot path), so also
        past those held back behind an error (``_pending``), which are not
        returned yet: for their partitions it is the first one held back.
        """
        with translate("position", self._target):
            found = {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.position(consumer.assignment())
                if tp.offset >= 0
            }
        for raw in self._pending:
            key = (raw.topic(), raw.partition())
            if raw.error() is None and key in found:
                found[key] = min(found[key], raw.offset())
        return found

    def _group_metadata(self) -> Any:
        consumer = self._check()
        with translate("consumer_group_metadata", self._target):
            return consumer.consumer_group_metadata()

    # -------------------------------------------------------------- rebalance

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        logger.debug("kafka: %s assigned %d partition(s)", self.group_id, len(partitions))

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        # Commit what the handler finished on these partitions before another
        # member takes them over; whatever was not finished is redelivered.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        offsets = {k: v for k, v in self._done.items() if k in revoked}
        for key in revoked:
            self._done.pop(key, None)
        self._forget_pending(revoked)
        if offsets:
            try:
                consumer.commit(offsets=_partitions(offsets), asynchronous=False)
            except confluent_kafka.KafkaException as exc:
                error = classify(exc, operation="commit", target=self._target, write=True)
                logger.warning(
                    "kafka: %s: commit before revocation failed (records are redelivered): %s",
                    self.group_id,
                    error.message if error is not None else exc,
                )

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        # Lost, not revoked: the group moved on; a commit would be refused.
        for tp in partitions:
            self._done.pop((tp.topic, tp.partition), None)
        self._forget_pending({(tp.topic, tp.partition) for tp in partitions})

    # ---------------------------------------------------------------- the loop

    def run(
        self,
        handler: Callable[[KafkaMessage], object],
        *,
        stop_event: threading.Event | None = None,
        dead_letter_topic: str | None = None,
        max_messages: int = 100,
        poll_timeout: float = 0.5,
        retry: RetryPolicy | None = None,
        handle_sigterm: bool = True,
    ) -> RunResult:
        """Call ``handler`` on every record, at least once, until stopped; then close.

        * Offsets are committed only after the handler returned (after each
          batch, before a rebalance revokes partitions, and at the end).
        * A transient ``ConnectorError`` from the handler is retried with
          ``retry``'s backoff (default: the config's policy); when retries
          run out it propagates, after committing what finished, so the
          record is redelivered later.
        * Any other exception makes the record poison: with
          ``dead_letter_topic`` the raw record goes there (headers
          ``dictamesh.error.code``, ``.type``, ``.message`` and
          ``dictamesh.original.topic/partition/offset`` added) and the loop
          goes on; without it, the error propagates (as above). A record the
          deserializer refuses is poison too.
        * ``stop_event`` or, when running in the main thread with
          ``handle_sigterm``, SIGTERM stops it cleanly: the record in hand
          finishes (a retry wait is cut short, that record is redelivered),
          the final commit is made, and the consumer leaves the group.

        Returns:
            ``RunResult(processed, dead_lettered, commits)``.

        Raises:
            ConnectorError: From the handler or the brokers, as above.
        """
        consumer = self._check()
        if not callable(handler):
            raise TypeError("handler must be callable")
        _check_max_messages(max_messages)
        poll_wait = check_timeout(poll_timeout, name="poll_timeout", positive=True) or 1.0
        if dead_letter_topic is not None:
            check_topic(dead_letter_topic)
        policy = retry or self._connector.config.retry
        stop = stop_event if stop_event is not None else threading.Event()
        previous = _install_sigterm(stop) if handle_sigterm else None
        processed = dead = commits = 0

        def wait(seconds: float) -> None:
            if stop.wait(seconds):
                raise _Stopped

        clock = self._clock
        run_started = clock()
        failed: ConnectorError | None = None
        try:
            if self._stashed is not None:
                # An error an earlier consume() met behind the records it
                # returned: treated as if met here (the records held back
                # behind it are handled next).
                stashed, self._stashed = self._stashed, None
                if not stashed.transient:
                    raise stashed
                logger.warning("%s", stashed.message)
            while not stop.is_set():
                started = clock()
                try:
                    raws = self._fetch(consumer, max_messages, poll_wait)
                except ConnectorError as err:
                    self._record("consume", started, err, count=0)
                    raise
                if started:
                    topics = {raw.topic() for raw in raws if raw.error() is None}
                    self._record(
                        "consume",
                        started,
                        None,
                        topics.pop() if len(topics) == 1 else "",
                        sum(1 for raw in raws if raw.error() is None),
                    )
                else:
                    self._record("consume", 0.0, None)
                for raw in raws:
                    if stop.is_set():
                        break  # not handled, not committed: redelivered
                    error = self._error_of(raw, "consume")
                    if error is not None:
                        if error.transient:
                            logger.warning("%s", error.message)
                            continue
                        raise error
                    if raw.error() is not None:
                        continue  # partition EOF
                    dead += self._handle(raw, handler, policy, dead_letter_topic, wait)
                    self._done[(raw.topic(), raw.partition())] = raw.offset() + 1
                    processed += 1
                if self._done:
                    commits += self._commit_done(consumer)
        except _Stopped:
            pass
        except ConnectorError as err:
            failed = err
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            try:
                if self._done:
                    commits += self._commit_done(consumer)
            except ConnectorError as err:
                failed = failed or err
                raise
            finally:
                self.close()
                self._record("run", run_started, failed, _one_topic_of(self.topics))
        return RunResult(processed, dead, commits)

    def _commit_done(self, consumer: Any) -> int:
        """Commit what the handler finished; 1 when committed, 0 when a rebalance refused it.

        A commit refused with a transient error (the group's generation
        moved on, a rebalance is in progress) loses nothing: the offsets
        stay pending, and the next commit, the revoke callback or the final
        commit makes them. Records are redelivered only when their partition
        moved to another member before any of those succeeded (at-least-once).

        Raises:
            ConnectorError: A permanent refusal.
        """
        offsets, self._done = self._done, {}
        started = self._clock()
        try:
            with translate("commit", self._target, write=True):
                consumer.commit(offsets=_partitions(offsets), asynchronous=False)
        except ConnectorError as err:
            self._record("commit", started, err, _one_topic(offsets) if started else "")
            if not err.transient:
                raise
            for key, offset in offsets.items():
                self._done[key] = max(offset, self._done.get(key, 0))
            logger.warning(
                "kafka: %s: commit refused while the group rebalances (%s); it is retried",
                self.group_id,
                err.code.value,
            )
            return 0
        self._record("commit", started, None, _one_topic(offsets) if started else "")
        return 1

    def _handle(
        self,
        raw: Any,
        handler: Callable[[KafkaMessage], object],
        policy: RetryPolicy,
        dead_letter_topic: str | None,
        wait: Callable[[float], None],
    ) -> int:
        """Handle one record; return 1 if it went to the dead-letter topic.

        One ``process`` operation of the connector (its span, while traced,
        continues the producer's trace: ``observability.propagator`` is
        handed the record's headers, from which it takes the traceparent).
        """
        started = self._clock()
        topic = raw.topic()
        hook = observability.propagator
        if hook is not None and started:
            hook(
                self._connector,
                observability.Operation("process", topic, group=self.group_id),
                raw.headers() or [],
            )
        failed: ConnectorError | None = None
        try:
            message = self._message(raw)
            retry_call(
                lambda: handler(message),
                policy,
                idempotent=True,
                description=f"kafka: handler for {topic}[{raw.partition()}]@{raw.offset()}",
                sleep=wait,
                # A retry of the connector's: stats().retries and on_retry.
                on_retry=lambda n, pause, err: self._connector._note_retry(
                    "process", n, pause, err
                ),
            )
            return 0
        except ConnectorError as err:
            failed = err
            if err.transient:
                raise
            return self._dead_letter(raw, err, dead_letter_topic)
        except Exception as exc:
            failed = self._handler_failed(raw, exc)
            return self._dead_letter(raw, exc, dead_letter_topic)
        finally:
            self._record("process", started, failed, topic)

    def _handler_failed(self, raw: Any, exc: Exception) -> ConnectorError:
        """The EXEC_FAILED error of a handler that raised ``exc`` (not a ConnectorError)."""
        where = f"{raw.topic()}[{raw.partition()}]@{raw.offset()}"
        error = build_error(
            f"{CONNECTOR}: the handler failed on {where}: {type(exc).__name__}",
            _HANDLER_FAILED,
            connector=CONNECTOR,
            details={"topic": raw.topic(), "partition": raw.partition(), "offset": raw.offset()},
        )
        error.__cause__ = exc
        return error

    def _dead_letter(self, raw: Any, exc: Exception, topic: str | None) -> int:
        where = f"{raw.topic()}[{raw.partition()}]@{raw.offset()}"
        if topic is None:
            if isinstance(exc, ConnectorError):
                raise exc
            raise self._handler_failed(raw, exc) from exc
        code = exc.code.value if isinstance(exc, ConnectorError) else type(exc).__name__
        text = str(exc)[:_MAX_ERROR_TEXT].encode("utf-8", "replace")
        headers: list[tuple[str, str | bytes | None]] = list(raw.headers() or [])
        headers += [
            (ERROR_CODE_HEADER, code.encode("utf-8", "replace")),
            (ERROR_TYPE_HEADER, type(exc).__name__.encode("utf-8", "replace")),
            (ERROR_MESSAGE_HEADER, text),
            (ORIGIN_HEADERS[0], raw.topic().encode("utf-8")),
            (ORIGIN_HEADERS[1], str(raw.partition()).encode()),
            (ORIGIN_HEADERS[2], str(raw.offset()).encode()),
        ]
        # Delivered before the offset is committed: a crash here redelivers.
        self._connector._produce_raw_sync(topic, raw.value(), raw.key(), headers)
        logger.warning("kafka: %s sent to dead-letter topic %s (%s)", where, topic, code)
        return 1

    # ---------------------------------------------------------------- closing

    def close(self) -> None:
        """Leave the group and release the consumer. Idempotent.

        Offsets are not committed here: commit first (``run()`` does).
        """
        if self._closed:
            return
        if self._pid != os.getpid():
            self._closed = True  # the parent's: never touched in the child
            return
        consumer = self._check()
        self._closed = True
        # Closing revokes the assignment: the rebalance callbacks run in
        # here (guarded, see _rebalance_callback). Whatever still goes wrong
        # is logged, translated: the consumer is closed all the same
        # (confluent-kafka destroys the handle before it raises).
        try:
            consumer.close()
        except Exception as exc:
            error = classify(exc, operation=f"close consumer {self.group_id}", target=self._target)
            if error is not None:
                logger.warning("%s", error.message)
            else:
                logger.warning(
                    "kafka: closing consumer %s: %s raised (the consumer is closed)",
                    self.group_id,
                    type(exc).__name__,
                    exc_info=True,
                )

    def __enter__(self) -> KafkaConsumer:
        self._check()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<KafkaConsumer {self.group_id} {self.topics} {state} {self._target}>"


def _rebalance_callback(method: Any, what: str) -> Any:
    """A rebalance callback for librdkafka: held weakly, and never raising into it.

    An exception escaping a rebalance callback would surface raw from
    whichever call ran it (``poll()``, ``consume()``, ``close()``) and leave
    librdkafka's assignment to confluent-kafka's fallback. It is logged
    instead (with its traceback); what a failed revoke did not commit is
    redelivered to the next owner of the partitions (at-least-once).
    """
    ref = weakref.WeakMethod(method)

    def call(consumer: Any, partitions: list[Any]) -> None:
        target = ref()
        if target is None:
            return
        try:
            target(consumer, partitions)
        except Exception as exc:
            owner = target.__self__
            error = classify(exc, operation=f"{what} callback", target=owner._target)
            logger.error(
                "kafka: consumer %s: the %s callback raised %s (uncommitted records of "
                "these partitions are redelivered)",
                owner.group_id,
                what,
                error.message if error is not None else type(exc).__name__,
                exc_info=error is None,
            )

    return call


def _one_topic(offsets: Mapping[tuple[str, int], int]) -> str:
    """The topic of every key of ``offsets`` when they share one, else ``""``."""
    topics = {topic for topic, _ in offsets}
    return topics.pop() if len(topics) == 1 else ""


def _one_topic_of(topics: Sequence[str]) -> str:
    """The subscription's topic when it is one plain name, else ``""``."""
    return topics[0] if len(topics) == 1 and not topics[0].startswith("^") else ""


def _decoder(spec: Any) -> Any:
    return None if spec == "bytes" else deserializer_for(spec)


def check_offset(offset: object) -> int:
    """An offset: 0..2**63-1, or -2 (the beginning) / -1 (the end)."""
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise TypeError(f"an offset must be an int, got {type(offset).__name__}")
    if not -2 <= offset <= 2**63 - 1:
        raise _bad_request(f"offset {offset} is out of range (-2..2**63-1)")
    return offset


def _partitions(offsets: Mapping[tuple[str, int], int]) -> list[Any]:
    return [confluent_kafka.TopicPartition(t, p, o) for (t, p), o in offsets.items()]


def _install_sigterm(stop: threading.Event) -> Any:
    """Make SIGTERM set ``stop`` (main thread only); return the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    return signal.signal(signal.SIGTERM, on_sigterm)
