"""``FakeKafka``: the Kafka connector's API on an in-memory cluster.

The fake *is* the real ``KafkaConnector`` and ``KafkaConsumer`` with
librdkafka replaced by in-memory stand-ins (``_Producer``, ``_Admin``,
``_Consumer`` below), so every argument check, serializer, delivery
future, ``BatchResult``, ``KafkaMessage``, the at-least-once ``run()``
loop with its dead-letter topic, and every error translation are the real
ones. The stand-ins raise what librdkafka raises (``KafkaException`` with a
``KafkaError`` code, delivery reports with an error), which the real
``kafka.errors`` table classifies: an unknown topic is NOT_FOUND, an
existing one on create CONFLICT, a fenced producer CONFLICT with RECONNECT.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.kafka.config import KafkaConfig, _options
from dictamesh_connectors.kafka.connector import KafkaConnector
from dictamesh_connectors.kafka.consumer import (
    _PER_CONSUMER,
    KafkaConsumer,
    _check_group,
    _check_topics,
    _decoder,
)
from dictamesh_connectors.kafka.errors import CODE_RULES, translate
from dictamesh_connectors.kafka.serde import Deserializer, Serializer
from dictamesh_connectors.observability_pools import librdkafka_pool_stats
from dictamesh_connectors.testing.fakes._faults import FaultInjection, FaultPlan, fault_operations
from dictamesh_connectors.testing.fakes._kafka_cluster import (
    BROKER_ID,
    FakeCluster,
    Member,
    Record,
    Txn,
    pick_partition,
)

if TYPE_CHECKING:
    import confluent_kafka
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")

__all__ = ["FakeCluster", "FakeKafka", "FakeKafkaConsumer"]

logger = logging.getLogger(__name__)

_KE = confluent_kafka.KafkaError
_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's message.max.bytes default
_TIMESTAMP_CREATE_TIME = 1


def _kafka_exception(code: int, text: str, *, fatal: bool = False) -> Exception:
    return confluent_kafka.KafkaException(_KE(code, text, fatal=fatal))


def _kafka_error_for(error: ConnectorError) -> Any:
    """A ``KafkaError`` that the Kafka table classifies with ``error``'s code."""
    for name, rule in CODE_RULES.items():
        if rule.code is error.code and hasattr(_KE, name):
            return _KE(getattr(_KE, name), error.message, retriable=error.transient)
    return _KE(_KE._FAIL, error.message, retriable=error.transient)


# ------------------------------------------------------------ the producer


class _Delivered:
    """What a delivery report's ``msg`` argument offers (librdkafka's ``Message``)."""

    __slots__ = ("_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self, topic: str, partition: int, offset: int, timestamp: int, key: Any, value: Any
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._timestamp = timestamp
        # As librdkafka gives them back: str encoded as UTF-8.
        self._key = key.encode("utf-8") if isinstance(key, str) else key
        self._value = value.encode("utf-8") if isinstance(value, str) else value

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (_TIMESTAMP_CREATE_TIME, self._timestamp)


class _Producer:
    """An in-memory ``confluent_kafka.Producer``: appends to the cluster, reports on poll()."""

    def __init__(self, fake: FakeKafka) -> None:
        self._fake = fake
        self._cluster = fake.cluster
        conf = fake.config.producer_conf()
        self._partitioner = str(conf.get("partitioner", "consistent_random"))
        self._max_bytes = int(conf.get("message.max.bytes", _MAX_MESSAGE_BYTES))
        self._auto_create = bool(conf.get("allow.auto.create.topics", False))
        self._transactional_id: str | None = conf.get("transactional.id")
        self._epoch: int | None = None
        self._txn: Txn | None = None  # guarded by the cluster lock
        self._reports: list[tuple[Any, Any, Any]] = []  # guarded by _lock
        self._lock = _fork.create_lock()
        self.closed = False

    # ------------------------------------------------------------ records

    def _record(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        partition: int,
        timestamp: int,
        headers: Any,
    ) -> tuple[Any, Any]:
        """Append one record; return the delivery report ``(err, msg)``."""
        if self.closed:
            raise RuntimeError("Producer has been closed")
        size = len(value or b"") + len(key or b"")
        if size > self._max_bytes:
            raise _kafka_exception(_KE.MSG_SIZE_TOO_LARGE, "Broker: Message size too large")
        pairs = [
            (name, data.encode("utf-8") if isinstance(data, str) else data)
            for name, data in (headers or [])
        ]
        cluster = self._cluster
        with cluster.lock:  # the cluster: one append
            found = cluster.topics.get(topic)
            if found is None and self._auto_create:
                cluster.create_topic(topic, 1, {})
                found = cluster.topics[topic]
            if found is None:
                return _KE(_KE.UNKNOWN_TOPIC_OR_PART, "Broker: Unknown topic or partition"), (
                    _Delivered(topic, -1, -1001, 0, key, value)
                )
            count = len(found.logs)
            if partition < 0:
                partition = pick_partition(self._partitioner, key, count)
            elif partition >= count:
                return _KE(_KE._UNKNOWN_PARTITION, "Local: Unknown partition"), (
                    _Delivered(topic, partition, -1001, 0, key, value)
                )
            limit = found.config.get("max.message.bytes")
            if limit is not None and size > int(limit):
                return _KE(_KE.MSG_SIZE_TOO_LARGE, "Broker: Message size too large"), (
                    _Delivered(topic, partition, -1001, 0, key, value)
                )
            txn = self._txn
            if self._transactional_id is not None and txn is None:
                raise _kafka_exception(_KE._STATE, "Local: Erroneous state: no transaction is open")
            if txn is not None and not self._current_epoch():
                # Fenced: the broker refuses to add the partition to the transaction.
                return _KE(
                    _KE._FENCED,
                    "Local: This instance has been fenced by a newer instance",
                    fatal=True,
                ), _Delivered(topic, partition, -1001, 0, key, value)
            ts = timestamp or int(time.time() * 1000)
            record = Record(key, value, pairs or None, ts, txn)
            offset = cluster.append(topic, partition, record)
        return None, _Delivered(topic, partition, offset, ts, key, value)

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int = -1,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        self._fake._faults.check("produce")
        err, msg = self._record(topic, value, key, partition, timestamp, headers)
        with self._lock:  # pending reports
            self._reports.append((on_delivery, err, msg))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]], partition: int = -1) -> int:
        applied = self._fake._faults.check("produce_many", batch_size=len(messages))
        failure = None
        if applied is not None:
            failure = _kafka_error_for(
                self._fake._faults.partial_error("produce_many", applied, len(messages))
            )
        queued = 0
        for index, message in enumerate(messages):
            if failure is not None and index >= (applied or 0):
                message["_error"] = failure
                continue
            try:
                err, msg = self._record(
                    topic,
                    message.get("value"),
                    message.get("key"),
                    message.get("partition", partition),
                    message.get("timestamp", 0),
                    message.get("headers"),
                )
            except confluent_kafka.KafkaException as exc:
                message["_error"] = exc.args[0]
                continue
            with self._lock:  # pending reports
                self._reports.append((message["callback"], err, msg))
            queued += 1
        return queued

    def poll(self, timeout: float | None = None) -> int:
        with self._lock:  # pending reports: taken here, served outside
            reports, self._reports = self._reports, []
        for callback, err, msg in reports:
            if callback is not None:
                callback(err, msg)
        return len(reports)

    def flush(self, timeout: float | None = None) -> int:
        self.poll(0)
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        return None

    def __len__(self) -> int:
        with self._lock:  # pending reports
            return len(self._reports)

    def close(self) -> None:
        self.closed = True

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        return _metadata(self._cluster, topic)

    # -------------------------------------------------------- transactions

    def _current_epoch(self) -> bool:
        # Called with the cluster lock held.
        return self._cluster.epochs.get(self._transactional_id or "") == self._epoch

    def _check_epoch(self) -> None:
        # Called with the cluster lock held.
        if not self._current_epoch():
            self._txn = None
            raise _kafka_exception(
                _KE._FENCED,
                "Local: This instance has been fenced by a newer instance",
                fatal=True,
            )

    def _require_transactional(self) -> str:
        if self._transactional_id is None or self._epoch is None:
            raise _kafka_exception(_KE._STATE, "Local: Erroneous state: not transactional")
        return self._transactional_id

    def init_transactions(self, timeout: float | None = None) -> None:
        tid = self._transactional_id
        if tid is None:
            raise _kafka_exception(_KE._NOT_CONFIGURED, "Local: transactional.id is not set")
        cluster = self._cluster
        with cluster.lock:  # the cluster: fence the previous instance
            pending = cluster.open_txns.pop(tid, None)
            if pending is not None:
                cluster.end_txn(pending, commit=False)
            self._epoch = cluster.epochs[tid] = cluster.epochs.get(tid, -1) + 1

    def begin_transaction(self) -> None:
        self._fake._faults.check("transaction")
        tid = self._require_transactional()
        with self._cluster.lock:  # the cluster (a local step: fencing shows on commit)
            if self._txn is not None:
                raise _kafka_exception(_KE._STATE, "Local: Erroneous state: already in one")
            self._txn = Txn()
            if self._current_epoch():
                self._cluster.open_txns[tid] = self._txn

    def _end(self, commit: bool) -> None:
        tid = self._require_transactional()
        self.poll(0)  # as librdkafka: every record's report comes before the commit
        cluster = self._cluster
        with cluster.lock:  # the cluster: the markers and the group offsets at once
            txn = self._txn
            if txn is None:
                if commit:
                    raise _kafka_exception(_KE._STATE, "Local: Erroneous state: no transaction")
                return  # already aborted (after a failed commit)
            self._txn = None
            if not self._current_epoch():
                raise _kafka_exception(
                    _KE._FENCED,
                    "Local: This instance has been fenced by a newer instance",
                    fatal=True,
                )
            if cluster.open_txns.get(tid) is txn:
                del cluster.open_txns[tid]
            cluster.end_txn(txn, commit=commit)

    def commit_transaction(self, timeout: float | None = None) -> None:
        try:
            self._fake._faults.check("commit_transaction")
        except ConnectorError:
            self._end(commit=False)  # a failed commit leaves nothing visible
            raise
        self._end(commit=True)

    def abort_transaction(self, timeout: float | None = None) -> None:
        self._end(commit=False)

    def send_offsets_to_transaction(
        self, positions: list[Any], group_metadata: Any, timeout: float | None = None
    ) -> None:
        self._fake._faults.check("send_offsets_to_transaction")
        self._require_transactional()
        with self._cluster.lock:  # the cluster
            self._check_epoch()
            txn = self._txn
            if txn is None:
                raise _kafka_exception(_KE._STATE, "Local: Erroneous state: no transaction")
            offsets = txn.offsets.setdefault(group_metadata.group_id, {})
            for tp in positions:
                offsets[(tp.topic, tp.partition)] = tp.offset


# ---------------------------------------------------------------- metadata


class _PartitionMeta:
    __slots__ = ("error", "id", "isrs", "leader", "replicas")

    def __init__(self, partition: int) -> None:
        self.id = partition
        self.leader = BROKER_ID
        self.replicas = [BROKER_ID]
        self.isrs = [BROKER_ID]
        self.error = None


class _TopicMeta:
    __slots__ = ("error", "partitions", "topic")

    def __init__(self, name: str, count: int) -> None:
        self.topic = name
        self.partitions = {p: _PartitionMeta(p) for p in range(count)}
        self.error = None


class _Metadata:
    __slots__ = ("brokers", "topics")

    def __init__(self, topics: dict[str, _TopicMeta]) -> None:
        self.topics = topics
        self.brokers = {BROKER_ID: "fake:9092"}


def _metadata(cluster: FakeCluster, topic: str | None) -> _Metadata:
    with cluster.lock:  # the cluster: a snapshot of the topic list
        names = [topic] if topic is not None else list(cluster.topics)
        return _Metadata(
            {
                name: _TopicMeta(name, len(cluster.topics[name].logs))
                for name in names
                if name in cluster.topics
            }
        )


class _Admin:
    """An in-memory ``confluent_kafka.admin.AdminClient`` (topics only)."""

    def __init__(self, fake: FakeKafka) -> None:
        self._fake = fake
        self._cluster = fake.cluster

    @staticmethod
    def _future(error: Exception | None) -> concurrent.futures.Future[None]:
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)
        return future

    def create_topics(self, new_topics: list[Any], **timeouts: Any) -> dict[str, Any]:
        self._fake._faults.check("create_topic")
        out = {}
        with self._cluster.lock:  # the cluster
            for new in new_topics:
                error: Exception | None = None
                if new.topic in self._cluster.topics:
                    error = _kafka_exception(
                        _KE.TOPIC_ALREADY_EXISTS, f"Topic '{new.topic}' already exists."
                    )
                elif new.replication_factor > 1:
                    error = _kafka_exception(
                        _KE.INVALID_REPLICATION_FACTOR,
                        f"Unable to replicate the partition {new.replication_factor} time(s): "
                        "The target replication factor of "
                        f"{new.replication_factor} cannot be reached because only 1 broker(s) "
                        "are registered.",
                    )
                else:
                    self._cluster.create_topic(new.topic, new.num_partitions, dict(new.config))
                out[new.topic] = self._future(error)
        return out

    def delete_topics(self, topics: list[str], **timeouts: Any) -> dict[str, Any]:
        self._fake._faults.check("delete_topic")
        out = {}
        with self._cluster.lock:  # the cluster
            for name in topics:
                error: Exception | None = None
                if name not in self._cluster.topics:
                    error = _kafka_exception(
                        _KE.UNKNOWN_TOPIC_OR_PART,
                        "Broker: Unknown topic or partition",
                    )
                else:
                    self._cluster.delete_topic(name)
                out[name] = self._future(error)
        return out

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> _Metadata:
        self._fake._faults.check("list_topics" if topic is None else "describe_topic")
        return _metadata(self._cluster, topic)


class _Handle:
    """Stands in for ``kafka.producer.ProducerHandle`` (the real verbs use its fields)."""

    def __init__(self, fake: FakeKafka) -> None:
        self.config = fake.config
        self.target = fake.config.target
        self.producer = _Producer(fake)
        self._admin = _Admin(fake)
        self.stats: dict[str, Any] | None = None
        self.last_error: ConnectorError | None = None
        self.fatal: ConnectorError | None = None
        self.in_transaction = False
        self.closed = False
        self.activity = 0  # bumped by produce() as on the real handle

    @property
    def delivery_thread(self) -> threading.Thread | None:
        """None: reports are served in the producing thread (no thread switch to wait for)."""
        return None

    def start(self) -> None:
        """Nothing to start: there is no delivery thread."""

    def serve(self, timeout: float) -> None:
        """Serve the pending delivery reports in this thread."""
        if not self.closed:
            self.producer.poll(timeout)

    def admin(self) -> _Admin:
        """The admin stand-in."""
        return self._admin

    def close(self, timeout: float) -> int:
        """Abort an open transaction, serve every report; nothing is ever left undelivered."""
        self.closed = True
        producer = self.producer
        if self.in_transaction:
            with contextlib.suppress(confluent_kafka.KafkaException):
                producer.abort_transaction(timeout)
        producer.poll(0)
        producer.close()
        return 0

    def orphan(self) -> None:
        """In a forked child: the parent's stand-in is simply dropped."""
        self.closed = True


# ------------------------------------------------------------ the consumer


class _Message:
    """What ``Consumer.poll()`` returns (librdkafka's ``Message``)."""

    __slots__ = ("_error", "_offset", "_partition", "_record", "_topic")

    def __init__(
        self,
        topic: str | None,
        partition: int,
        offset: int,
        record: Record | None,
        error: Any = None,
    ) -> None:
        self._topic = topic
        self._partition = partition
        self._offset = offset
        self._record = record
        self._error = error

    def topic(self) -> str | None:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None if self._record is None else self._record.key

    def value(self) -> bytes | None:
        return None if self._record is None else self._record.value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        if self._record is None or not self._record.headers:
            return None
        return list(self._record.headers)

    def timestamp(self) -> tuple[int, int]:
        return (_TIMESTAMP_CREATE_TIME, 0 if self._record is None else self._record.timestamp)

    def error(self) -> Any:
        return self._error


class _GroupMetadata:
    __slots__ = ("group_id",)

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id


class _Consumer:
    """An in-memory ``confluent_kafka.Consumer``: a group member reading the cluster."""

    def __init__(self, fake: FakeKafka, group_id: str, conf: Mapping[str, Any]) -> None:
        self._fake = fake
        self._cluster = fake.cluster
        self._group_id = group_id
        self._reset = str(conf.get("auto.offset.reset", "earliest"))
        self._committed_only = conf.get("isolation.level", "read_committed") == "read_committed"
        self._member: Member | None = None
        self._positions: dict[tuple[str, int], int] = {}  # where the next fetch starts
        # What position() reports: set by a returned record or a seek, as in
        # librdkafka (-1001 before the first one).
        self._reported: dict[tuple[str, int], int] = {}
        self._callbacks: dict[str, Any] = {}
        self._errors: list[_Message] = []
        self._closed = False
        self._next = 0  # round-robin start among assigned partitions

    def _tp(self, topic: str, partition: int, offset: int) -> Any:
        return confluent_kafka.TopicPartition(topic, partition, offset)

    def _alive(self) -> Member:
        if self._closed or self._member is None:
            raise RuntimeError("Consumer closed")
        return self._member

    def subscribe(self, topics: list[str], **callbacks: Any) -> None:
        self._callbacks = callbacks
        with self._cluster.lock:  # the cluster: join the group
            self._member = self._cluster.join(self._group_id, topics)
            for name in self._cluster.missing(self._member):
                self._errors.append(
                    _Message(
                        name,
                        -1,
                        -1001,
                        None,
                        _KE(
                            _KE.UNKNOWN_TOPIC_OR_PART,
                            f"Subscribed topic not available: {name}: "
                            "Broker: Unknown topic or partition",
                        ),
                    )
                )

    # ---------------------------------------------------------- rebalance

    def _sync(self) -> None:
        """Follow the group's rebalances: give up, then take, this member's partitions.

        Rebalance callbacks run here, in the consumer's own thread, with no
        lock held (as librdkafka runs them inside poll()).
        """
        member = self._alive()
        cluster = self._cluster
        with cluster.lock:  # the cluster: what to give up
            rebalance = member.generation != member.group.generation
            revoked = sorted(member.owned) if rebalance else []
        if revoked:
            self._call("on_revoke", revoked)
        with cluster.lock:  # the cluster: give up, then take what is free
            group = member.group
            if rebalance:
                for key in member.owned:
                    if group.owners.get(key) is member:
                        del group.owners[key]
                member.owned = set()
                self._positions = {}
                self._reported = {}
                member.generation = group.generation
            taken = []
            for key in sorted(cluster.target(member) - member.owned):
                if group.owners.get(key) is None:
                    group.owners[key] = member
                    member.owned.add(key)
                    self._positions[key] = self._start(key)
                    taken.append(key)
            if taken:
                cluster.changed.notify_all()  # others may wait for what we gave up
        if taken:
            self._call("on_assign", taken)

    def _start(self, key: tuple[str, int]) -> int:
        committed = self._member.group.committed.get(key) if self._member else None
        if committed is not None:
            return committed
        if self._reset == "latest":
            return self._cluster.high_watermark(*key)
        return 0

    def _call(self, name: str, keys: list[tuple[str, int]]) -> None:
        callback = self._callbacks.get(name)
        if callback is not None:
            callback(self, [self._tp(t, p, -1001) for t, p in keys])

    # ------------------------------------------------------------ reading

    def _fetch(self, limit: int) -> list[_Message]:
        member = self._alive()
        out: list[_Message] = []
        with self._cluster.lock:  # the cluster: read what is visible
            keys = sorted(member.owned)
            if not keys:
                return out
            start = self._next % len(keys)
            for key in keys[start:] + keys[:start]:
                if len(out) >= limit or key[0] not in self._cluster.topics:
                    continue
                position = self._positions.get(key, 0)
                records, position = self._cluster.read(
                    key[0], key[1], position, limit - len(out), self._committed_only
                )
                self._positions[key] = position
                if records:
                    self._reported[key] = records[-1][0] + 1
                out.extend(_Message(key[0], key[1], off, rec) for off, rec in records)
            self._next += 1
        return out

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[_Message]:
        self._fake._faults.check("consume")
        return self._wait(num_messages, timeout)

    def poll(self, timeout: float = -1) -> _Message | None:
        self._fake._faults.check("poll")
        messages = self._wait(1, timeout)
        return messages[0] if messages else None

    def _wait(self, limit: int, timeout: float) -> list[_Message]:
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        while True:
            if self._errors:
                return [self._errors.pop(0)]
            self._sync()
            messages = self._fetch(limit)
            if messages:
                return messages
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            with self._cluster.lock:  # the cluster: wait for a change
                self._cluster.changed.wait(0.1 if remaining is None else min(remaining, 0.1))

    # ------------------------------------------------------------ offsets

    def commit(self, offsets: list[Any] | None = None, asynchronous: bool = True) -> None:
        self._fake._faults.check("commit")
        member = self._alive()
        with self._cluster.lock:  # the cluster: the group's committed offsets
            for tp in offsets or []:
                key = (tp.topic, tp.partition)
                if key not in member.owned:
                    raise _kafka_exception(
                        _KE.ILLEGAL_GENERATION,
                        "Broker: Specified group generation id is not valid",
                    )
                member.group.committed[key] = tp.offset

    def seek(self, partition: Any) -> None:
        self._fake._faults.check("seek")
        member = self._alive()
        key = (partition.topic, partition.partition)
        with self._cluster.lock:  # the cluster
            if key not in member.owned:
                raise _kafka_exception(
                    _KE._STATE, "Local: Erroneous state: partition is not assigned"
                )
            offset = partition.offset
            if offset == confluent_kafka.OFFSET_BEGINNING:
                offset = 0
            elif offset == confluent_kafka.OFFSET_END:
                offset = self._cluster.high_watermark(*key)
            self._positions[key] = self._reported[key] = offset

    def assignment(self) -> list[Any]:
        member = self._alive()
        self._sync()
        with self._cluster.lock:  # the cluster
            return [self._tp(t, p, -1001) for t, p in sorted(member.owned)]

    def position(self, partitions: list[Any]) -> list[Any]:
        self._alive()
        return [
            self._tp(tp.topic, tp.partition, self._reported.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def committed(self, partitions: list[Any], timeout: float = -1) -> list[Any]:
        member = self._alive()
        with self._cluster.lock:  # the cluster
            return [
                self._tp(
                    tp.topic,
                    tp.partition,
                    member.group.committed.get((tp.topic, tp.partition), -1001),
                )
                for tp in partitions
            ]

    def get_watermark_offsets(self, partition: Any, timeout: float = -1) -> tuple[int, int]:
        with self._cluster.lock:  # the cluster
            if partition.topic not in self._cluster.topics:
                raise _kafka_exception(_KE.UNKNOWN_TOPIC_OR_PART, "Broker: Unknown topic")
            return 0, self._cluster.high_watermark(partition.topic, partition.partition)

    def consumer_group_metadata(self) -> _GroupMetadata:
        self._alive()
        return _GroupMetadata(self._group_id)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._member is not None:
            with self._cluster.lock:  # the cluster: leave the group
                self._cluster.leave(self._member)


class FakeKafkaConsumer(KafkaConsumer):
    """A ``KafkaConsumer`` of ``FakeKafka``: the real class, reading the in-memory cluster.

    ``poll``, ``consume``, ``commit``, ``seek``, ``assignment``, ``lag``,
    ``run`` (with its dead-letter topic and retries) and ``close`` are the
    real methods. Confined to its thread, as the real one.
    """

    def __init__(
        self,
        connector: FakeKafka,
        group_id: str,
        topics: str | Sequence[str],
        options: Mapping[str, Any],
    ) -> None:
        # The real constructor's checks, then the stand-in for librdkafka's consumer.
        group = _check_group(group_id)
        names = _check_topics(topics)
        dotted = {str(k).replace("_", "."): v for k, v in options.items()}
        chosen = {k: dotted.pop(k) for k in _PER_CONSUMER if k in dotted}
        extra = _options(dotted)
        for key, value in chosen.items():
            if value not in _PER_CONSUMER[key]:
                raise InvalidConfigError(
                    f"kafka: {key} must be one of {', '.join(sorted(_PER_CONSUMER[key]))}",
                    connector="kafka",
                )
        self._connector = connector
        self._target = connector.config.target
        self.group_id = group
        self.topics = names
        self._key = _decoder(connector.key_deserializer)
        self._value = _decoder(connector.value_deserializer)
        conf = connector.config.consumer_conf(group)
        conf.update(extra)
        conf.update(chosen)
        self._consumer = _Consumer(connector, group, conf)  # type: ignore[assignment]
        self._init_state()
        with translate("subscribe", self._target):
            self._consumer.subscribe(
                names,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
        _fork.register_child_reset(self)

    def _after_fork_in_child(self) -> None:
        # Nothing of librdkafka's to keep alive; the child must make its own.
        pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<FakeKafkaConsumer {self.group_id} {self.topics} {state}>"


# ----------------------------------------------------------------- the fake


class FakeKafka(FaultInjection, KafkaConnector):
    """``KafkaConnector``'s API on an in-memory cluster, for unit tests without a broker.

    It is the real connector (``produce``, ``produce_sync``,
    ``produce_many``, ``flush``, ``transaction``,
    ``send_offsets_to_transaction``, ``consumer``, the admin verbs) with
    librdkafka replaced: records go to in-memory partition logs (a key
    picks its partition with librdkafka's ``consistent_random`` hash, or
    the ``partitioner`` of ``producer_options``), delivery futures resolve
    as soon as the producing call serves its reports, consumer groups keep
    committed offsets (a new member resumes from them; ``auto_offset_reset``
    decides otherwise), transactions are atomic and ``read_committed``
    consumers never see an aborted or open one's records. Topics must be
    created first (``create_topic``), unless ``allow_auto_create_topics``.

    Faults: ``fail_next(op, code=...)`` for ``produce``, ``produce_many``
    (``partial=n``: the first n records are delivered, the others fail in
    the ``BatchResult``), ``transaction`` (begin), ``commit_transaction``,
    ``send_offsets_to_transaction``, ``create_topic``, ``delete_topic``,
    ``list_topics``, ``describe_topic``, ``ping``, ``connect``, and the
    consumers' ``poll``, ``consume``, ``commit`` and ``seek``.

    Thread safety: as the real connector; consumers are confined to their
    thread. Several fakes can share one ``FakeCluster`` (``cluster=``).

    Example::

        from dictamesh_connectors.testing.fakes import FakeKafka

        with FakeKafka() as kafka:
            kafka.create_topic("orders", partitions=3)
            kafka.produce_sync("orders", b"{}", key=b"order-1")
            with kafka.consumer("billing", "orders") as consumer:
                assert consumer.poll(1.0).value == b"{}"

    Args:
        config: A ``KafkaConfig``, a ``kafka://`` URL, or nothing; no broker
            is ever contacted.
        key_serializer, value_serializer, key_deserializer,
            value_deserializer: As for ``KafkaConnector``.
        cluster: The cluster to work on (default: a new, empty one).
    """

    name: ClassVar[str] = "kafka"
    config_class: ClassVar[type[KafkaConfig]] = KafkaConfig

    def __init__(
        self,
        config: KafkaConfig | str | None = None,
        *,
        key_serializer: Serializer | None = None,
        value_serializer: Serializer | None = None,
        key_deserializer: Deserializer | None = None,
        value_deserializer: Deserializer | None = None,
        cluster: FakeCluster | None = None,
    ) -> None:
        """Prepare a DISCONNECTED fake (no I/O).

        Raises:
            InvalidConfigError: ``config`` is not a valid config or URL.
        """
        if config is None:
            config = KafkaConfig()
        elif isinstance(config, str):
            config = KafkaConfig.from_url(config)
        super().__init__(
            config,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            key_deserializer=key_deserializer,
            value_deserializer=value_deserializer,
        )
        self.cluster = cluster if cluster is not None else FakeCluster()
        """The in-memory cluster this fake produces to and consumes from."""
        self._faults = FaultPlan(
            self.name,
            operations=fault_operations(
                type(self), "commit", "commit_transaction", "consume", "poll", "seek"
            ),
        )

    # --------------------------------------------------------------- hooks

    def _open(self) -> Any:
        self._faults.check("connect")
        handle = _Handle(self)
        if self.config.transactional_id is not None:
            with translate("init_transactions", self.config.target, write=True):
                handle.producer.init_transactions(self.config.connect_timeout)
        return handle

    def _close(self, handle: Any, timeout: float | None) -> None:
        handle.close(0 if timeout is None else timeout)
        self._closing.undelivered = getattr(self._closing, "undelivered", 0)

    def _ping(self, handle: Any, timeout: float | None) -> None:
        self._faults.check("ping")

    def _discard_after_fork(self, handle: Any) -> None:
        handle.orphan()

    def _pool_stats(self, handle: Any) -> dict[str, Any]:
        return librdkafka_pool_stats(None, len(handle.producer))

    # ------------------------------------------------------------- consumers

    def consumer(
        self,
        group_id: str,
        topics: str | Sequence[str],
        **options: Any,
    ) -> KafkaConsumer:
        """A consumer in ``group_id`` subscribed to ``topics``, for this thread only.

        Raises:
            InvalidConfigError: A bad ``isolation_level`` or ``auto_offset_reset``.
            TypeError: ``group_id`` or ``topics`` of the wrong type.
            ConnectorError: INVALID_REQUEST for a blank group or no topic.
        """
        return FakeKafkaConsumer(self, group_id, topics, options)

    # ------------------------------------------------------------- helpers

    def records(self, topic: str, *, committed_only: bool = False) -> list[Any]:
        """Every record of ``topic`` as ``KafkaMessage`` values, in partition then offset order.

        For assertions: no consumer group is involved and nothing is
        committed. Values and keys are the raw bytes.

        Raises:
            ConnectorError: NOT_FOUND when the topic does not exist.
        """
        from dictamesh_connectors.kafka.consumer import KafkaMessage

        with self.cluster.lock:  # the cluster: a snapshot
            found = self.cluster.topics.get(topic)
            if found is None:
                raise _not_found(topic)
            out: list[KafkaMessage] = []
            for partition, log in enumerate(found.logs):
                records, _ = self.cluster.read(topic, partition, 0, len(log), committed_only)
                out.extend(
                    KafkaMessage(
                        topic, partition, offset, r.key, r.value, list(r.headers or []),
                        r.timestamp,
                    )
                    for offset, r in records
                )  # fmt: skip
        return out


def _not_found(topic: str) -> ConnectorError:
    from dictamesh_connectors.errors import ErrorRule, RetryHint, build_error

    return build_error(
        f"kafka: no topic {topic} in the fake cluster",
        ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
        connector="kafka",
        details={"topic": topic, "kafka_code": "UNKNOWN_TOPIC_OR_PART"},
    )
