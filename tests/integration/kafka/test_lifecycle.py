"""Lifecycle against real brokers: connect errors, leaks, fork, the exit hook, SASL and secrets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from dictamesh_connectors.errors import AuthenticationError, ConnectorError, ErrorCode
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector
from tests.conftest import REPO_ROOT
from tests.forking import run_in_child
from tests.integration.kafka.broker import SCRAM_PASSWORD, SCRAM_USER
from tests.secretscan import SecretScan

from .conftest import read_all, unique

pytestmark = pytest.mark.integration


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def test_an_unreachable_bootstrap_server_is_unavailable_within_the_timeout():
    kafka = KafkaConnector(
        KafkaConfig(bootstrap_servers=f"127.0.0.1:{_closed_port()}", connect_timeout=2)
    )
    start = time.monotonic()
    with pytest.raises(ConnectorError) as info:
        kafka.connect()
    elapsed = time.monotonic() - start
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.transient
    assert "within 2s" in info.value.message
    assert elapsed < 2 + 5  # the configured bound (plus slack for a loaded machine)
    assert not kafka.is_connected
    assert not [t for t in threading.enumerate() if t.name == "dictamesh-kafka-delivery"]


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_200_connect_disconnect_cycles_leak_no_threads_or_fds(kafka_config, new_topic):
    topic = new_topic()
    kafka = KafkaConnector(kafka_config)
    for _ in range(3):  # warm up (librdkafka's one-time globals)
        kafka.connect()
        kafka.produce_sync(topic, b"warm")
        kafka.disconnect(10)
    fds, threads = _fds(), _threads()
    for i in range(200):
        kafka.connect()
        if i % 20 == 0:
            kafka.produce_sync(topic, str(i).encode())
            kafka.list_topics()
        assert kafka.disconnect(10) == 0
    assert _threads() <= threads, (threads, _threads())
    assert _fds() <= fds, (fds, _fds())


def test_fork_child_builds_its_own_producer_and_the_parent_keeps_working(kafka, new_topic):
    topic = new_topic()
    parent_before = kafka.produce_sync(topic, b"parent-before")

    def child() -> bool:
        meta = kafka.produce_sync(topic, f"child-{os.getpid()}".encode(), timeout=30)
        return meta.offset > parent_before.offset and kafka.disconnect(10) == 0

    assert run_in_child(child) == 0
    assert kafka.produce_sync(topic, b"parent-after").offset >= 2
    values = sorted(m.value for m in read_all(kafka, topic, 3))
    assert values[0].startswith(b"child-") and values[1:] == [b"parent-after", b"parent-before"]


def test_garbage_consumers_are_never_destroyed_in_a_forked_child(kafka, new_topic):
    import gc

    topic = new_topic()
    gc.disable()  # keep the dropped consumers uncollected until the child runs
    try:
        for _ in range(3):
            # Joined its group (librdkafka threads running), never closed, dropped.
            kafka.consumer(unique("dropped"), [topic]).poll(1.0)
        kept = kafka.consumer(unique("kept"), [topic])

        def child() -> bool:
            gc.collect()  # would destroy the parent's librdkafka handles here
            return True

        assert run_in_child(child) == 0
        kept.close()
    finally:
        gc.enable()


def test_a_consumer_made_before_fork_is_refused_in_the_child(kafka, new_topic):
    topic = new_topic()
    consumer = kafka.consumer(unique("fork"), [topic])

    def child() -> bool:
        try:
            consumer.poll(0.1)
        except ConnectorError as err:
            return err.code is ErrorCode.NOT_CONNECTED
        return False

    try:
        assert run_in_child(child) == 0
        assert consumer.poll(0.1) is None  # the parent's consumer still works
    finally:
        consumer.close()


def test_the_exit_hook_flushes_a_connector_left_connected(kafka, kafka_bootstrap, new_topic):
    topic = new_topic()
    script = textwrap.dedent(
        f"""
        import logging
        logging.basicConfig(level=logging.INFO)
        from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector
        kafka = KafkaConnector(KafkaConfig(bootstrap_servers={kafka_bootstrap!r}, linger_ms=3000))
        kafka.connect()
        for i in range(500):
            kafka.produce({topic!r}, str(i).encode())
        # No disconnect(), and the last reference dropped: the records still
        # linger in the local queue, and the connector must not be collected.
        del kafka
        import gc
        gc.collect()
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert "interpreter exit: flushing" in result.stderr.decode()
    values = {m.value for m in read_all(kafka, topic, 500)}
    assert values == {str(i).encode() for i in range(500)}


def _sasl_config(broker, password: str) -> KafkaConfig:
    return KafkaConfig(
        bootstrap_servers=broker.sasl_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        username=SCRAM_USER,
        password=password,
        connect_timeout=15,
    )


def test_sasl_scram_with_the_right_and_a_wrong_password(private_broker):
    with KafkaConnector(_sasl_config(private_broker, SCRAM_PASSWORD)) as kafka:
        topic = unique("sasl")
        kafka.create_topic(topic)
        assert kafka.produce_sync(topic, b"authenticated").offset == 0
    marker = "Wrong-Pa55-MARKER-" + unique("x")
    kafka = KafkaConnector(_sasl_config(private_broker, marker))
    with SecretScan() as scan:
        start = time.monotonic()
        with pytest.raises(ConnectorError) as info:
            kafka.connect()
        elapsed = time.monotonic() - start
    err = info.value
    assert isinstance(err, AuthenticationError) and err.code is ErrorCode.AUTH_FAILED
    assert not err.transient
    assert elapsed < 15  # refused by the broker: reported at once, not at the timeout
    scan.assert_clean(
        marker,
        err,
        texts=[
            repr(kafka),
            repr(kafka.config),
            str(kafka.config),
            kafka.config.connection_string(),
        ],
    )


def test_the_sasl_password_never_shows_while_working(private_broker, caplog):
    marker = SCRAM_PASSWORD
    with SecretScan() as scan:
        kafka = KafkaConnector(_sasl_config(private_broker, marker))
        kafka.connect()
        topic = unique("sasl")
        kafka.create_topic(topic)
        kafka.produce_sync(topic, b"x")
        with pytest.raises(ConnectorError) as info:
            kafka.produce(unique("missing"), b"x").result(30)
        texts = [repr(kafka), repr(kafka.config), kafka.config.connection_string()]
        kafka.disconnect(10)
    scan.assert_clean(marker, info.value, texts=texts)
