"""FakeKafka cannot drift: one set of behaviour tests, run on the fake and on the real broker.

Every test takes ``side``, parametrized over the fake and the shared broker
(127.0.0.1:59092, unique topic and group names), and asserts exactly the
same thing on both: partitions picked by key, offsets (transaction markers
included), a group resuming from its committed offset, ``auto_offset_reset``,
transactions invisible until committed (and never once aborted) to
``read_committed`` readers, exactly-once offsets, fencing, the dead-letter
loop, and the error codes of the same mistakes.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, RetryHint
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector, KafkaConsumer, KafkaMessage
from dictamesh_connectors.kafka.consumer import ERROR_CODE_HEADER, ORIGIN_HEADERS
from dictamesh_connectors.testing.fakes import FakeKafka
from dictamesh_connectors.testing.fakes.kafka import FakeCluster
from tests.integration.kafka.conftest import unique

pytestmark = pytest.mark.integration


class Side:
    """Connectors and topics on one side: the fake cluster or the real broker."""

    def __init__(self, name: str, bootstrap: str) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.cluster = FakeCluster() if name == "fake" else None
        self.made: list[KafkaConnector] = []
        self.topics: list[str] = []

    def connect(self, **overrides: Any) -> KafkaConnector:
        config = KafkaConfig(
            bootstrap_servers=self.bootstrap, client_id=unique("drift"), **overrides
        )
        connector: KafkaConnector
        if self.cluster is not None:
            connector = FakeKafka(config, cluster=self.cluster)
        else:
            connector = KafkaConnector(config)
        connector.connect()
        self.made.append(connector)
        return connector

    def transactional(self, txn_id: str | None = None) -> KafkaConnector:
        return self.connect(transactional_id=txn_id or unique("txn"), delivery_timeout=60)

    def topic(self, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique("drift")
        self.admin.create_topic(name, partitions=partitions, config=config)
        self.topics.append(name)
        return name

    @property
    def admin(self) -> KafkaConnector:
        return self.made[0] if self.made else self.connect()

    def close(self) -> None:
        admin = self.made[0] if self.made else None
        if admin is not None and self.cluster is None:
            for name in self.topics:
                with contextlib.suppress(Exception):
                    admin.delete_topic(name)
        for connector in reversed(self.made):
            with contextlib.suppress(Exception):
                connector.disconnect(30)


@pytest.fixture(params=["fake", "broker"])
def side(request: pytest.FixtureRequest, kafka_bootstrap: str) -> Iterator[Side]:
    made = Side(request.param, kafka_bootstrap)
    made.connect()
    try:
        yield made
    finally:
        made.close()


def read(consumer: KafkaConsumer, expected: int, *, settle: float = 1.0) -> list[KafkaMessage]:
    """Consume until ``expected`` records came (60 s at most), then ``settle`` s more."""
    out: list[KafkaMessage] = []
    deadline = time.monotonic() + 60
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.consume(100, 1.0)
    end = time.monotonic() + settle
    while time.monotonic() < end:
        out += consumer.consume(100, 0.2)
    return out


def wait_assigned(consumer: KafkaConsumer) -> None:
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    assert consumer.assignment()


def where(messages: list[KafkaMessage]) -> list[tuple[int, int, bytes]]:
    return sorted((m.partition, m.offset, m.value) for m in messages)


# ------------------------------------------------------------- producing


def test_keys_pick_partitions_and_offsets_count_up(side: Side) -> None:
    kafka = side.admin
    topic = side.topic(partitions=4)
    keys = [f"key-{i}".encode() for i in range(12)]
    metas = [kafka.produce_sync(topic, b"v" + key, key=key) for key in keys]
    for key, meta in zip(keys, metas, strict=True):
        assert meta.topic == topic
        # librdkafka's default partitioner: CRC32 of the key
        assert meta.partition == zlib.crc32(key) % 4
    per_partition: dict[int, list[int]] = {}
    for meta in metas:
        per_partition.setdefault(meta.partition, []).append(meta.offset)
    for offsets in per_partition.values():
        assert offsets == list(range(len(offsets)))
    again = kafka.produce_sync(topic, b"again", key=keys[0])
    assert again.partition == metas[0].partition
    assert again.offset == per_partition[again.partition][-1] + 1
    result = kafka.produce_many(topic, [b"a", b"b", b"c"], keys=[b"x", b"y", b"z"]).result(30)
    assert result.delivered == 3 and result.failed == []
    assert kafka.flush(30) == 0


def test_round_trip_keeps_keys_values_headers_and_timestamps(side: Side) -> None:
    kafka = side.admin
    topic = side.topic()
    kafka.produce(topic, b"one", key=b"k", headers=[("h", b"1"), ("h", "2"), ("n", None)],
                  timestamp=1_700_000_000_000)  # fmt: skip
    kafka.produce(topic, b"two")
    assert kafka.flush(30) == 0
    with kafka.consumer(unique("g"), topic) as consumer:
        got = read(consumer, 2, settle=0)
    assert [(m.offset, m.key, m.value) for m in got] == [(0, b"k", b"one"), (1, None, b"two")]
    assert got[0].headers == [("h", b"1"), ("h", b"2"), ("n", None)]
    assert got[0].header("h") == b"2" and got[1].headers == []
    assert got[0].timestamp == 1_700_000_000_000 and got[1].timestamp is not None


# --------------------------------------------------------------- groups


def test_a_group_resumes_from_its_committed_offset(side: Side) -> None:
    kafka = side.admin
    topic = side.topic()
    for i in range(10):
        kafka.produce(topic, str(i).encode())
    assert kafka.flush(30) == 0
    group = unique("group")
    with kafka.consumer(group, topic) as consumer:
        first = read(consumer, 10, settle=0)
        assert [m.value for m in first] == [str(i).encode() for i in range(10)]
        consumer.commit(first[4])  # offset 4 done: the group resumes at 5
        assert consumer.lag() == {(topic, 0): 0}
        consumer.seek(topic, 0, 2)
        again = read(consumer, 1, settle=0)
        assert again[0].value == b"2"
    with kafka.consumer(group, topic) as resumed:
        rest = read(resumed, 5)
        assert [m.value for m in rest] == [b"5", b"6", b"7", b"8", b"9"]
        resumed.commit()
    with kafka.consumer(group, topic) as done:
        assert read(done, 0) == []
        assert done.lag() == {(topic, 0): 0}
    with kafka.consumer(unique("other"), topic) as other:  # another group: from the start
        assert len(read(other, 10, settle=0)) == 10


def test_auto_offset_reset_latest_and_earliest(side: Side) -> None:
    kafka = side.admin
    topic = side.topic()
    kafka.produce_sync(topic, b"old")
    with kafka.consumer(unique("late"), topic, auto_offset_reset="latest") as late:
        wait_assigned(late)
        kafka.produce_sync(topic, b"new")
        assert [m.value for m in read(late, 1)] == [b"new"]
    with kafka.consumer(unique("early"), topic, auto_offset_reset="earliest") as early:
        assert [m.value for m in read(early, 2)] == [b"old", b"new"]


def test_two_members_share_the_partitions(side: Side) -> None:
    kafka = side.admin
    topic = side.topic(partitions=2)
    for i in range(20):
        kafka.produce(topic, str(i).encode(), partition=i % 2)
    assert kafka.flush(30) == 0
    group = unique("pair")
    seen: dict[str, list[KafkaMessage]] = {"a": [], "b": []}
    ready = threading.Barrier(2)
    done = threading.Event()

    def member(name: str) -> None:
        with kafka.consumer(group, topic) as consumer:
            ready.wait(30)
            deadline = time.monotonic() + 60
            while not done.is_set() and time.monotonic() < deadline:
                batch = consumer.consume(100, 0.2)
                seen[name] += batch
                if batch:
                    consumer.commit()
                if len(seen["a"]) + len(seen["b"]) >= 20 and len(consumer.assignment()) == 1:
                    done.set()

    threads = [threading.Thread(target=member, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    values = sorted(int(m.value) for m in seen["a"] + seen["b"])  # type: ignore[arg-type]
    assert sorted(set(values)) == list(range(20))  # every record, at least once


# --------------------------------------------------------- transactions


def test_transactions_markers_and_isolation(side: Side) -> None:
    topic = side.topic()
    txn = side.transactional()
    with txn.transaction():
        txn.produce(topic, b"committed-1")
    with pytest.raises(RuntimeError), txn.transaction():
        txn.produce(topic, b"aborted")
        txn.flush(30)
        raise RuntimeError("abort")
    with txn.transaction():
        txn.produce(topic, b"committed-2")
    kafka = side.admin
    with kafka.consumer(unique("rc"), topic) as committed:
        got = read(committed, 2)
    # Each transaction left a marker: offsets 0, (1), 2 aborted, (3), 4.
    assert [(m.offset, m.value) for m in got] == [(0, b"committed-1"), (4, b"committed-2")]
    with kafka.consumer(unique("ru"), topic, isolation_level="read_uncommitted") as everything:
        got = read(everything, 3)
    assert [(m.offset, m.value) for m in got] == [
        (0, b"committed-1"),
        (2, b"aborted"),
        (4, b"committed-2"),
    ]


def test_an_open_transaction_is_invisible_until_committed(side: Side) -> None:
    topic = side.topic()
    txn = side.transactional()
    kafka = side.admin
    with kafka.consumer(unique("rc"), topic) as reader:
        wait_assigned(reader)
        with txn.transaction():
            txn.produce(topic, b"pending")
            assert txn.flush(30) == 0
            assert read(reader, 0, settle=2.0) == []
        assert [m.value for m in read(reader, 1)] == [b"pending"]


def test_exactly_once_offsets_commit_with_the_transaction(side: Side) -> None:
    kafka = side.admin
    source, sink = side.topic(), side.topic()
    for i in range(4):
        kafka.produce(source, str(i).encode())
    assert kafka.flush(30) == 0
    txn = side.transactional()
    group = unique("eos")
    with txn.consumer(group, source) as consumer:
        batch = read(consumer, 2, settle=0)[:2]
        with txn.transaction():
            for message in batch:
                txn.produce(sink, b"out-" + message.value)  # type: ignore[operator]
            txn.send_offsets_to_transaction(consumer, batch)
        with pytest.raises(RuntimeError), txn.transaction():
            txn.produce(sink, b"never")
            txn.send_offsets_to_transaction(consumer, {(source, 0): 4})
            raise RuntimeError("abort")
    with kafka.consumer(group, source) as resumed:  # resumes after the committed batch
        assert [m.value for m in read(resumed, 2)] == [b"2", b"3"]
    with kafka.consumer(unique("sink"), sink) as out:
        assert [m.value for m in read(out, 2)] == [b"out-0", b"out-1"]


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(side: Side) -> None:
    topic = side.topic()
    txn_id = unique("fenced")
    first = side.transactional(txn_id)
    with first.transaction():
        first.produce(topic, b"first")
    second = side.transactional(txn_id)
    with pytest.raises(ConnectorError) as info, first.transaction():
        first.produce(topic, b"zombie")
    assert info.value.code is ErrorCode.CONFLICT
    assert info.value.retry_hint is RetryHint.RECONNECT
    with second.transaction():
        second.produce(topic, b"second")
    with side.admin.consumer(unique("rc"), topic) as reader:
        assert [m.value for m in read(reader, 2)] == [b"first", b"second"]


def test_transaction_needs_a_transactional_id(side: Side) -> None:
    with pytest.raises(ConnectorError) as info, side.admin.transaction():
        pass
    assert info.value.code is ErrorCode.INVALID_REQUEST


# ------------------------------------------------------------- the loop


def test_run_dead_letters_poison_records_and_commits(side: Side) -> None:
    kafka = side.admin
    topic, dlq = side.topic(), side.topic()
    for value in (b"1", b"poison", b"3"):
        kafka.produce(topic, value)
    assert kafka.flush(30) == 0
    handled: list[bytes] = []
    stop = threading.Event()

    def handler(message: KafkaMessage) -> None:
        if message.value == b"poison":
            raise ValueError("bad record")
        handled.append(message.value)  # type: ignore[arg-type]
        if len(handled) == 2:
            stop.set()

    group = unique("loop")
    consumer = kafka.consumer(group, topic)
    result = consumer.run(handler, stop_event=stop, dead_letter_topic=dlq, handle_sigterm=False)
    assert consumer.closed
    assert handled == [b"1", b"3"]
    assert result.processed == 3 and result.dead_lettered == 1 and result.commits >= 1
    with kafka.consumer(unique("dlq"), dlq) as dead:
        [letter] = read(dead, 1)
    assert letter.value == b"poison"
    assert letter.header(ERROR_CODE_HEADER) == b"ValueError"
    assert letter.header(ORIGIN_HEADERS[0]) == topic.encode()
    assert letter.header(ORIGIN_HEADERS[2]) == b"1"
    with kafka.consumer(group, topic) as after:  # everything was committed
        assert read(after, 0) == []


# ---------------------------------------------------------------- errors


def test_the_same_mistakes_give_the_same_codes(side: Side) -> None:
    kafka = side.admin
    missing = unique("missing")
    with pytest.raises(ConnectorError) as info:
        kafka.produce(missing, b"x").result(30)
    assert info.value.code is ErrorCode.NOT_FOUND and not info.value.transient
    assert missing not in kafka.list_topics()
    with pytest.raises(ConnectorError) as info:
        kafka.describe_topic(missing)
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ConnectorError) as info:
        kafka.delete_topic(missing)
    assert info.value.code is ErrorCode.NOT_FOUND
    topic = side.topic(partitions=3)
    assert [p.id for p in kafka.describe_topic(topic).partitions] == [0, 1, 2]
    assert topic in kafka.list_topics()
    with pytest.raises(ConnectorError) as info:
        kafka.create_topic(topic)
    assert info.value.code is ErrorCode.CONFLICT
    with pytest.raises(ConnectorError) as info:
        kafka.create_topic(unique("rf"), replication_factor=3)
    assert info.value.code is ErrorCode.INVALID_REQUEST
    with pytest.raises(ConnectorError) as info:
        kafka.produce(topic, b"x" * 1_100_000)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    small = side.topic(config={"max.message.bytes": "2000"})
    with pytest.raises(ConnectorError) as info:
        kafka.produce(small, b"y" * 10_000).result(30)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert info.value.details["kafka_code"] == "MSG_SIZE_TOO_LARGE"
    assert kafka.produce_sync(small, b"fits").offset == 0


def test_subscribing_to_a_missing_topic_is_not_found(side: Side) -> None:
    with side.admin.consumer(unique("g"), [unique("missing")]) as consumer:
        with pytest.raises(ConnectorError) as info:
            for _ in range(30):
                consumer.poll(1.0)
        assert info.value.code is ErrorCode.NOT_FOUND
