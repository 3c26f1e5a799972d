"""Kafka connector through FaultProxy against a real (private) broker.

A Kafka client bootstraps, then connects to the address each broker
advertises; through a plain proxy it would leave the proxy after the first
metadata answer. So these tests start a private broker (``broker.py``)
whose PLAINTEXT listener is advertised at the proxy's port: every client
connection, metadata, produce, fetch and group coordination, goes through
the proxy (the broker's own inter-broker traffic uses another listener).
The shared broker is never touched.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector
from dictamesh_connectors.testing.faultproxy import FaultProxy
from tests.conftest import _in_ci
from tests.integration.faultproxy.conftest import bounded, wait_for
from tests.integration.kafka.broker import PrivateBroker, available
from tests.integration.kafka.conftest import read_all, unique

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def proxied_broker(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[PrivateBroker, FaultProxy]]:
    """A private broker advertised at a FaultProxy's port, and that proxy."""
    reason = available()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI=true: cannot start a private Kafka broker: {reason}")
        pytest.skip(f"cannot start a private Kafka broker: {reason}")
    listen_port = _free_port()
    broker = PrivateBroker(
        Path(tmp_path_factory.mktemp("kafka-private-proxied")), advertised_port=listen_port
    )
    with FaultProxy(upstream=("127.0.0.1", broker.port), listen_port=listen_port) as proxy:
        try:
            broker.start()
            yield broker, proxy
        finally:
            broker.stop()


@pytest.fixture
def proxy(proxied_broker: tuple[PrivateBroker, FaultProxy]) -> Iterator[FaultProxy]:
    proxy = proxied_broker[1]
    proxy.clear()
    yield proxy
    proxy.clear()


@pytest.fixture
def connect(proxy: FaultProxy) -> Iterator[Callable[..., KafkaConnector]]:
    made: list[KafkaConnector] = []

    def build(*, start: bool = True, **overrides: Any) -> KafkaConnector:
        fields: dict[str, Any] = {
            "bootstrap_servers": f"{proxy.host}:{proxy.port}",
            "client_id": unique("fp"),
            "connect_timeout": 3.0,
            "request_timeout": 3.0,
            "delivery_timeout": 6.0,
            "transaction_timeout": 10.0,
            "linger_ms": 0.0,
        }
        fields.update(overrides)
        connector = KafkaConnector(KafkaConfig(**fields))
        made.append(connector)
        if start:
            connector.connect()
        return connector

    yield build
    proxy.clear()
    for connector in made:
        connector.disconnect(10)


@pytest.fixture
def topic(connect: Callable[..., KafkaConnector]) -> str:
    admin = connect(client_id=unique("admin"))
    name = unique("fp")
    admin.create_topic(name, partitions=1)
    return name


def test_every_connection_goes_through_the_proxy(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect()
    before = proxy.stats.bytes_upstream
    kafka.produce_sync(topic, b"through")
    assert proxy.stats.bytes_upstream > before
    messages = read_all(kafka, topic, 1, timeout=60)
    assert [m.value for m in messages] == [b"through"]


def test_blackhole_delivery_times_out_maybe_applied(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect()
    kafka.produce_sync(topic, b"warm")
    proxy.blackhole(True)
    err = bounded(lambda: kafka.produce_sync(topic, b"held")).error
    assert isinstance(err, ConnectorTimeoutError), err
    assert err.code is ErrorCode.TIMEOUT and err.transient and err.maybe_applied
    proxy.clear()
    # the reconnect path: the same connector delivers again
    assert wait_for(lambda: bounded(lambda: kafka.produce_sync(topic, b"after")).error is None, 60)


def test_connect_through_a_blackhole_fails_in_time(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy
) -> None:
    proxy.blackhole(True)
    kafka = connect(start=False)
    err = bounded(kafka.connect).error
    assert isinstance(err, ConnectorError), err
    assert err.code in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_FAILED), err
    assert err.transient and not err.maybe_applied
    proxy.clear()
    assert bounded(kafka.connect).error is None


def test_refused_connect_is_transient_and_not_sent(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy
) -> None:
    proxy.refuse(True)
    kafka = connect(start=False)
    err = bounded(kafka.connect).error
    assert isinstance(err, ConnectorError), err
    assert err.code in (ErrorCode.UNAVAILABLE, ErrorCode.CONNECTION_FAILED, ErrorCode.TIMEOUT), err
    assert err.transient and not err.maybe_applied
    proxy.refuse(False)
    assert bounded(kafka.connect).error is None


def test_refused_while_producing_times_out_then_delivers(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect()
    kafka.produce_sync(topic, b"warm")
    proxy.refuse(True)
    proxy.reset_connections()
    err = bounded(lambda: kafka.produce_sync(topic, b"refused")).error
    assert isinstance(err, ConnectorError), err
    assert err.transient and err.code in (ErrorCode.TIMEOUT, ErrorCode.UNAVAILABLE), err
    proxy.refuse(False)
    assert wait_for(lambda: bounded(lambda: kafka.produce_sync(topic, b"back")).error is None, 60)


def test_resets_while_producing_lose_and_duplicate_nothing(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    """The idempotent producer rides over resets: every record once, no error."""
    kafka = connect(delivery_timeout=60.0, request_timeout=5.0, transaction_timeout=60.0)
    total = 300
    futures = []
    stop = threading.Event()

    def resetter() -> None:
        # A few resets, spaced so that librdkafka can reconnect in between
        # (its reconnect backoff grows while connections keep dying).
        for _ in range(6):
            if stop.wait(0.5):
                return
            proxy.reset_connections()

    thread = threading.Thread(target=resetter, daemon=True)
    thread.start()
    try:
        for number in range(total):  # spread over the resets (about 3 s)
            futures.append(kafka.produce(topic, str(number).encode()))
            time.sleep(0.01)
        thread.join(30)
        errors = [future.exception(timeout=120) for future in futures]
    finally:
        stop.set()
        thread.join(10)
    assert errors == [None] * total
    assert proxy.stats.faults["reset"] > 0
    values = sorted(int(m.value) for m in read_all(kafka, topic, total, timeout=120))
    assert values == list(range(total))  # nothing lost, nothing twice


def test_reset_while_consuming_recovers(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect()
    for number in range(20):
        kafka.produce(topic, str(number).encode())
    assert kafka.flush(30) == 0
    seen: list[bytes] = []
    errors: list[ConnectorError] = []
    with kafka.consumer(unique("g"), [topic]) as consumer:
        deadline = time.monotonic() + 120
        while len(set(seen)) < 20 and time.monotonic() < deadline:
            # (a consumer is confined to its thread: consume's own timeout bounds it)
            try:
                batch = consumer.consume(5, timeout=1.0)
            except ConnectorError as err:
                # a reset may surface as a classified, transient error: go on
                assert err.transient, err
                errors.append(err)
                continue
            seen.extend(m.value for m in batch)
            if len(seen) >= 5 and proxy.stats.faults["reset"] == 0:
                proxy.reset_connections()
    # at-least-once: every record arrives (one may come twice after the reset)
    assert {int(v) for v in seen} == set(range(20)), (seen, errors)
    assert proxy.stats.faults["reset"] >= 1


def test_latency_still_delivers(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect(delivery_timeout=30.0, request_timeout=10.0, transaction_timeout=30.0)
    proxy.set_latency(0.05, jitter=0.02)
    proxy.set_bandwidth(1_000_000)
    for number in range(10):
        assert kafka.produce_sync(topic, str(number).encode()).offset >= 0
    assert proxy.stats.faults["latency"] > 0
    values = [int(m.value) for m in read_all(kafka, topic, 10, timeout=120)]
    assert values == list(range(10))


def test_disconnect_through_a_blackhole_fails_pending_records(
    connect: Callable[..., KafkaConnector], proxy: FaultProxy, topic: str
) -> None:
    kafka = connect(start=False, delivery_timeout=60.0, transaction_timeout=60.0)
    kafka.connect()
    kafka.produce_sync(topic, b"warm")
    proxy.blackhole(True)
    future = kafka.produce(topic, b"pending")
    outcome = bounded(lambda: kafka.disconnect(2))
    assert outcome.error is None, outcome.error
    assert outcome.result == 1  # one record could not be delivered: counted, not dropped
    err = future.exception(timeout=30)
    assert isinstance(err, ConnectorError), err  # failed, never silently lost
    assert err.transient and err.maybe_applied
