"""KafkaConnector over an in-memory producer: futures, back-pressure, shutdown, fatal errors,
transactions, argument checks, threads. The real broker is in tests/integration/kafka/."""

import logging
import threading

import pytest
from confluent_kafka import KafkaError, KafkaException

from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector, RecordMetadata
from dictamesh_connectors.kafka import producer as producer_module

from .fake import FakeProducer, fake_module


@pytest.fixture(autouse=True)
def fake_driver(monkeypatch):
    monkeypatch.setattr(producer_module, "confluent_kafka", fake_module())
    FakeProducer.instances = []
    FakeProducer.queue_limit = 100_000
    FakeProducer.metadata_error = None
    yield
    FakeProducer.metadata_error = None


def make(**fields):
    kafka = KafkaConnector(KafkaConfig(bootstrap_servers="fake:9092", **fields))
    kafka.connect()
    return kafka


def test_futures_are_resolved_without_the_caller_polling_and_outside_the_lock():
    kafka = make()
    fake = FakeProducer.instances[0]
    fake.deliver.clear()  # the "broker" acknowledges only later, when nobody produces
    seen = []

    def on_done(future):
        seen.append((threading.current_thread().name, kafka._lock._is_owned()))

    future = kafka.produce("orders", b"v", key=b"k", headers={"h": "x"})
    future.add_done_callback(on_done)
    assert not future.done()
    fake.deliver.set()
    meta = future.result(5)  # served by the delivery thread: nobody else polls
    assert isinstance(meta, RecordMetadata) and meta.topic == "orders" and meta.offset == 1
    assert meta.timestamp == 1_700_000_000_000
    assert seen == [("dictamesh-kafka-delivery", False)]
    assert kafka.produce_sync("orders", b"w").offset == 2
    inline = kafka.produce("orders", b"x")
    inline.add_done_callback(on_done)
    inline.result(5)
    assert seen[-1][1] is False  # wherever it ran, never under the connector lock
    assert not future.cancel()  # on its way: not cancellable
    assert kafka.disconnect(5) == 0


def test_delivery_futures_behave_as_futures():
    import concurrent.futures

    kafka = make()
    futures = [kafka.produce("orders", str(i).encode()) for i in range(50)]
    done, pending = concurrent.futures.wait(futures, timeout=5)
    assert len(done) == 50 and not pending
    assert sorted(f.result().offset for f in concurrent.futures.as_completed(futures, 5)) == list(
        range(1, 51)
    )
    late = []
    futures[0].add_done_callback(late.append)  # already done: called at once
    assert late == [futures[0]]
    FakeProducer.instances[0].deliver.clear()
    waiting = kafka.produce("orders", b"w")
    with pytest.raises(concurrent.futures.TimeoutError):
        waiting.result(0.05)  # a waiter made the condition: the slow path notifies it
    FakeProducer.instances[0].deliver.set()
    assert waiting.result(5).offset == 51
    kafka.disconnect(5)


def test_a_failed_delivery_is_a_classified_error():
    kafka = make()
    FakeProducer.instances[0].outcome = KafkaError(KafkaError._MSG_TIMED_OUT)
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"v").result(5)
    err = info.value
    assert err.code is ErrorCode.TIMEOUT and err.transient and err.maybe_applied
    assert err.details == {"kafka_code": "_MSG_TIMED_OUT", "topic": "orders"}
    FakeProducer.instances[0].outcome = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    with pytest.raises(ConnectorError) as info:
        kafka.produce_sync("orders", b"v")
    assert info.value.code is ErrorCode.NOT_FOUND and not info.value.transient
    kafka.disconnect(5)


def test_a_full_queue_makes_produce_wait_for_room():
    FakeProducer.queue_limit = 1
    kafka = make()
    fake = FakeProducer.instances[0]
    fake.deliver.clear()
    first = kafka.produce("orders", b"1")
    second = []
    waiter = threading.Thread(target=lambda: second.append(kafka.produce("orders", b"2")))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not second  # waiting, not failing
    fake.deliver.set()
    waiter.join(10)
    assert not waiter.is_alive()
    assert first.result(5).offset >= 1 and second[0].result(5).offset >= 1
    kafka.disconnect(5)


def test_back_pressure_is_bounded_by_the_timeout():
    FakeProducer.queue_limit = 1
    kafka = make()
    FakeProducer.instances[0].deliver.clear()
    kafka.produce("orders", b"1")
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"2", timeout=0.05)
    err = info.value
    assert err.code is ErrorCode.RESOURCE_EXHAUSTED and err.transient and not err.maybe_applied
    assert err.details["kafka_code"] == "_QUEUE_FULL"
    FakeProducer.instances[0].deliver.set()
    assert kafka.disconnect(5) == 0


def test_disconnect_fails_and_counts_what_was_not_delivered(caplog):
    kafka = make()
    FakeProducer.instances[0].deliver.clear()
    futures = [kafka.produce("orders", b"x") for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="dictamesh_connectors.kafka"):
        assert kafka.disconnect(timeout=0.2) == 5
    for future in futures:
        err = future.exception(5)
        assert isinstance(err, ConnectorError) and err.code is ErrorCode.TIMEOUT
        assert err.details["kafka_code"] == "_PURGE_QUEUE" and not err.maybe_applied
    assert any("5 record(s)" in r.getMessage() for r in caplog.records)
    assert kafka.disconnect() == 0  # idempotent
    with pytest.raises(NotConnectedError):
        kafka.produce("orders", b"late")


def test_a_fatal_producer_error_is_permanent_and_the_producer_is_rebuilt():
    kafka = make()
    fake = FakeProducer.instances[0]
    fake.fail_poll = KafkaException(KafkaError(KafkaError._FATAL, "fenced", fatal=True))
    # The delivery thread meets it on its next poll.
    for _ in range(200):
        if kafka._handle is not None and kafka._handle.fatal is not None:
            break
        threading.Event().wait(0.01)
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"x")
    assert not info.value.transient and info.value.retry_hint is RetryHint.RECONNECT
    assert kafka.produce_sync("orders", b"y").offset == 1
    assert len(FakeProducer.instances) == 2
    kafka.disconnect(5)


def test_flush_of_a_fenced_producer_is_classified_and_loses_no_report():
    kafka = make()
    fake = FakeProducer.instances[0]
    fake.deliver.clear()
    future = kafka.produce("orders", b"x")
    fake.fenced = True
    fake.outcome = KafkaError(KafkaError.INVALID_PRODUCER_EPOCH)
    with pytest.raises(ConnectorError) as info:
        kafka.flush(10)  # confluent-kafka's own flush(10) raises SystemError here
    assert not info.value.transient and info.value.retry_hint is RetryHint.RECONNECT
    assert "fenced" in info.value.message
    err = future.exception(5)  # its report was served (or purged), not lost
    assert isinstance(err, ConnectorError)
    assert kafka.produce_sync("orders", b"y").offset >= 1  # a new producer
    assert len(FakeProducer.instances) == 2
    FakeProducer.instances[1].fenced = True
    FakeProducer.instances[1].deliver.clear()
    pending = kafka.produce("orders", b"z")
    assert kafka.disconnect(1) == 1  # closing serves/purges through poll()
    assert isinstance(pending.exception(5), ConnectorError)


def test_connect_reports_unavailable_or_the_brokers_reason():
    before = set(threading.enumerate())
    FakeProducer.metadata_error = KafkaError(KafkaError._TRANSPORT)
    kafka = KafkaConnector(KafkaConfig(bootstrap_servers="fake:9092", connect_timeout=0.1))
    with pytest.raises(ConnectorError) as info:
        kafka.connect()
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.transient
    assert not kafka.is_connected
    FakeProducer.metadata_error = KafkaError(KafkaError.SASL_AUTHENTICATION_FAILED, "bad pw")
    with pytest.raises(ConnectorError) as info:
        kafka.connect()
    assert info.value.code is ErrorCode.AUTH_FAILED and not info.value.transient
    FakeProducer.metadata_error = None
    kafka.connect()
    kafka.ping(1)
    kafka.disconnect()
    # Only this test's threads: one that another test left running is not ours.
    alive = [t for t in set(threading.enumerate()) - before if t.name == "dictamesh-kafka-delivery"]
    assert alive == []


def test_arguments_are_checked_before_anything_is_queued():
    kafka = make(value_serializer="json")
    for bad_topic in ("", "a" * 250, "has space", "..", "bad/topic"):
        with pytest.raises(ConnectorError) as info:
            kafka.produce(bad_topic, 1)
        assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(TypeError):
        kafka.produce(b"orders", 1)
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", {1, 2})
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", 1, headers={"h": "bad\udc80"})
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    with pytest.raises(TypeError):
        kafka.produce("orders", 1, headers={"h": 3})
    with pytest.raises(TypeError):
        kafka.produce("orders", 1, partition="0")
    with pytest.raises(ConnectorError):
        kafka.produce("orders", 1, partition=2**31)
    with pytest.raises(TypeError):
        kafka.produce("orders", 1, timestamp=1.5)
    with pytest.raises(TypeError):
        kafka.produce("orders", 1, key="text")  # the key serializer is bytes
    assert FakeProducer.instances[0].queue == []
    kafka.disconnect()
    raw = make()
    with pytest.raises(TypeError):
        raw.produce("orders", "a str")  # the bytes serializer
    raw.disconnect()


def test_custom_serializers_and_produce_many():
    kafka = KafkaConnector(
        KafkaConfig(bootstrap_servers="fake:9092"),
        value_serializer=lambda v: str(v * 2).encode(),
        key_serializer=lambda k: None if k is None else k.upper().encode(),
    )
    kafka.connect()
    kafka.produce_sync("orders", 21, key="abc")
    assert FakeProducer.instances[0].offset == 1
    result = kafka.produce_many("orders", [1, 2, 3], keys=["a", "b", "c"]).result(5)
    assert result.delivered == 3 and result.failed == []
    FakeProducer.instances[0].outcome = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
    result = kafka.produce_many("orders", [1, 2]).result(5)
    assert result.delivered == 0 and [i for i, _ in result.failed] == [0, 1]
    assert result.failed[0][1].code is ErrorCode.PAYLOAD_TOO_LARGE
    assert kafka.produce_many("orders", []).result(1).delivered == 0
    with pytest.raises(ConnectorError):
        kafka.produce_many("orders", [1, 2], keys=["a"])
    broken = KafkaConnector(
        KafkaConfig(bootstrap_servers="fake:9092"), value_serializer=lambda v: 1 / 0
    )
    broken.connect()
    with pytest.raises(ConnectorError) as info:
        broken.produce("orders", 1)
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    broken.disconnect()
    kafka.disconnect()


def test_transactions_commit_abort_and_refuse_nesting():
    kafka = make(transactional_id="t1", delivery_timeout=60)
    fake = FakeProducer.instances[0]
    assert fake.calls == ["init"]
    with kafka.transaction():
        kafka.produce("orders", b"x")
    assert fake.calls[-2:] == ["begin", "commit"]
    with pytest.raises(RuntimeError), kafka.transaction():
        raise RuntimeError("boom")
    assert fake.calls[-2:] == ["begin", "abort"]
    with kafka.transaction():
        with pytest.raises(ConnectorError) as info, kafka.transaction():
            pass
        assert info.value.code is ErrorCode.INVALID_REQUEST
    fake.commit_error = KafkaException(
        KafkaError(KafkaError._TIMED_OUT, "abort it", txn_requires_abort=True)
    )
    with pytest.raises(ConnectorError) as info, kafka.transaction():
        pass
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    assert info.value.retry_hint is RetryHint.RETRY_TRANSACTION
    assert fake.calls[-2:] == ["commit", "abort"]
    fake.commit_error = KafkaException(KafkaError(KafkaError.PRODUCER_FENCED, fatal=True))
    with pytest.raises(ConnectorError) as info, kafka.transaction():
        pass
    assert info.value.retry_hint is RetryHint.RECONNECT and not info.value.transient
    with kafka.transaction():  # a new producer, initialised again
        pass
    assert len(FakeProducer.instances) == 2 and FakeProducer.instances[1].calls[0] == "init"
    kafka.disconnect()
    plain = make()
    with pytest.raises(ConnectorError) as info, plain.transaction():
        pass
    assert info.value.code is ErrorCode.INVALID_REQUEST
    plain.disconnect()


def test_32_threads_produce_while_others_connect_and_disconnect():
    kafka = make()
    futures, unexpected = [], []
    lock = threading.Lock()
    stop = threading.Event()

    def producer(n):
        while not stop.is_set():
            try:
                future = kafka.produce("orders", b"x", key=str(n).encode())
            except NotConnectedError:
                continue
            except BaseException as exc:
                unexpected.append(exc)
                return
            with lock:
                futures.append(future)

    def lifecycle():
        for _ in range(20):
            kafka.disconnect(2)
            kafka.connect()

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    cycler = threading.Thread(target=lifecycle)
    cycler.start()
    cycler.join(60)
    stop.set()
    for t in threads:
        t.join(30)
    assert kafka.disconnect(10) == 0
    assert not unexpected, unexpected[:3]
    assert futures
    for future in futures:
        assert future.done()
        err = future.exception(0)
        assert err is None or isinstance(err, ConnectorError)


def test_per_call_timeouts_are_checked_before_any_io():
    from dictamesh_connectors.errors import InvalidConfigError

    kafka = make(transactional_id="t", delivery_timeout=60)
    for call in (
        lambda t: kafka.produce("orders", b"x", timeout=t),
        lambda t: kafka.produce_sync("orders", b"x", timeout=t),
        lambda t: kafka.produce_many("orders", [b"x"], timeout=t),
        lambda t: kafka.flush(timeout=t),
        lambda t: kafka.list_topics(timeout=t),
    ):
        for bad in (float("nan"), -1, 10**9):
            with pytest.raises(InvalidConfigError):
                call(bad)
        with pytest.raises(TypeError):
            call("soon")
    with pytest.raises(InvalidConfigError), kafka.transaction(timeout=float("nan")):
        pass
    assert FakeProducer.instances[0].queue == []
    assert kafka.produce("orders", b"x", timeout=float("inf")).result(5).offset == 1
    kafka.disconnect(5)


def test_a_blank_group_id_is_refused_before_librdkafka_sees_it():
    # librdkafka trims it to nothing, and confluent-kafka then aborts the process.
    kafka = make()
    for group in ("", " ", "\t", "\r\n", "a\x00b"):
        with pytest.raises(ConnectorError) as info:
            kafka.consumer(group, ["orders"])
        assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(TypeError):
        kafka.consumer(b"g", ["orders"])
    kafka.disconnect(5)


def test_consumer_close_logs_a_translated_driver_error_and_is_closed(caplog):
    # A real (offline) librdkafka consumer whose close() is made to fail.
    kafka = KafkaConnector(KafkaConfig(bootstrap_servers="127.0.0.1:9"))
    consumer = kafka.consumer("g", "orders")
    real = consumer._consumer

    class Failing:
        def close(self):
            real.close()
            raise KafkaException(KafkaError(KafkaError._STATE, "refused while closing"))

    consumer._consumer = Failing()
    with caplog.at_level(logging.WARNING):
        consumer.close()
    assert consumer.closed
    [message] = [
        r.getMessage() for r in caplog.records if "refused while closing" in r.getMessage()
    ]
    assert message.startswith("kafka: close consumer g") and "KafkaError{" not in message


def test_an_unsettled_transaction_is_closed_without_confluent_kafkas_unbounded_abort():
    kafka = make(transactional_id="t2", delivery_timeout=60)
    fake = FakeProducer.instances[0]

    def abort(timeout: float = -1) -> None:
        fake.calls.append("abort")
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "no coordinator", retriable=True))

    fake.abort_transaction = abort  # no broker answers
    with pytest.raises(RuntimeError), kafka.transaction(timeout=1):
        raise RuntimeError("give up")
    assert kafka.disconnect(1) == 0
    # Its own bounded abort was tried again; Producer.close() (which aborts
    # once more with no time limit) was not called.
    assert fake.calls.count("abort") == 2 and "close" not in fake.calls
    kafka.connect()
    with kafka.transaction():  # settled: closed as usual
        pass
    kafka.disconnect(1)
    assert FakeProducer.instances[1].calls[-1] == "close"


def test_a_fatal_error_from_produce_itself_rebuilds_the_producer_for_the_next_call():
    kafka = make()
    fake = FakeProducer.instances[0]
    real_produce = fake.produce
    fatal = KafkaException(KafkaError(KafkaError._FATAL, "Unable to produce message"))

    def refuse(*args, **kwargs):
        fake.produce = real_produce
        raise fatal

    fake.produce = refuse
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"x")
    assert not info.value.transient and info.value.retry_hint is RetryHint.RECONNECT
    assert "failed fatally" in info.value.message
    # The caller was told; the very next call gets a new producer (not the stale error).
    assert kafka.produce_sync("orders", b"y").offset >= 1
    assert len(FakeProducer.instances) == 2
    kafka.disconnect(5)
