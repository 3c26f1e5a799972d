"""The conformance suite on KafkaConnector, against the shared broker (``kafka_bootstrap``).

The connector is transactional: its slow operation is a transaction held
open (one record produced, then a pause) for the requested time, in flight
on the connector all along; one transaction runs at a time per producer, so
the drain checks run one slow operation beside the hammering threads. The
marker secret is a SASL password offered to the PLAINTEXT listener, so the
secret check scans a refused connection.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance
from dictamesh_connectors.testing.conformance.suite import closed_port

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-kafka-conformance"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class TestKafkaConformance(ConnectorConformance):
    connector_class = KafkaConnector
    secret_marker = MARKER
    concurrent_slow_operations = 1
    # One transaction at a time per producer: the slow operation (a transaction
    # held open) holds the transaction lock by design; ping() and operation()
    # do not take it, and are still checked to complete meanwhile.
    locks_held_across_io = ("_txn_lock",)

    @pytest.fixture(autouse=True)
    def _topic(self, kafka_bootstrap: str) -> Iterator[None]:
        self.bootstrap = kafka_bootstrap
        self.topic = unique("conformance")
        admin = KafkaConnector(KafkaConfig(bootstrap_servers=kafka_bootstrap))
        admin.connect()
        try:
            admin.create_topic(self.topic)
            yield
        finally:
            try:
                admin.delete_topic(self.topic)
            finally:
                admin.disconnect(30)

    def make_config(self) -> BaseConfig:
        return KafkaConfig(
            bootstrap_servers=self.bootstrap,
            client_id=unique("conformance"),
            transactional_id=unique("conformance-txn"),
            delivery_timeout=60,
            retry=RetryPolicy(max_attempts=3, initial_backoff=0.01),
        )

    def secret_config(self) -> BaseConfig:
        return self.make_config().evolve(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            username="conformance",
            password=MARKER,
            connect_timeout=3,
        )

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(
            bootstrap_servers=f"127.0.0.1:{closed_port()}",
            connect_timeout=1,
            retry=RetryPolicy.no_retry(),
        )

    def operation(self, connector: KafkaConnector) -> object:
        return connector.describe_topic(self.topic)

    def slow_operation(self, connector: KafkaConnector, seconds: float) -> object:
        with connector.transaction():
            connector.produce(self.topic, b"conformance")
            time.sleep(seconds)
        return None

    def failing_operation(self, connector: KafkaConnector) -> object:
        return connector.describe_topic(unique("no-such-topic"))
