"""KafkaMessage: a consumed record read in place, and one built by hand, alike."""

from __future__ import annotations

import contextlib
import pickle
from collections.abc import Iterator
from typing import Any

import confluent_kafka
import pytest

from dictamesh_connectors.kafka import KafkaMessage, MessageBatch
from dictamesh_connectors.kafka.consumer import KafkaConsumer
from dictamesh_connectors.testing.fakes import FakeKafka

needs_message_constructor = pytest.mark.skipif(
    not hasattr(confluent_kafka.Message, "__init__")
    or confluent_kafka.Message.__init__ is object.__init__,
    reason="confluent-kafka < 2.13 cannot build a Message in Python",
)


def _raw(**fields: object) -> confluent_kafka.Message:
    base: dict[str, object] = {
        "topic": "orders",
        "partition": 2,
        "offset": 41,
        "key": b"k",
        "value": b"v" * 10,
        "headers": [("h", b"1"), ("h", b"2"), ("none", None)],
        "timestamp": (confluent_kafka.TIMESTAMP_CREATE_TIME, 1_700_000_000_000),
    }
    base.update(fields)
    return confluent_kafka.Message(**base)


@contextlib.contextmanager
def _handing(raws: list[confluent_kafka.Message], **deserializers: object) -> Iterator[Any]:
    """A real KafkaConsumer whose librdkafka consumer hands over ``raws``."""

    class Handed:
        def consume(self, num_messages: int, timeout: float) -> list[confluent_kafka.Message]:
            return raws

    kafka = FakeKafka(**deserializers)  # type: ignore[arg-type]
    kafka.connect()
    kafka.create_topic("orders")
    consumer = kafka.consumer("g", "orders")
    assert isinstance(consumer, KafkaConsumer)
    real, consumer._consumer = consumer._consumer, Handed()
    try:
        yield consumer
    finally:
        consumer._consumer = real
        consumer.close()
        kafka.disconnect()


def _read(raws: list[confluent_kafka.Message], **deserializers: object) -> list[KafkaMessage]:
    """consume() of a real KafkaConsumer over librdkafka records ``raws``."""
    with _handing(raws, **deserializers) as consumer:
        return consumer.consume(100, 1.0)  # type: ignore[no-any-return]


def test_a_built_message_holds_its_fields():
    m = KafkaMessage("t", 1, 7, b"k", {"a": 1}, [("h", b"x")], None)
    assert (m.topic, m.partition, m.offset, m.key, m.value) == ("t", 1, 7, b"k", {"a": 1})
    assert m.headers == [("h", b"x")] and m.timestamp is None and m.header("h") == b"x"
    assert m == pickle.loads(pickle.dumps(m))
    assert repr(m) == "<KafkaMessage t[1]@7>"
    with pytest.raises(TypeError):
        hash(m)
    with pytest.raises(AttributeError):
        m.value = b"other"  # type: ignore[misc]


@needs_message_constructor
def test_a_consumed_record_is_read_in_place_and_equals_the_built_one():
    [m] = _read([_raw()])
    assert type(m) is not KafkaMessage and isinstance(m, KafkaMessage)
    assert (m.topic, m.partition, m.offset, m.key, m.value) == ("orders", 2, 41, b"k", b"v" * 10)
    assert m.timestamp == 1_700_000_000_000
    assert m.headers == [("h", b"1"), ("h", b"2"), ("none", None)]
    assert m.header("h") == b"2" and m.header("none") is None and m.header("x") is None
    m.headers.append(("mine", b""))  # a copy: the record stays as read
    assert len(m.headers) == 3
    built = KafkaMessage(
        "orders", 2, 41, b"k", b"v" * 10, [("h", b"1"), ("h", b"2"), ("none", None)],
        1_700_000_000_000,
    )  # fmt: skip
    assert m == built and built == m
    back = pickle.loads(pickle.dumps(m))
    assert type(back) is KafkaMessage and back == m
    assert repr(m) == "<KafkaMessage orders[2]@41>"


@needs_message_constructor
def test_no_headers_no_timestamp_and_a_tombstone():
    [m] = _read([_raw(headers=None, value=None, key=None, timestamp=(0, 0))])
    assert m.headers == [] and m.timestamp is None and m.value is None and m.key is None


@needs_message_constructor
def test_with_deserializers_the_decoded_key_and_value_are_kept():
    [m] = _read([_raw(value=b'{"n": 1}', key=b"id")], value_deserializer=lambda b: b.decode())
    assert m.value == '{"n": 1}' and m.key == b"id"
    assert pickle.loads(pickle.dumps(m)) == m


@needs_message_constructor
def test_an_end_of_partition_event_in_a_batch_is_skipped():
    eof = confluent_kafka.Message(
        topic="orders", partition=0, error=confluent_kafka.KafkaError(-191)
    )
    out = _read([_raw(offset=1), eof, _raw(offset=2)])
    assert [m.offset for m in out] == [1, 2]


def _batch(raws: list[confluent_kafka.Message], **deserializers: object) -> MessageBatch:
    """consume_batch() of a real KafkaConsumer over librdkafka records ``raws``."""
    with _handing(raws, **deserializers) as consumer:
        return consumer.consume_batch(100, 1.0)  # type: ignore[no-any-return]


@needs_message_constructor
def test_a_batch_reads_the_records_in_place_with_columns():
    raws = [_raw(offset=i, key=b"%d" % i, value=b"v%d" % i) for i in range(5)]
    batch = _batch(raws)
    assert len(batch) == 5 and repr(batch) == "<MessageBatch of 5 records>"
    assert batch.values == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert batch.keys == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.offset for m in batch] == [0, 1, 2, 3, 4]
    assert batch[2].value == b"v2" and batch[-1].offset == 4
    assert [m.offset for m in batch[1:3]] == [1, 2]
    assert list(batch) == _read(raws)  # the same records consume() gives
    back = pickle.loads(pickle.dumps(batch))
    assert back == batch and back.values == batch.values
    assert MessageBatch().values == [] and len(MessageBatch()) == 0


@needs_message_constructor
def test_a_batch_with_deserializers_or_an_end_of_partition_holds_messages():
    batch = _batch([_raw(value=b"ab")], value_deserializer=lambda b: b.decode())
    assert batch.values == ["ab"] and batch.keys == [b"k"]
    eof = confluent_kafka.Message(
        topic="orders", partition=0, error=confluent_kafka.KafkaError(-191)
    )
    batch = _batch([_raw(offset=1), eof, _raw(offset=2)])
    assert [m.offset for m in batch] == [1, 2] and len(batch.values) == 2
