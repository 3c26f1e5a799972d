"""An in-memory stand-in for ``confluent_kafka.Producer`` (unit tests only).

It keeps librdkafka's contract where the connector depends on it: delivery
reports are served only by ``poll()``/``flush()`` (so only by the
connector's delivery thread unless someone flushes), a full queue raises
``BufferError``, ``purge()`` turns queued records into ``_PURGE_QUEUE``
reports, and a fatal error surfaces from ``poll()`` as a ``KafkaException``.
"""

from __future__ import annotations

import threading
import time
import types
from typing import Any

import confluent_kafka
from confluent_kafka import KafkaError, KafkaException


class FakeMessage:
    def __init__(
        self, topic: str, partition: int, offset: int, key: Any = None, value: Any = None
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value = key, value

    def key(self) -> Any:
        return self._key

    def value(self) -> Any:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000)


class FakeProducer:
    instances: list[FakeProducer] = []
    queue_limit = 100_000
    metadata_error: KafkaError | None = None
    report_error_first: KafkaError | None = None

    def __init__(self, conf: dict[str, Any]) -> None:
        self.conf = conf
        self._lock = threading.Lock()
        self.queue: list[tuple[str, Any, Any, Any]] = []
        # (callback, error, (topic, key, value)) of reports due on the next poll()
        self.reports: list[tuple[Any, KafkaError | None, tuple[str, Any, Any]]] = []
        self.deliver = threading.Event()  # cleared: the "broker" holds every record
        self.deliver.set()
        self.outcome: KafkaError | None = None  # the delivery result for every record
        self.fail_poll: KafkaException | None = None
        self.offset = 0
        self.calls: list[str] = []
        self.commit_error: KafkaException | None = None
        self.fenced = False  # flush() behaves as confluent-kafka's on a fenced producer
        FakeProducer.instances.append(self)

    # producing
    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        timestamp: int = 0,
        headers: Any = None,
    ) -> None:
        # confluent-kafka's signature: the fifth is the callback, on_delivery its alias.
        with self._lock:
            if len(self.queue) >= self.queue_limit:
                raise BufferError("Local: Queue full")
            self.queue.append((topic, value, key, callback or on_delivery))

    def produce_batch(self, topic: str, messages: list[dict[str, Any]], **kwargs: Any) -> int:
        queued = 0
        with self._lock:
            for message in messages:
                if len(self.queue) >= self.queue_limit:
                    message["_error"] = KafkaError(KafkaError._QUEUE_FULL)
                    continue
                self.queue.append(
                    (topic, message.get("value"), message.get("key"), message["callback"])
                )
                queued += 1
        return queued

    def _take(self) -> list[tuple[Any, KafkaError | None, tuple[str, Any, Any]]]:
        with self._lock:
            reports, self.reports = self.reports, []
            if self.deliver.is_set():
                reports += [
                    (cb, self.outcome, (topic, key, value)) for topic, value, key, cb in self.queue
                ]
                self.queue = []
        return reports

    def poll(self, timeout: float = -1) -> int:
        if self.fail_poll is not None:
            error, self.fail_poll = self.fail_poll, None
            raise error
        reports = self._take()
        if not reports:
            time.sleep(min(max(timeout, 0), 0.005))
        for cb, err, (topic, key, value) in reports:
            self.offset += 1
            cb(err, FakeMessage(topic, 0, self.offset, key, value))
        return len(reports)

    def flush(self, timeout: float = -1) -> int:
        if self.fenced:
            # As confluent-kafka does once librdkafka failed fatally: a flush
            # of 200 ms or more runs the reports' callbacks with an exception
            # pending (they die, the reports are lost) and raises SystemError;
            # a shorter one raises the fatal error and leaves them to poll().
            if timeout is None or timeout < 0 or timeout >= 0.2:
                with self._lock:
                    self.queue = []
                raise SystemError("<method 'topic'> returned a result with an exception set")
            raise KafkaException(KafkaError(KafkaError._FENCED, "fenced", fatal=True))
        deadline = time.monotonic() + (1e9 if timeout is None or timeout < 0 else timeout)
        while True:
            self.poll(0)
            if len(self) == 0 or time.monotonic() >= deadline:
                return len(self)
            time.sleep(0.005)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        with self._lock:
            self.reports += [
                (cb, KafkaError(KafkaError._PURGE_QUEUE), (topic, key, value))
                for topic, value, key, cb in self.queue
            ]
            self.queue = []

    def __len__(self) -> int:
        with self._lock:
            return len(self.queue) + len(self.reports)

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        if FakeProducer.metadata_error is not None:
            error = FakeProducer.metadata_error
            if error.code() != KafkaError._TRANSPORT:
                self.conf["error_cb"](error)
            raise KafkaException(KafkaError(KafkaError._TRANSPORT, "Failed to get metadata"))
        return types.SimpleNamespace(topics={}, brokers={1: "fake"})

    def close(self) -> bool:
        self.calls.append("close")
        return True

    # transactions
    def init_transactions(self, timeout: float = -1) -> None:
        self.calls.append("init")

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def commit_transaction(self, timeout: float = -1) -> None:
        self.calls.append("commit")
        if self.commit_error is not None:
            raise self.commit_error

    def abort_transaction(self, timeout: float = -1) -> None:
        self.calls.append("abort")

    def send_offsets_to_transaction(self, *args: Any) -> None:
        self.calls.append("send_offsets")


def fake_module() -> Any:
    """A stand-in for the ``confluent_kafka`` module with the fake producer."""
    return types.SimpleNamespace(
        Producer=FakeProducer,
        KafkaException=KafkaException,
        KafkaError=KafkaError,
        TopicPartition=confluent_kafka.TopicPartition,
    )
