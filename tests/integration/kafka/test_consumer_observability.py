"""The Kafka consumer's calls in the connector's events and stats (issue #13): one
``poll``/``consume`` operation per call (with the record count), ``commit``, and in
``run()`` ``consume`` per batch, ``process`` per handled record, ``commit``, ``run``;
never registered as the connector's in-flight operations."""

from __future__ import annotations

import threading
import time

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.kafka import KafkaConnector, KafkaMessage
from tests.integration.kafka.conftest import unique

pytestmark = pytest.mark.integration


class Recorder:
    """Every on_operation / on_error event, with what the Operation carries."""

    def __init__(self) -> None:
        self.operations: list[tuple[str, str, str | None, int | None, str | None]] = []
        self.errors: list[tuple[str, str]] = []
        self.threads: set[int] = set()

    def on_operation(self, connector, operation, duration, error) -> None:
        assert duration >= 0
        self.threads.add(threading.get_ident())
        self.operations.append(
            (
                str(operation),
                getattr(operation, "target", ""),
                getattr(operation, "group", None),
                getattr(operation, "records", None),
                error.code.value if error is not None else None,
            )
        )

    def on_error(self, connector, operation, error) -> None:
        self.errors.append((str(operation), error.code.value))

    def of(self, name: str) -> list[tuple[str, str, str | None, int | None, str | None]]:
        return [op for op in self.operations if op[0] == name]


def _produce(kafka: KafkaConnector, topic: str, values: list[bytes]) -> None:
    for value in values:
        kafka.produce(topic, value)
    assert kafka.flush(30) == 0


def test_poll_consume_and_commit_are_counted_and_reported(kafka, new_topic):
    topic = new_topic()
    _produce(kafka, topic, [str(i).encode() for i in range(6)])
    recorder = Recorder()
    kafka.add_listener(recorder)
    before = kafka.stats()
    group = unique("obs")
    calls = 0
    with kafka.consumer(group, topic) as consumer:
        first = None
        while first is None:
            first = consumer.poll(5.0)
            calls += 1
        rest: list[KafkaMessage] = []
        batches = 0
        while len(rest) < 5:
            rest += consumer.consume(10, 2.0)
            batches += 1
        consumer.commit()
    kafka.remove_listener(recorder)
    polls, consumes, commits = recorder.of("poll"), recorder.of("consume"), recorder.of("commit")
    assert len(polls) == calls and len(consumes) == batches and len(commits) == 1
    # The poll that returned the record names its topic and counts it; empty ones count 0.
    assert polls[-1] == ("poll", topic, group, 1, None)
    assert all(op[3] == 0 for op in polls[:-1])
    assert sum(op[3] for op in consumes) == 5
    assert all(op[1] == topic for op in consumes if op[3])
    assert all(op[2] == group for op in consumes)
    assert commits == [("commit", topic, group, None, None)]
    after = kafka.stats()
    assert after.operations - before.operations == calls + batches + 1
    assert after.in_flight == 0


def test_a_failed_poll_counts_its_error_code(kafka):
    recorder = Recorder()
    kafka.add_listener(recorder)
    before = kafka.stats().errors.get("NOT_FOUND", 0)
    with (
        kafka.consumer(unique("g"), [unique("missing")]) as consumer,
        pytest.raises(ConnectorError) as info,
    ):
        for _ in range(30):
            consumer.poll(1.0)
    kafka.remove_listener(recorder)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert kafka.stats().errors["NOT_FOUND"] == before + 1
    assert recorder.of("poll")[-1][4] == "NOT_FOUND"
    assert recorder.errors == [("poll", "NOT_FOUND")]


def test_counted_without_any_listener(kafka, new_topic):
    topic = new_topic()
    _produce(kafka, topic, [b"x"])
    before = kafka.stats().operations
    with kafka.consumer(unique("quiet"), topic) as consumer:
        got: list[KafkaMessage] = []
        calls = 0
        while not got:
            got = consumer.consume(10, 2.0)
            calls += 1
    assert kafka.stats().operations - before == calls


def test_run_reports_consume_process_commit_and_run(kafka, new_topic):
    topic, dlq = new_topic(), new_topic()
    _produce(kafka, topic, [b"a", b"poison", b"c"])
    recorder = Recorder()
    kafka.add_listener(recorder)
    before = kafka.stats()
    stop = threading.Event()
    seen: list[bytes] = []

    def handler(message: KafkaMessage) -> None:
        seen.append(message.value)  # type: ignore[arg-type]
        if len(seen) == 3:
            stop.set()
        if message.value == b"poison":
            raise ValueError("not for us")

    group = unique("loop")
    result = kafka.consumer(group, topic).run(
        handler, stop_event=stop, dead_letter_topic=dlq, handle_sigterm=False
    )
    kafka.remove_listener(recorder)
    assert result.processed == 3 and result.dead_lettered == 1
    process = recorder.of("process")
    assert [op[4] for op in process] == [None, "EXEC_FAILED", None]
    assert all(op[1] == topic and op[2] == group for op in process)
    assert sum(op[3] or 0 for op in recorder.of("consume")) == 3
    assert len(recorder.of("commit")) == result.commits >= 1
    assert recorder.of("run") == [("run", topic, group, None, None)]
    assert ("process", "EXEC_FAILED") in recorder.errors
    after = kafka.stats()
    assert after.errors.get("EXEC_FAILED", 0) == before.errors.get("EXEC_FAILED", 0) + 1
    # consume batches + 3 process + commits + 1 run + the dead-letter produce
    assert after.operations - before.operations == len(recorder.operations)


def test_a_blocked_poll_is_not_an_in_flight_operation_of_the_connector(kafka, new_topic):
    """disconnect() must not wait for a consumer: its calls are never in flight."""
    topic = new_topic()
    polling = threading.Event()
    done = threading.Event()
    result: list[object] = []

    def consume() -> None:
        with kafka.consumer(unique("idle"), topic) as consumer:
            polling.set()
            result.append(consumer.poll(3.0))
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    assert polling.wait(30)
    time.sleep(0.5)  # well inside the 3 s poll
    in_flight = kafka.stats().in_flight
    threads = kafka._in_flight_threads()
    kafka.disconnect(30)
    thread.join(30)
    assert done.is_set() and result == [None]
    assert in_flight == 0 and threads == {}
