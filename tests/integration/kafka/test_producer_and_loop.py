"""On the real broker: back-pressure of a full local queue, where delivery callbacks run,
run()'s retries of transient handler errors, commit(asynchronous=True) and the
auto_offset_reset override."""

from __future__ import annotations

import threading
import time

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, RetryHint
from dictamesh_connectors.kafka import KafkaConnector, KafkaMessage
from dictamesh_connectors.retry import RetryPolicy

from .conftest import read_all, unique, wait_for

pytestmark = pytest.mark.integration


def test_a_full_local_queue_makes_produce_wait_then_fail_resource_exhausted(
    kafka_config, kafka, new_topic
):
    topic = new_topic()
    small = kafka_config.evolve(producer_options={"queue.buffering.max.messages": 5})
    # Room comes back as records are delivered: 300 records through a queue
    # of 5 all go, produce() waiting for room instead of failing.
    with KafkaConnector(small) as k:
        futures = [k.produce(topic, f"{i}".encode()) for i in range(300)]
        assert all(f.result(60).offset >= 0 for f in futures)
    assert len(read_all(kafka, topic, 300)) == 300
    # Records that linger (linger_ms 3 s) keep the queue full: the sixth
    # produce() waits its timeout, then fails, transient; nothing is lost.
    lingering = small.evolve(linger_ms=3000)
    with KafkaConnector(lingering) as k:
        queued = [k.produce(topic, b"lingering") for _ in range(5)]
        with pytest.raises(ConnectorError) as info:
            k.produce(topic, b"no room", timeout=0.3)
        assert info.value.code is ErrorCode.RESOURCE_EXHAUSTED and info.value.transient
        assert info.value.details["kafka_code"] == "_QUEUE_FULL"
        assert k.flush(30) == 0
        assert all(f.result(0).offset >= 0 for f in queued)


def test_delivery_callbacks_run_outside_the_connector_lock(kafka, new_topic):
    topic = new_topic()
    seen: list[tuple[str, bool]] = []

    def on_done(future: object) -> None:
        seen.append((threading.current_thread().name, kafka._lock._is_owned()))

    # Nobody produces after it: the delivery thread serves its report.
    kafka.produce(topic, b"alone").add_done_callback(on_done)
    assert wait_for(lambda: len(seen) == 1, 30)
    assert seen[0] == ("dictamesh-kafka-delivery", False)
    # While records flow, produce() serves the reports inline, still unlocked.
    futures = [kafka.produce(topic, b"%d" % i) for i in range(2000)]
    for future in futures:
        future.add_done_callback(on_done)
    assert kafka.flush(30) == 0
    assert wait_for(lambda: len(seen) == 2001, 30)
    assert not any(locked for _, locked in seen)


def _transient(message: str) -> ConnectorError:
    return ConnectorError(message, code=ErrorCode.UNAVAILABLE, transient=True)


def test_run_retries_transient_handler_errors_then_commits(kafka, new_topic):
    topic = new_topic()
    for value in (b"a", b"flaky", b"c"):
        kafka.produce(topic, value)
    assert kafka.flush(30) == 0
    attempts: dict[bytes, list[float]] = {}
    stop = threading.Event()

    def handler(message: KafkaMessage) -> None:
        tries = attempts.setdefault(message.value, [])  # type: ignore[arg-type]
        tries.append(time.monotonic())
        if message.value == b"flaky" and len(tries) < 3:
            raise _transient("the downstream service is busy")
        if len(attempts) == 3:
            stop.set()

    group = unique("retry")
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.05, jitter=False)
    retried: list[tuple[str, int, str]] = []

    class Listener:
        def on_retry(self, connector, operation, attempt, wait, error):  # type: ignore[no-untyped-def]
            retried.append((str(operation), attempt, error.code.value))

    before = kafka.stats().retries
    listener = Listener()
    kafka.add_listener(listener)
    try:
        result = kafka.consumer(group, topic).run(
            handler, stop_event=stop, retry=policy, handle_sigterm=False
        )
    finally:
        kafka.remove_listener(listener)
    assert [len(attempts[v]) for v in (b"a", b"flaky", b"c")] == [1, 3, 1]
    # The handler's two retries are the connector's: counted and reported.
    assert kafka.stats().retries - before == 2
    assert [(op, n) for op, n, _ in retried] == [("process", 1), ("process", 2)]
    gaps = [b - a for a, b in zip(attempts[b"flaky"], attempts[b"flaky"][1:], strict=False)]
    assert all(gap > 0 for gap in gaps)  # waited between attempts (the backoff), in order
    assert result.processed == 3 and result.dead_lettered == 0
    with kafka.consumer(group, topic) as after:  # all three committed
        assert after.consume(10, 3.0) == []


def test_run_propagates_exhausted_retries_after_committing_what_finished(kafka, new_topic):
    topic = new_topic()
    for value in (b"done", b"down", b"later"):
        kafka.produce(topic, value)
    assert kafka.flush(30) == 0
    handled: list[bytes] = []

    def handler(message: KafkaMessage) -> None:
        if message.value == b"down":
            raise _transient("still down")
        handled.append(message.value)  # type: ignore[arg-type]

    group = unique("exhausted")
    consumer = kafka.consumer(group, topic)
    policy = RetryPolicy(max_attempts=2, initial_backoff=0.01)
    with pytest.raises(ConnectorError) as info:
        consumer.run(handler, retry=policy, max_messages=1, handle_sigterm=False)
    assert info.value.transient and info.value.retry_hint is RetryHint.RETRY
    assert consumer.closed and handled == [b"done"]
    with kafka.consumer(group, topic) as after:  # "down" is redelivered, "done" is not
        first = None
        for _ in range(30):
            first = after.poll(1.0)
            if first is not None:
                break
    assert first is not None and first.value == b"down"


def test_commit_asynchronous_and_the_offset_reset_override(kafka, new_topic):
    topic = new_topic()
    kafka.produce_sync(topic, b"before")
    group = unique("async")
    with kafka.consumer(group, topic, auto_offset_reset="latest") as late:
        # A new group reading from the end misses what was produced before it
        # (records are produced until its position is set and one arrives).
        message = None
        for i in range(30):
            kafka.produce_sync(topic, b"after-%d" % i)
            message = late.poll(1.0)
            if message is not None:
                break
        assert message is not None and message.value.startswith(b"after-")  # type: ignore[union-attr]
        late.commit(message, asynchronous=True)
        kafka.produce_sync(topic, b"next")
        assert late.poll(10.0) is not None  # serves the asynchronous commit's result
    with kafka.consumer(group, topic) as resumed:  # the asynchronous commit was made
        nxt = None
        for _ in range(30):
            nxt = resumed.poll(1.0)
            if nxt is not None:
                break
    assert nxt is not None and nxt.value == b"next"
