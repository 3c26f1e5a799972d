"""Fixtures for the Kafka integration tests: the shared broker, unique topics, a private broker.

Every test makes its own topics (``new_topic``) and consumer groups
(``unique``), so tests running at the same time against the shared broker
never see each other's records. Tests that kill or restart a broker, or
need SASL, use ``private_broker`` (see ``broker.py``), never the shared one.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector, KafkaMessage
from tests.conftest import _in_ci
from tests.integration.kafka.broker import PrivateBroker, available

pytestmark = pytest.mark.integration


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; return whether it became true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


@pytest.fixture
def kafka_config(kafka_bootstrap: str) -> KafkaConfig:
    return KafkaConfig(bootstrap_servers=kafka_bootstrap, client_id=unique("it"))


@pytest.fixture
def kafka(kafka_config: KafkaConfig) -> Iterator[KafkaConnector]:
    connector = KafkaConnector(kafka_config)
    connector.connect()
    yield connector
    connector.disconnect(30)


@pytest.fixture
def new_topic(kafka: KafkaConnector) -> Iterator[Callable[..., str]]:
    """``new_topic(partitions=1)``: create a uniquely named topic; deleted afterwards."""
    made: list[str] = []

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique("topic")
        kafka.create_topic(name, partitions=partitions, config=config)
        made.append(name)
        return name

    yield make
    if kafka.is_connected:
        for name in made:
            with contextlib.suppress(Exception):
                kafka.delete_topic(name)


def read_all(
    kafka: KafkaConnector, topic: str, expected: int, *, timeout: float = 120.0, **options: object
) -> list[KafkaMessage]:
    """Read ``topic`` from the start with a fresh group until ``expected`` records came
    (or ``timeout`` passed, or 5 s went by with nothing new after that many)."""
    messages: list[KafkaMessage] = []
    deadline = time.monotonic() + timeout
    with kafka.consumer(unique("reader"), [topic], **options) as consumer:
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, 1.0)
            if batch:
                messages += batch
                quiet_since = time.monotonic()
            elif len(messages) >= expected and time.monotonic() - quiet_since > 3.0:
                break
    return messages


@pytest.fixture(scope="session")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    """A broker of our own (PLAINTEXT + SASL/SCRAM listeners) that tests may kill and restart."""
    reason = available()
    if reason is not None:
        if _in_ci():
            pytest.fail(f"CI=true: cannot start a private Kafka broker: {reason}")
        pytest.skip(f"cannot start a private Kafka broker: {reason}")
    broker = PrivateBroker(Path(tmp_path_factory.mktemp("kafka-private")))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def kcat_path() -> str | None:
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        for name in ("kcat", "kafkacat"):
            candidate = Path(directory) / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None
