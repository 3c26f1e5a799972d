"""Records go in through the connector and come out intact, read by the connector,
by a raw confluent-kafka consumer and by kcat (a client no one here wrote)."""

from __future__ import annotations

import json
import pickle
import subprocess
import uuid

import pytest
from confluent_kafka import Consumer

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.kafka import KafkaConnector, KafkaMessage

from .conftest import kcat_path, read_all, unique

pytestmark = pytest.mark.integration


def test_keys_headers_partitions_and_timestamps(kafka, new_topic):
    topic = new_topic(partitions=3)
    metas = [
        kafka.produce(
            topic,
            f"value-{i}".encode(),
            key=f"key-{i % 5}".encode(),
            headers=[("h", b"1"), ("h", f"{i}".encode()), ("none", None)],
        )
        for i in range(60)
    ]
    pinned = kafka.produce_sync(topic, b"pinned", partition=2, timestamp=1_600_000_000_000)
    assert pinned.partition == 2 and pinned.timestamp == 1_600_000_000_000
    results = [m.result(30) for m in metas]
    by_key: dict[str, set[int]] = {}
    for i, meta in enumerate(results):
        assert meta.topic == topic and meta.offset >= 0
        by_key.setdefault(f"key-{i % 5}", set()).add(meta.partition)
    assert all(len(parts) == 1 for parts in by_key.values())  # one key, one partition
    messages = read_all(kafka, topic, 61)
    assert len(messages) == 61
    got = {m.value: m for m in messages}
    assert got[b"pinned"].partition == 2 and got[b"pinned"].timestamp == 1_600_000_000_000
    m = got[b"value-7"]
    assert m.key == b"key-2" and m.headers == [("h", b"1"), ("h", b"7"), ("none", None)]
    assert m.header("h") == b"7" and m.header("missing") is None
    assert repr(m).startswith("<KafkaMessage ") and b"value" not in repr(m).encode()
    back = pickle.loads(pickle.dumps(m))  # detached from librdkafka's record
    assert type(back) is KafkaMessage and back == m and back.headers == m.headers


def test_json_serializer_round_trip(kafka_config, new_topic):
    topic = new_topic()
    documents = [{"id": i, "name": "é" * (i % 3), "tags": [i, None, True]} for i in range(20)]
    with KafkaConnector(kafka_config.evolve(value_serializer="json", key_serializer="str")) as k:
        for doc in documents:
            k.produce(topic, doc, key=str(doc["id"]))
        assert k.flush(30) == 0
        messages = read_all(k, topic, 20)
    assert sorted((m.value for m in messages), key=lambda d: d["id"]) == documents
    assert {m.key for m in messages} == {str(i) for i in range(20)}


def test_a_raw_consumer_reads_byte_exact_what_the_connector_wrote(
    kafka, kafka_bootstrap, new_topic
):
    topic = new_topic()
    payloads = [bytes(range(256)) * (i + 1) for i in range(10)] + [b"", b"\x00"]
    for i, payload in enumerate(payloads):
        kafka.produce(topic, payload, key=i.to_bytes(2, "big"), headers={"n": str(i)})
    assert kafka.flush(30) == 0
    raw = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": unique("raw"),
            "auto.offset.reset": "earliest",
        }
    )
    raw.subscribe([topic])
    seen = []
    try:
        for _ in range(200):
            msg = raw.poll(0.5)
            if msg is None or msg.error():
                continue
            seen.append((msg.key(), msg.value(), msg.headers()))
            if len(seen) == len(payloads):
                break
    finally:
        raw.close()
    assert seen == [
        (i.to_bytes(2, "big"), payload, [("n", str(i).encode())])
        for i, payload in enumerate(payloads)
    ]


def test_kcat_reads_the_connectors_messages(kafka, kafka_bootstrap, new_topic):
    kcat = kcat_path()
    if kcat is None:
        pytest.skip("kcat is not installed (Debian: apt-get install kcat)")
    topic = new_topic()
    values = [json.dumps({"n": i, "s": uuid.uuid4().hex}) for i in range(25)]
    for i, value in enumerate(values):
        kafka.produce(topic, value.encode(), key=f"k{i}".encode())
    assert kafka.flush(30) == 0
    out = subprocess.run(
        [
            kcat,
            "-C",
            "-b",
            kafka_bootstrap,
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k\t%s\n",
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    lines = [line.split("\t", 1) for line in out.splitlines() if line]
    assert lines == [[f"k{i}", value] for i, value in enumerate(values)]


def test_an_unknown_topic_is_not_found_and_no_topic_is_created(kafka):
    missing = unique("no-such-topic")
    with pytest.raises(ConnectorError) as info:
        kafka.produce(missing, b"x").result(timeout=10)
    assert info.value.code is ErrorCode.NOT_FOUND and not info.value.transient
    assert missing not in kafka.list_topics()
    with pytest.raises(ConnectorError) as info:
        kafka.describe_topic(missing)
    assert info.value.code is ErrorCode.NOT_FOUND


def test_a_message_over_the_size_limits(kafka_config, new_topic):
    # The client's own limit (message.max.bytes, 1 MB): refused before queueing.
    with KafkaConnector(kafka_config) as k:
        topic = new_topic()
        with pytest.raises(ConnectorError) as info:
            k.produce(topic, b"x" * 1_100_000)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE and not info.value.transient
    # The broker's limit (the topic's max.message.bytes): refused by the broker.
    small = new_topic(config={"max.message.bytes": "2000"})
    with KafkaConnector(kafka_config) as k:
        with pytest.raises(ConnectorError) as info:
            k.produce(small, b"y" * 10_000).result(30)
        assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
        assert info.value.details["kafka_code"] == "MSG_SIZE_TOO_LARGE"
        assert k.produce_sync(small, b"fits").offset >= 0


def test_admin_verbs(kafka):
    name = unique("admin")
    kafka.create_topic(name, partitions=4)
    try:
        info = kafka.describe_topic(name)
        assert [p.id for p in info.partitions] == [0, 1, 2, 3]
        assert all(p.leader >= 0 and p.replicas for p in info.partitions)
        assert name in kafka.list_topics()
        with pytest.raises(ConnectorError) as exists:
            kafka.create_topic(name)
        assert exists.value.code is ErrorCode.CONFLICT
        with pytest.raises(ConnectorError) as bad:
            kafka.create_topic(unique("admin"), replication_factor=3)
        assert bad.value.code is ErrorCode.INVALID_REQUEST
    finally:
        kafka.delete_topic(name)
    with pytest.raises(ConnectorError) as gone:
        kafka.delete_topic(name)
    assert gone.value.code is ErrorCode.NOT_FOUND
    kafka.ping(timeout=5)


def test_consumer_poll_commit_seek_and_thread_confinement(kafka, new_topic):
    import threading

    topic = new_topic()
    for i in range(10):
        kafka.produce(topic, str(i).encode())
    assert kafka.flush(30) == 0
    group = unique("group")
    with kafka.consumer(group, topic) as consumer:
        first = None
        while first is None:
            first = consumer.poll(5.0)
        assert first.value == b"0"
        rest = []
        while len(rest) < 9:
            rest += consumer.consume(10, 2.0)
        consumer.commit(rest[3])  # offset 4 done: the group resumes at 5
        errors = []
        thread = threading.Thread(target=lambda: errors.append(_try(consumer.poll, 0.1)))
        thread.start()
        thread.join()
        assert isinstance(errors[0], ConnectorError)
        assert errors[0].code is ErrorCode.INVALID_REQUEST and "thread" in errors[0].message
        consumer.seek(topic, 0, 2)
        again = None
        while again is None:
            again = consumer.poll(5.0)
        assert again.value == b"2"
    assert consumer.closed
    with kafka.consumer(group, topic) as resumed:
        nxt = None
        while nxt is None:
            nxt = resumed.poll(5.0)
        assert nxt.value == b"5"


def _try(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return exc
    return None


def test_subscribing_to_a_missing_topic_is_not_found(kafka):
    with kafka.consumer(unique("g"), [unique("missing")]) as consumer:
        with pytest.raises(ConnectorError) as info:
            for _ in range(30):
                consumer.poll(1.0)
        assert info.value.code is ErrorCode.NOT_FOUND


def test_a_refused_record_mid_batch_loses_none_of_the_records_behind_it(kafka_config, new_topic):
    # librdkafka hands over a whole batch at once; the deserializer refuses
    # one record in the middle. The error is raised when reached, and every
    # record behind it is still returned, in order, then committed.
    topic = new_topic(partitions=1)

    def decode(data: bytes | None) -> bytes | None:
        if data == b"13":
            raise ValueError("not mine")
        return data

    with KafkaConnector(kafka_config, value_deserializer=decode) as k:
        k.produce_many(topic, [b"%d" % i for i in range(40)])
        assert k.flush(30) == 0
        group = unique("g")
        values: list[bytes] = []
        errors: list[ConnectorError] = []
        with k.consumer(group, [topic]) as consumer:
            for _ in range(200):
                if len(values) + len(errors) >= 40:
                    break
                try:
                    values += [m.value for m in consumer.consume(100, 0.2)]
                except ConnectorError as err:
                    errors.append(err)
            consumer.commit()
        assert [e.code for e in errors] == [ErrorCode.SERIALIZATION_ERROR]
        assert errors[0].details["offset"] == 13
        assert values == [b"%d" % i for i in range(40) if i != 13]
        with k.consumer(group, [topic]) as again:
            assert again.consume(100, 2.0) == []  # committed past all 40


def test_consume_batch_reads_what_was_written_in_order_and_commits(kafka, new_topic):
    topic = new_topic(partitions=3)
    payloads = [b"%05d" % i + bytes(range(i % 256)) for i in range(3000)]
    result = kafka.produce_many(topic, payloads, keys=[b"%d" % (i % 7) for i in range(3000)])
    assert result.result(30).delivered == 3000
    group = unique("g")
    with kafka.consumer(group, [topic]) as consumer:
        values: list[bytes] = []
        per_partition: dict[int, list[int]] = {}
        for _ in range(300):
            if len(values) >= 3000:
                break
            batch = consumer.consume_batch(500, 0.5)
            values += batch.values
            assert batch.keys == [m.key for m in batch]
            for message in batch:
                per_partition.setdefault(message.partition, []).append(message.offset)
        consumer.commit()
    assert sorted(values) == sorted(payloads)
    assert all(offsets == sorted(offsets) for offsets in per_partition.values())
    with kafka.consumer(group, [topic]) as again:
        assert len(again.consume_batch(100, 2.0)) == 0  # committed past all 3000


@pytest.mark.parametrize("alike", [False, True], ids=["distinct", "alike"])
def test_produce_many_names_exactly_the_records_the_broker_refused(kafka_config, new_topic, alike):
    # The topic takes record batches of 2,000 bytes at most, the producer
    # makes batches of 1,500: the broker refuses each 3,000-byte record (a
    # batch of its own) in its delivery report, and takes all the others.
    topic = new_topic(partitions=3, config={"max.message.bytes": "2000"})
    size = [3000 if i % 17 == 0 else 50 for i in range(400)]
    values = [
        (b"%d" % (i % 3) if alike else b"%05d" % i).ljust(n, b"-") for i, n in enumerate(size)
    ]
    keys = [b"k%d" % (i % 5) for i in range(400)]
    with KafkaConnector(kafka_config.evolve(batch_size=1500)) as k:
        result = k.produce_many(topic, values, keys=keys).result(60)
        indexes = [index for index, _ in result.failed]
        assert indexes == [i for i in range(400) if size[i] == 3000]
        assert {e.code for _, e in result.failed} == {ErrorCode.PAYLOAD_TOO_LARGE}
        assert result.delivered == 400 - len(indexes)
        stored = sorted((m.key, m.value) for m in read_all(k, topic, result.delivered))
    assert stored == sorted((keys[i], values[i]) for i in range(400) if size[i] == 50)
