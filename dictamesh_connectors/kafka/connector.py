"""``KafkaConnector``: lifecycle, producer verbs, transactions, admin, consumers.

The handle (see ``producer.py``) is one librdkafka producer shared by all
threads, with its delivery thread. ``connect()`` builds it and fetches the
cluster metadata within ``connect_timeout``; ``disconnect()`` drains
``produce()`` calls in flight, flushes, fails (never drops) what could not be
delivered in time and says how many. Consumers (``consumer()``) are separate
objects confined to the thread that made them, as librdkafka's are.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dictamesh_connectors import _fork, observability
from dictamesh_connectors._compat import require
from dictamesh_connectors._convert import MAX_TIMEOUT, check_timeout
from dictamesh_connectors.base import Connector
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    RetryHint,
    build_error,
)
from dictamesh_connectors.kafka import admin as _admin
from dictamesh_connectors.kafka.config import KafkaConfig
from dictamesh_connectors.kafka.consumer import KafkaConsumer, KafkaMessage
from dictamesh_connectors.kafka.errors import translate
from dictamesh_connectors.kafka.producer import (
    Batch,
    BatchResult,
    ProducerHandle,
    RecordMetadata,
    _known_topics,
    check_partition,
    check_timestamp,
    check_topic,
    encode_headers,
    flush_producer,
    new_future,
    produce_batch,
    produce_one,
)
from dictamesh_connectors.kafka.serde import Deserializer, Serializer, serializer_for
from dictamesh_connectors.observability_pools import librdkafka_pool_stats

if TYPE_CHECKING:
    import confluent_kafka
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")

__all__ = ["KafkaConnector"]

logger = logging.getLogger(__name__)

_UNAVAILABLE = ErrorRule(ErrorCode.UNAVAILABLE, True, RetryHint.RETRY)
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
# What a broker that answered but refused us reports through error_cb.
_REFUSALS = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.PERMISSION_DENIED})


def _seconds(timeout: object, default: float) -> float:
    """A per-call timeout: ``None`` is ``default``, ``inf`` no limit (``MAX_TIMEOUT``).

    Raises:
        TypeError: Not a number.
        InvalidConfigError: NaN, negative or above ``MAX_TIMEOUT``.
    """
    if timeout is None:
        return default
    checked = check_timeout(timeout)
    return MAX_TIMEOUT if checked is None else checked


# Connected connectors, flushed by the exit hook (held weakly).
# Strong references: a connected connector that its owner dropped is not
# collected (which would destroy its producer with records still queued);
# it stays until disconnect() or the exit hook flushes it.
_live: set[KafkaConnector] = set()
_live_lock = _fork.create_lock()  # guards _live (memory only)


class KafkaConnector(Connector[KafkaConfig, ProducerHandle]):
    """Kafka through confluent-kafka (librdkafka).

    Thread safety: one connector is shared by every thread of a process.
    ``produce()`` and friends, ``flush()``, the admin verbs and ``ping()`` may
    be called from any thread at once; transactions run one at a time (a
    second thread's ``transaction()`` waits for the first). A
    ``KafkaConsumer`` belongs to the thread that created it. After
    ``os.fork()`` the child builds its own producer on first use; the
    parent's keeps working.

    Example::

        with KafkaConnector(KafkaConfig.from_url("kafka://127.0.0.1:9092")) as kafka:
            meta = kafka.produce("orders", b"{...}", key=b"order-1").result()
            print(meta.partition, meta.offset)

    Args:
        config: The configuration.
        key_serializer, value_serializer: Override the config's named
            serializers with a callable (value -> ``bytes | None``).
        key_deserializer, value_deserializer: The same for consumers.
    """

    name: ClassVar[str] = "kafka"
    config_class: ClassVar[type[KafkaConfig]] = KafkaConfig

    def __init__(
        self,
        config: KafkaConfig,
        *,
        key_serializer: Serializer | None = None,
        value_serializer: Serializer | None = None,
        key_deserializer: Deserializer | None = None,
        value_deserializer: Deserializer | None = None,
    ) -> None:
        super().__init__(config)
        self._key_serializer = serializer_for(key_serializer or config.key_serializer)
        self._value_serializer = serializer_for(value_serializer or config.value_serializer)
        self._key_bytes = key_serializer is None and config.key_serializer == "bytes"
        self._value_bytes = value_serializer is None and config.value_serializer == "bytes"
        # Consumers made by this connector decode with these (names or callables).
        self.key_deserializer: Deserializer | str = key_deserializer or config.key_serializer
        self.value_deserializer: Deserializer | str = value_deserializer or config.value_serializer
        # One transaction at a time per producer. Not the connector lock: it
        # is held for the whole transaction (network I/O and user code).
        self._txn_lock = _fork.create_lock()
        self._txn_owner: int | None = None  # thread id in a transaction; guarded by _txn_lock
        self._closing = threading.local()  # what _close() counted, for disconnect()
        # Set in a forked child of a transactional connector: its producer
        # must not take over the parent's transactional.id (see _open).
        self._forked_txn = False
        _register_exit_hook()

    # ------------------------------------------------------------- lifecycle

    def _open(self) -> ProducerHandle:
        if self._forked_txn:
            # The same transactional.id in the child would fence the parent's
            # producer (its open transaction aborted, its next call fatal):
            # the child's producer gets an id of its own, per process.
            self._forked_txn = False
            inherited = self.config.transactional_id
            self.config = self.config.evolve(transactional_id=f"{inherited}.{os.getpid()}")
            logger.warning(
                "kafka: forked child %d uses transactional_id %r (the parent keeps %r; "
                "give each process its own id for zombie fencing across restarts)",
                os.getpid(),
                self.config.transactional_id,
                inherited,
            )
        handle = ProducerHandle(self.config)
        try:
            handle.start()
            self._fetch_metadata(handle, self.config.connect_timeout, "connect")
            if self.config.transactional_id is not None:
                with translate("init_transactions", self.config.target, write=True):
                    handle.producer.init_transactions(self.config.connect_timeout)
        except BaseException:
            handle.close(0)
            raise
        with _live_lock:  # _live
            _live.add(self)
        return handle

    def _fetch_metadata(self, handle: ProducerHandle, timeout: float, operation: str) -> Any:
        # In short slices, so that brokers refusing us (SASL, ACLs) fail the
        # call at once instead of at the end of the timeout.
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                return handle.producer.list_topics(timeout=max(0.001, min(remaining, 0.5)))
            except confluent_kafka.KafkaException as exc:
                reported = handle.last_error
                if reported is not None and reported.code in _REFUSALS:
                    reason = reported.message.removeprefix(f"kafka: client on {handle.target}: ")
                    raise build_error(
                        f"kafka: {operation} to {self.config.target}: {reason}",
                        (reported.code, reported.transient, reported.retry_hint),
                        connector=self.name,
                        details=reported.details,
                    ) from exc
                if time.monotonic() < deadline:
                    continue
                raise build_error(
                    f"kafka: {operation}: no broker of {self.config.target} answered within "
                    f"{timeout:g}s",
                    _UNAVAILABLE,
                    connector=self.name,
                    details={"kafka_code": exc.args[0].name() if exc.args else ""},
                ) from exc

    def _close(self, handle: ProducerHandle, timeout: float | None) -> None:
        flush_timeout = self.config.flush_timeout if timeout is None else timeout
        undelivered = handle.close(flush_timeout)
        self._closing.undelivered = getattr(self._closing, "undelivered", 0) + undelivered

    def _ping(self, handle: ProducerHandle, timeout: float | None) -> None:
        self._fetch_metadata(
            handle, self.config.connect_timeout if timeout is None else timeout, "ping"
        )

    def _translate_errors(self) -> contextlib.AbstractContextManager[None]:
        return translate("operation", self.config.target)

    def _discard_after_fork(self, handle: ProducerHandle) -> None:
        handle.orphan()

    def _pool_stats(self, handle: ProducerHandle) -> dict[str, Any]:
        # len(producer): messages not yet delivered, exact and local (no I/O).
        return librdkafka_pool_stats(handle.stats, len(handle.producer))

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._txn_owner = None
        self._closing = threading.local()
        self._forked_txn = self.config.transactional_id is not None

    def disconnect(self, timeout: float | None = None) -> int:  # type: ignore[override]
        """Stop new operations, deliver what is queued, then close. Idempotent.

        Every record accepted by ``produce()`` is delivered, or its future
        fails with a classified error, before this returns: none is dropped.

        Args:
            timeout: Seconds for in-flight calls and delivery together;
                ``None`` waits for in-flight calls, then up to
                ``flush_timeout`` for delivery.

        Returns:
            How many records were not delivered in time (0 when all were);
            their futures failed with TIMEOUT (``maybe_applied`` when they
            were already sent). A WARNING is logged when it is not 0.
        """
        self._closing.undelivered = 0
        super().disconnect(timeout)
        undelivered: int = self._closing.undelivered
        self._closing.undelivered = 0
        with _live_lock:  # _live
            _live.discard(self)
        if undelivered:
            logger.warning(
                "kafka: %d record(s) to %s not delivered before disconnect's deadline; "
                "their futures failed",
                undelivered,
                self.config.target,
            )
        return undelivered

    # -------------------------------------------------------------- producer

    def produce(
        self,
        topic: str,
        value: Any,
        *,
        key: Any = None,
        headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        timeout: float | None = None,
    ) -> concurrent.futures.Future[RecordMetadata]:
        """Queue one record; return a future for its delivery.

        The future resolves to ``RecordMetadata(topic, partition, offset,
        timestamp)`` once the brokers acknowledged the record, or fails with
        a ``ConnectorError`` (``err.transient``, ``err.maybe_applied`` say
        whether re-sending is safe). It cannot be cancelled: the record is
        on its way. Delivery reports are served by the connector: inline in
        later ``produce()`` calls while records flow (no thread switch per
        record), by its delivery thread once producers are quiet. Callbacks
        added with ``add_done_callback`` run there, never under the
        connector lock; keep them short.

        Args:
            topic: An existing topic (auto-creation is off by default).
            value: The record value, through the value serializer.
            key: The record key, through the key serializer; it picks the
                partition unless ``partition`` does.
            headers: A mapping or ``(key, value)`` pairs; values are
                ``bytes``, ``str`` (UTF-8) or ``None``.
            partition: A partition number, or ``None`` for the partitioner.
            timestamp: Milliseconds since the epoch; ``None`` for now.
            timeout: Seconds to wait for room while the local queue is full
                (back-pressure; default ``produce_timeout``).

        Raises:
            NotConnectedError: Not connected, or disconnecting.
            ConnectorError: RESOURCE_EXHAUSTED when the queue stayed full
                for ``timeout``; SERIALIZATION_ERROR; PAYLOAD_TOO_LARGE or
                another refusal librdkafka makes before queueing.
            TypeError: A value or argument of the wrong type.
        """
        # The common case (a known topic, bytes, no extras) takes no call
        # per check: this runs once per record.
        if type(topic) is not str or topic not in _known_topics:
            check_topic(topic)
        wait = self.config.produce_timeout if timeout is None else _seconds(timeout, 0.0)
        payload = (
            value if self._value_bytes and type(value) is bytes else self._value_serializer(value)
        )
        if not self._key_bytes or not (key is None or type(key) is bytes):
            key = self._key_serializer(key)
        pairs = encode_headers(headers) if headers is not None else None
        if partition is not None:
            partition = check_partition(partition)
        ts = check_timestamp(timestamp) if timestamp is not None else 0
        future = new_future()
        with self._use("produce") as handle:
            if handle.fatal is not None:
                self._lost(handle, handle.fatal)
            if observability.propagator is not None:  # tracing on: W3C traceparent
                pairs = observability.propagator(self, f"produce {topic}", pairs)
            try:
                produce_one(handle, topic, payload, key, pairs, partition, ts, future, wait)
            except ConnectorError as err:
                if err.retry_hint is RetryHint.RECONNECT:  # fenced or fatal: this caller
                    self._lost(handle, err)  # is told; the next call gets a new producer
                raise
        return future

    def produce_sync(
        self,
        topic: str,
        value: Any,
        *,
        key: Any = None,
        headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
        partition: int | None = None,
        timestamp: int | None = None,
        timeout: float | None = None,
    ) -> RecordMetadata:
        """``produce()`` and wait for the delivery report.

        Args:
            timeout: Seconds to wait in all (default: ``produce_timeout``
                for room in the queue plus ``delivery_timeout``).

        Raises:
            ConnectorError: As ``produce()``, or the delivery's error;
                ``ConnectorTimeoutError`` (``maybe_applied``) when no report
                came within ``timeout``.
        """
        if threading.current_thread() is self._delivery_thread():
            raise build_error(
                "kafka: produce_sync() from a delivery callback would wait for itself",
                _BAD_REQUEST,
                connector=self.name,
            )
        wait = _seconds(timeout, self.config.produce_timeout + self.config.delivery_timeout + 5.0)
        future = self.produce(
            topic,
            value,
            key=key,
            headers=headers,
            partition=partition,
            timestamp=timestamp,
            timeout=wait,
        )
        return self._wait_delivery(future, wait, topic)

    def _wait_delivery(
        self, future: concurrent.futures.Future[RecordMetadata], wait: float, topic: str
    ) -> RecordMetadata:
        # Serve the delivery reports here rather than wait for the delivery
        # thread, which takes over only once producers are quiet.
        deadline = time.monotonic() + wait
        handle = self._handle
        while not future.done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if handle is None or handle.closed:
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    future.result(remaining)
                break
            handle.serve(min(remaining, 0.05))
        try:
            return future.result(0)
        except concurrent.futures.TimeoutError:
            raise build_error(
                f"kafka: produce to {topic} on {self.config.target}: no delivery report "
                f"within {wait:g}s",
                ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY),
                connector=self.name,
                maybe_applied=True,
                details={"topic": topic},
            ) from None

    def produce_many(
        self,
        topic: str,
        values: Iterable[Any],
        *,
        keys: Iterable[Any] | None = None,
        partition: int | None = None,
        timeout: float | None = None,
    ) -> concurrent.futures.Future[BatchResult]:
        """Queue many records with one future for them all (the cheap path).

        The future resolves, once every record has its delivery report, to
        ``BatchResult(delivered, failed)`` where ``failed`` lists
        ``(index, ConnectorError)``; it never fails as a whole. A failure is
        matched to its record by key and value, so of records with equal
        keys and values (interchangeable: re-sending either sends the same
        bytes) it names the lowest index not already named.

        Raises:
            As ``produce()``, for a record refused before queueing: the
            records before it are queued (the future counts them), the rest
            are reported in ``failed`` with that error.
        """
        check_topic(topic)
        partition = check_partition(partition)
        items = values if type(values) is list else list(values)
        key_list: Sequence[Any] = list(keys) if keys is not None else ()
        if keys is not None and len(key_list) != len(items):
            raise build_error(
                f"kafka: produce_many: {len(key_list)} keys for {len(items)} values",
                _BAD_REQUEST,
                connector=self.name,
            )
        # Serialize everything first: a bad value fails the call before
        # anything is queued.
        serialize_value = self._value_serializer
        serialize_key = self._key_serializer
        raw_values, raw_keys = self._value_bytes, self._key_bytes
        batch = Batch(len(items))
        report = batch.report
        if raw_values and raw_keys and keys is None:  # the common case: no key, bytes
            messages = [
                {
                    "value": value if type(value) is bytes else serialize_value(value),
                    "callback": report,
                }
                for value in items
            ]
        else:
            messages = [
                {
                    "value": value
                    if raw_values and type(value) is bytes
                    else serialize_value(value),
                    "key": key
                    if raw_keys and (key is None or type(key) is bytes)
                    else serialize_key(key),
                    "callback": report,
                }
                for value, key in zip(items, key_list or [None] * len(items), strict=True)
            ]
        batch.messages = messages
        wait = _seconds(timeout, self.config.produce_timeout)
        op = self._use("produce_many")
        op._target = topic  # the destination, for listeners (spans)
        with op as handle:
            if handle.fatal is not None:
                self._lost(handle, handle.fatal)
            try:
                produce_batch(handle, topic, batch, partition, wait)
            except ConnectorError as err:
                batch.fail_unqueued([i for i, m in enumerate(messages) if "_error" in m], err)
                if err.retry_hint is RetryHint.RECONNECT:
                    self._lost(handle, err)
                raise
        return batch.future

    def flush(self, timeout: float | None = None) -> int:
        """Wait until every queued record has its delivery report.

        Args:
            timeout: Seconds to wait; ``None`` waits until all are reported
                (at most ``delivery_timeout``, after which librdkafka fails them).

        Returns:
            How many records still await their report (0 when all are done).

        Raises:
            NotConnectedError: Not connected.
            ConnectorError: Permanent, hint RECONNECT, when the producer was
                fenced or failed fatally (the connector drops it, failing what
                is still queued, and builds a new one on next use).
        """
        wait = check_timeout(timeout)
        with self._use("flush") as handle:
            if handle.fatal is not None:
                self._lost(handle, handle.fatal)
            try:
                with translate("flush", self.config.target, write=True):
                    return flush_producer(handle.producer, wait)
            except ConnectorError as err:
                if err.retry_hint is RetryHint.RECONNECT:  # fenced: rebuilt on next use
                    self._lost(handle, err)
                raise

    def _produce_raw_sync(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, str | bytes | None]],
    ) -> RecordMetadata:
        """Produce bytes as they are (no serializer) and wait: the dead-letter path."""
        future = new_future()
        op = self._use("produce")
        op._target = topic  # the destination, for listeners (spans)
        with op as handle:
            if handle.fatal is not None:
                self._lost(handle, handle.fatal)
            produce_one(
                handle,
                topic,
                value,
                key,
                headers,
                None,
                0,
                future,
                self.config.produce_timeout,
            )
        return self._wait_delivery(future, self.config.delivery_timeout + 5.0, topic)

    def _delivery_thread(self) -> threading.Thread | None:
        handle = self._handle
        return handle.delivery_thread if handle is not None else None

    def _lost(self, handle: ProducerHandle, error: ConnectorError) -> None:
        """A fatal producer error: drop the handle (rebuilt on next use) and raise."""
        if handle.fatal is None:
            handle.fatal = error  # what later calls on this handle (a transaction's) raise
        self._on_connection_lost(handle, error)
        raise error

    # ---------------------------------------------------------- transactions

    @contextlib.contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[None]:
        """Run the block in a Kafka transaction: commit on success, abort on exception.

        Needs ``transactional_id``. Records produced in the block (by any
        thread) are part of it; ``send_offsets_to_transaction`` adds a
        consumer's offsets. One transaction runs at a time per connector.

        Example::

            with kafka.transaction():
                kafka.produce("out", b"...")
                kafka.send_offsets_to_transaction(consumer)

        Raises:
            ConnectorError: TRANSACTION_FAILED (RETRY_TRANSACTION) when the
                transaction had to be aborted; a fenced or fatal producer
                is permanent with hint RECONNECT (the producer is rebuilt on
                next use); INVALID_REQUEST without ``transactional_id`` or
                for a nested transaction.
        """
        if self.config.transactional_id is None:
            raise build_error(
                "kafka: transaction() needs transactional_id in the config",
                _BAD_REQUEST,
                connector=self.name,
            )
        if self._txn_owner == threading.get_ident():
            raise build_error("kafka: transactions do not nest", _BAD_REQUEST, connector=self.name)
        wait = _seconds(timeout, self.config.transaction_timeout)
        with self._txn_lock:  # one transaction at a time (held across I/O by design)
            self._txn_owner = threading.get_ident()
            try:
                with self._use("transaction") as handle:
                    producer = handle.producer
                    self._txn_call(handle, "begin_transaction", producer.begin_transaction)
                    handle.in_transaction = handle.txn_unsettled = True
                    try:
                        yield
                    except BaseException:
                        handle.in_transaction = False
                        self._abort(handle, wait)
                        raise
                    try:
                        self._txn_call(
                            handle, "commit_transaction", producer.commit_transaction, wait
                        )
                        handle.txn_unsettled = False
                    except ConnectorError as err:
                        if err.retry_hint is RetryHint.RETRY_TRANSACTION:
                            self._abort(handle, wait)
                        raise
                    finally:
                        handle.in_transaction = False
            finally:
                self._txn_owner = None

    def _txn_call(
        self, handle: ProducerHandle, operation: str, fn: Callable[..., Any], *args: Any
    ) -> Any:
        if handle.closed and handle.fatal is not None:
            # Another call of the block (a produce(), a flush()) met the fatal
            # error and dropped this producer: that error, not "closed".
            handle.in_transaction = False
            raise handle.fatal
        try:
            with translate(operation, self.config.target, write=True):
                return fn(*args)
        except ConnectorError as err:
            if err.retry_hint is RetryHint.RECONNECT:
                handle.in_transaction = False
                if handle.fatal is None:
                    handle.fatal = err
                self._on_connection_lost(handle, err)
            raise

    def _abort(self, handle: ProducerHandle, timeout: float) -> None:
        try:
            self._txn_call(handle, "abort_transaction", handle.producer.abort_transaction, timeout)
            handle.txn_unsettled = False
        except ConnectorError as err:
            logger.warning("kafka: aborting the transaction failed: %s", err.message)

    def send_offsets_to_transaction(
        self,
        consumer: KafkaConsumer,
        offsets: Iterable[KafkaMessage] | Mapping[tuple[str, int], int] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Commit ``consumer``'s offsets as part of the open transaction (exactly-once).

        Args:
            consumer: The consumer whose input the transaction transformed;
                call this from its thread.
            offsets: The messages processed (each commits ``offset + 1``), a
                mapping ``(topic, partition) -> next offset``, or ``None``
                for the consumer's current position on every assigned
                partition.
            timeout: Seconds (default ``transaction_timeout``).

        Raises:
            ConnectorError: INVALID_REQUEST outside ``transaction()``; as
                ``transaction()`` for the broker's refusals.
        """
        handle = self._handle
        if handle is None or not handle.in_transaction or self._txn_owner != threading.get_ident():
            raise build_error(
                "kafka: send_offsets_to_transaction() needs an open transaction() in this thread",
                _BAD_REQUEST,
                connector=self.name,
            )
        partitions = consumer._next_offsets(offsets)
        metadata = consumer._group_metadata()
        wait = _seconds(timeout, self.config.transaction_timeout)
        self._txn_call(
            handle,
            "send_offsets_to_transaction",
            handle.producer.send_offsets_to_transaction,
            partitions,
            metadata,
            wait,
        )

    # ------------------------------------------------------------- consumers

    def consumer(
        self,
        group_id: str,
        topics: str | Sequence[str],
        **options: Any,
    ) -> KafkaConsumer:
        """A consumer in ``group_id`` subscribed to ``topics``, for this thread only.

        Args:
            group_id: The consumer group.
            topics: One topic or a list (``^regex`` patterns allowed).
            **options: librdkafka consumer settings for this consumer, with
                ``_`` for ``.`` (``session_timeout_ms=10000``), over the
                config's ``consumer_options``; ``isolation_level`` and
                ``auto_offset_reset`` override the config's for this consumer.

        Raises:
            InvalidConfigError: A setting librdkafka refuses.
            TypeError: ``group_id`` or ``topics`` of the wrong type.
        """
        return KafkaConsumer(self, group_id, topics, options)

    # ----------------------------------------------------------------- admin

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Create a topic; return once the cluster metadata shows it with a leader per partition.

        Raises:
            ConnectorError: CONFLICT if it exists; INVALID_REQUEST for a bad
                partition count, replication factor or topic config.
        """
        self._admin_call(
            "create_topic",
            lambda admin, wait: _admin.create_topic(
                admin, self.config.target, name, partitions, replication_factor, config, wait
            ),
            timeout,
        )

    def delete_topic(self, name: str, *, timeout: float | None = None) -> None:
        """Delete a topic.

        Raises:
            ConnectorError: NOT_FOUND if it does not exist.
        """
        self._admin_call(
            "delete_topic",
            lambda admin, wait: _admin.delete_topic(admin, self.config.target, name, wait),
            timeout,
        )

    def list_topics(self, *, timeout: float | None = None) -> list[str]:
        """The names of the cluster's topics, internal ones (``__*``) left out, sorted."""
        result: list[str] = self._admin_call(
            "list_topics",
            lambda admin, wait: _admin.list_topics(admin, self.config.target, wait),
            timeout,
        )
        return result

    def describe_topic(self, name: str, *, timeout: float | None = None) -> _admin.TopicInfo:
        """The topic's partitions with their leader, replicas and in-sync replicas.

        Raises:
            ConnectorError: NOT_FOUND if it does not exist.
        """
        result: _admin.TopicInfo = self._admin_call(
            "describe_topic",
            lambda admin, wait: _admin.describe_topic(admin, self.config.target, name, wait),
            timeout,
        )
        return result

    def _admin_call(
        self, description: str, fn: Callable[[Any, float], Any], timeout: float | None
    ) -> Any:
        wait = _seconds(timeout, self.config.request_timeout)
        return self._run(
            lambda handle: fn(handle.admin(), wait),
            idempotent=description in ("list_topics", "describe_topic"),
            description=description,
        )


# ------------------------------------------------------------------ exit hook

_hook_lock = _fork.create_lock()
_hook_registered = False


def _register_exit_hook() -> None:
    global _hook_registered
    with _hook_lock:  # _hook_registered
        if _hook_registered:
            return
        _hook_registered = True
    atexit.register(_flush_at_exit)


def _flush_at_exit() -> None:
    """Disconnect (flush, bounded) every connector still connected at interpreter exit."""
    with _live_lock:  # _live: a copy, disconnect() runs outside
        connectors = list(_live)
    for connector in connectors:
        if connector._pid != os.getpid() or not connector.is_connected:
            continue
        logger.info(
            "kafka: interpreter exit: flushing %s (up to %gs)",
            connector.config.target,
            connector.config.flush_timeout,
        )
        try:
            connector.disconnect(connector.config.flush_timeout)
        except Exception:
            logger.warning("kafka: flushing at exit failed", exc_info=True)
