"""Kafka connector: confluent-kafka (librdkafka) producer, consumers, transactions, admin.

Install the driver with ``pip install 'dictamesh-connectors[kafka]'``.
``KafkaConfig`` imports without it; the other names need it and raise
``MissingDependencyError`` (naming the extra) when it is missing.

Example::

    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

    with KafkaConnector(KafkaConfig.from_url("kafka://127.0.0.1:9092")) as kafka:
        kafka.produce("orders", b'{"id": 1}', key=b"1").result()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import lazy_attribute
from dictamesh_connectors.kafka.config import KafkaConfig

if TYPE_CHECKING:
    from dictamesh_connectors.kafka.admin import PartitionInfo, TopicInfo
    from dictamesh_connectors.kafka.connector import KafkaConnector
    from dictamesh_connectors.kafka.consumer import (
        KafkaConsumer,
        KafkaMessage,
        MessageBatch,
        RunResult,
    )
    from dictamesh_connectors.kafka.producer import BatchResult, RecordMetadata

__all__ = [
    "BatchResult",
    "KafkaConfig",
    "KafkaConnector",
    "KafkaConsumer",
    "KafkaMessage",
    "MessageBatch",
    "PartitionInfo",
    "RecordMetadata",
    "RunResult",
    "TopicInfo",
]

_LAZY = {
    "BatchResult": "dictamesh_connectors.kafka.producer",
    "KafkaConnector": "dictamesh_connectors.kafka.connector",
    "KafkaConsumer": "dictamesh_connectors.kafka.consumer",
    "KafkaMessage": "dictamesh_connectors.kafka.consumer",
    "MessageBatch": "dictamesh_connectors.kafka.consumer",
    "PartitionInfo": "dictamesh_connectors.kafka.admin",
    "RecordMetadata": "dictamesh_connectors.kafka.producer",
    "RunResult": "dictamesh_connectors.kafka.consumer",
    "TopicInfo": "dictamesh_connectors.kafka.admin",
}


def __getattr__(name: str) -> Any:
    # The driver is imported on first use, so KafkaConfig works without it.
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
