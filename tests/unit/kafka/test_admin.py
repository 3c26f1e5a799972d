"""Topic admin verbs over an in-memory AdminClient: create_topic waits for the metadata."""

import concurrent.futures
import types

import pytest
from confluent_kafka import KafkaError

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.kafka import admin as admin_module


class Admin:
    """Creates at once; the metadata shows the topic after ``hidden`` asks, leaderless first."""

    def __init__(self, hidden: int, leaderless: int = 0) -> None:
        self.hidden = hidden
        self.leaderless = leaderless
        self.asked = 0
        self.partitions = 0

    def create_topics(self, topics, operation_timeout, request_timeout):
        (topic,) = topics
        self.partitions = topic.num_partitions
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        done.set_result(None)
        return {topic.topic: done}

    def list_topics(self, topic, timeout):
        assert 0 < timeout <= 1.0
        self.asked += 1
        if self.asked <= self.hidden:
            error = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            found = types.SimpleNamespace(error=error, partitions={})
        else:
            leader = -1 if self.asked <= self.hidden + self.leaderless else 1
            parts = {
                i: types.SimpleNamespace(id=i, leader=leader, replicas=[1], isrs=[1])
                for i in range(self.partitions)
            }
            found = types.SimpleNamespace(error=None, partitions=parts)
        return types.SimpleNamespace(topics={topic: found})


@pytest.mark.parametrize("hidden,leaderless", [(0, 0), (3, 0), (0, 2), (2, 2)])
def test_create_topic_returns_once_the_metadata_shows_every_partition_led(hidden, leaderless):
    admin = Admin(hidden, leaderless)
    admin_module.create_topic(admin, "b:9092", "orders", 3, 1, None, 5.0)  # type: ignore[arg-type]
    assert admin.asked == hidden + leaderless + 1
    info = admin_module.describe_topic(admin, "b:9092", "orders", 1.0)  # type: ignore[arg-type]
    assert [p.leader for p in info.partitions] == [1, 1, 1]


def test_create_topic_that_never_shows_up_is_a_timeout_that_says_it_was_created():
    admin = Admin(hidden=10**9)
    with pytest.raises(ConnectorError) as info:
        admin_module.create_topic(admin, "b:9092", "orders", 1, 1, None, 0.3)  # type: ignore[arg-type]
    error = info.value
    assert error.code is ErrorCode.TIMEOUT and error.maybe_applied
    assert error.details["created"] is True
    assert "created, but the cluster metadata did not show it" in error.message
    assert 2 <= admin.asked <= 10
