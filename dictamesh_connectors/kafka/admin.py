"""Topic administration through librdkafka's ``AdminClient``: pure verbs over a client.

Each function takes the admin client and the target (for messages), waits
for the controller's answer within ``timeout`` seconds, and raises a
translated ``ConnectorError``.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import ErrorCode, ErrorRule, RetryHint, build_error
from dictamesh_connectors.kafka.errors import from_kafka_error, translate
from dictamesh_connectors.kafka.producer import check_topic

if TYPE_CHECKING:
    import confluent_kafka
    from confluent_kafka.admin import AdminClient
else:
    confluent_kafka = require("confluent_kafka", extra="kafka", connector="kafka")
    AdminClient = require("confluent_kafka.admin", extra="kafka", connector="kafka").AdminClient

# Not in confluent-kafka's type stubs' exports.
NewTopic: Any = require("confluent_kafka.admin", extra="kafka", connector="kafka").NewTopic

__all__ = [
    "PartitionInfo",
    "TopicInfo",
    "create_topic",
    "delete_topic",
    "describe_topic",
    "list_topics",
]

CONNECTOR = "kafka"
_BAD_REQUEST = ErrorRule(ErrorCode.INVALID_REQUEST, False, RetryHint.NONE)
_TIMEOUT = ErrorRule(ErrorCode.TIMEOUT, True, RetryHint.RETRY)
_MAX_PARTITIONS = 10_000
_MAX_REPLICAS = 32_767
# How often create_topic() asks for the new topic's metadata.
_VISIBLE_POLL = 0.05


class PartitionInfo(NamedTuple):
    """One partition of a topic."""

    id: int
    leader: int
    """Broker id of the leader (-1 while there is none)."""
    replicas: tuple[int, ...]
    isrs: tuple[int, ...]
    """In-sync replicas."""


class TopicInfo(NamedTuple):
    """A topic as the cluster metadata describes it."""

    name: str
    partitions: tuple[PartitionInfo, ...]


def _count(value: object, what: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not 1 <= value <= maximum:
        raise build_error(
            f"{CONNECTOR}: {what} must be in 1..{maximum}, got {value}",
            _BAD_REQUEST,
            connector=CONNECTOR,
        )
    return value


def _topic_config(config: Mapping[str, str] | None) -> dict[str, str]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError("config must be a mapping of topic settings")
    out: dict[str, str] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not isinstance(value, (str, int, float, bool)):
            raise TypeError("topic config keys must be str, values str or numbers")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        try:
            key.encode("utf-8")
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise build_error(
                f"{CONNECTOR}: a topic setting is not encodable as UTF-8",
                _BAD_REQUEST,
                connector=CONNECTOR,
            ) from None
        out[key] = text
    return out


def _wait(
    future: concurrent.futures.Future[Any], operation: str, target: str, topic: str, timeout: float
) -> Any:
    try:
        return future.result(timeout + 1.0)
    except concurrent.futures.TimeoutError:
        raise build_error(
            f"{CONNECTOR}: {operation} {topic} on {target}: no answer within {timeout:g}s",
            _TIMEOUT,
            connector=CONNECTOR,
            maybe_applied=operation != "describe",
            details={"topic": topic},
        ) from None
    except confluent_kafka.KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, confluent_kafka.KafkaError):
            raise from_kafka_error(
                error, operation=f"{operation} {topic}", target=target, write=True, topic=topic
            ) from exc
        raise


def create_topic(
    admin: AdminClient,
    target: str,
    name: str,
    partitions: int,
    replication_factor: int,
    config: Mapping[str, str] | None,
    timeout: float,
) -> None:
    """Create topic ``name`` (see ``KafkaConnector.create_topic``).

    Returns once the metadata of the broker answering shows the topic with a
    leader for each partition: the controller's yes comes first, and a
    describe or produce right after it could still be told the topic does
    not exist.
    """
    check_topic(name)
    deadline = time.monotonic() + timeout
    count = _count(partitions, "partitions", _MAX_PARTITIONS)
    new = NewTopic(
        name,
        num_partitions=count,
        replication_factor=_count(replication_factor, "replication_factor", _MAX_REPLICAS),
        config=_topic_config(config),
    )
    with translate("create_topic", target, write=True, topic=name):
        futures = admin.create_topics([new], operation_timeout=timeout, request_timeout=timeout)
    _wait(futures[name], "create_topic", target, name, timeout)
    while True:
        left = deadline - time.monotonic()
        with translate("create_topic", target, topic=name):
            metadata = admin.list_topics(topic=name, timeout=max(0.001, min(left, 1.0)))
        topic = metadata.topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == count
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return
        if left <= 0:
            raise build_error(
                f"{CONNECTOR}: create_topic {name} on {target}: created, but the cluster "
                f"metadata did not show it with a leader for each partition within {timeout:g}s",
                _TIMEOUT,
                connector=CONNECTOR,
                maybe_applied=True,
                details={"topic": name, "created": True},
            )
        time.sleep(min(_VISIBLE_POLL, left))


def delete_topic(admin: AdminClient, target: str, name: str, timeout: float) -> None:
    """Delete topic ``name``."""
    check_topic(name)
    with translate("delete_topic", target, write=True, topic=name):
        futures = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)
    _wait(futures[name], "delete_topic", target, name, timeout)


def list_topics(admin: AdminClient, target: str, timeout: float) -> list[str]:
    """The non-internal topic names, sorted."""
    with translate("list_topics", target):
        metadata = admin.list_topics(timeout=timeout)
    return sorted(name for name in metadata.topics if not name.startswith("__"))


def describe_topic(admin: AdminClient, target: str, name: str, timeout: float) -> TopicInfo:
    """Partitions, leaders and replicas of ``name``."""
    check_topic(name)
    with translate("describe_topic", target, topic=name):
        metadata = admin.list_topics(topic=name, timeout=timeout)
    topic = metadata.topics.get(name)
    if topic is None:
        raise build_error(
            f"{CONNECTOR}: describe_topic {name} on {target}: no such topic",
            ErrorRule(ErrorCode.NOT_FOUND, False, RetryHint.NONE),
            connector=CONNECTOR,
            details={"topic": name, "kafka_code": "UNKNOWN_TOPIC_OR_PART"},
        )
    if topic.error is not None:
        raise from_kafka_error(
            topic.error, operation=f"describe_topic {name}", target=target, topic=name
        )
    parts = tuple(
        PartitionInfo(p.id, p.leader, tuple(p.replicas), tuple(p.isrs))
        for p in sorted(topic.partitions.values(), key=lambda p: p.id)
    )
    return TopicInfo(name, parts)
