"""A broker SIGKILLed and restarted under load loses nothing and duplicates nothing;
a disconnect while no broker answers fails every pending future, none silently (and
ping() meanwhile is UNAVAILABLE).

These run against ``private_broker`` (our own broker process), never the
shared one.
"""

from __future__ import annotations

import threading
import time

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

from .conftest import read_all, unique, wait_for

pytestmark = pytest.mark.integration

TOTAL = 50_000
THREADS = 4


def test_sigkill_and_restart_while_producing_50k_idempotent_records(private_broker):
    config = KafkaConfig(bootstrap_servers=private_broker.bootstrap, client_id=unique("restart"))
    assert config.enable_idempotence and config.acks == "all"
    kafka = KafkaConnector(config)
    kafka.connect()
    topic = unique("restart")
    kafka.create_topic(topic, partitions=3)
    futures: dict[int, object] = {}
    lock = threading.Lock()
    produced = threading.Event()
    errors: list[BaseException] = []

    def produce(n: int) -> None:
        try:
            for i in range(n, TOTAL, THREADS):
                future = kafka.produce(topic, str(i).encode(), key=str(i % 97).encode())
                with lock:
                    futures[i] = future
                if i % 2000 == 0:
                    time.sleep(0.05)  # spread the load over the kill and the restart
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    # Kill once some records are acknowledged and many are still coming.
    assert wait_for(lambda: sum(1 for f in list(futures.values()) if f.done()) > 5_000, 120)
    private_broker.kill()
    killed_at = len(futures)
    time.sleep(2.0)
    private_broker.start()
    for t in threads:
        t.join(300)
    produced.set()
    assert not errors, errors[:3]
    assert killed_at < TOTAL, "the kill came after everything was produced"
    assert kafka.flush(300) == 0
    failed = {}
    for i, future in futures.items():
        assert future.done()
        exc = future.exception(0)
        if exc is not None:
            assert isinstance(exc, ConnectorError) and exc.transient, exc
            failed[i] = exc
    # Re-send what failed (a transient error), then check exactly one copy of each.
    for i in failed:
        kafka.produce_sync(topic, str(i).encode(), key=str(i % 97).encode())
    messages = read_all(kafka, topic, TOTAL, timeout=180)
    values = [m.value for m in messages]
    assert len(values) == len(set(values)), "duplicates after the restart"
    assert set(values) == {str(i).encode() for i in range(TOTAL)}
    assert kafka.disconnect(30) == 0


def test_disconnect_without_a_broker_fails_every_pending_future(private_broker, caplog):
    config = KafkaConfig(bootstrap_servers=private_broker.bootstrap, client_id=unique("down"))
    kafka = KafkaConnector(config)
    kafka.connect()
    topic = unique("down")
    kafka.create_topic(topic)
    assert kafka.produce_sync(topic, b"before").offset == 0
    private_broker.kill()
    try:
        futures = [kafka.produce(topic, str(i).encode()) for i in range(100)]
        with pytest.raises(ConnectorError) as down:  # no broker answers: ping says so
            kafka.ping(timeout=1.0)
        assert down.value.code is ErrorCode.UNAVAILABLE and down.value.transient
        undelivered = kafka.disconnect(timeout=1.0)
    finally:
        private_broker.start()
    assert undelivered == 100
    for future in futures:
        exc = future.exception(0)
        assert isinstance(exc, ConnectorError) and exc.code is ErrorCode.TIMEOUT
        assert exc.details["kafka_code"] in ("_PURGE_QUEUE", "_PURGE_INFLIGHT")
        assert exc.maybe_applied is (exc.details["kafka_code"] == "_PURGE_INFLIGHT")
    assert any("100 record(s)" in r.getMessage() for r in caplog.records)


def test_a_transactional_disconnect_returns_with_no_broker_and_the_transaction_unsettled(
    private_broker, caplog
):
    config = KafkaConfig(
        bootstrap_servers=private_broker.bootstrap,
        client_id=unique("txn-down"),
        transactional_id=unique("txn-down"),
        delivery_timeout=30,
    )
    kafka = KafkaConnector(config)
    kafka.connect()
    topic = unique("txn-down")
    kafka.create_topic(topic)
    returned: list[int] = []
    try:
        with pytest.raises(RuntimeError), kafka.transaction(timeout=2.0):
            kafka.produce_sync(topic, b"in the transaction")  # the coordinator knows it
            private_broker.kill()
            raise RuntimeError("give up")  # the abort cannot reach the coordinator
        # confluent-kafka's Producer.close() would abort again with no time
        # limit, and never return while no broker answers.
        closer = threading.Thread(
            target=lambda: returned.append(kafka.disconnect(timeout=3.0)), daemon=True
        )
        closer.start()
        closer.join(120)
        assert not closer.is_alive(), "disconnect() blocked: no broker, transaction unsettled"
    finally:
        private_broker.start()
    assert returned == [0]
    assert any("not settled" in r.getMessage() for r in caplog.records)
