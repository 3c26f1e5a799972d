"""FakeKafka: the real connector and consumer on an in-memory cluster."""

from __future__ import annotations

import concurrent.futures
import inspect
import threading
import zlib
from typing import Any

import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.kafka import (
    BatchResult,
    KafkaConfig,
    KafkaConnector,
    KafkaConsumer,
    KafkaMessage,
    RecordMetadata,
)
from dictamesh_connectors.testing import fakes
from dictamesh_connectors.testing.fakes import FakeKafka
from dictamesh_connectors.testing.fakes._kafka_cluster import murmur2, pick_partition
from dictamesh_connectors.testing.fakes.kafka import FakeCluster, FakeKafkaConsumer
from tests.forking import run_in_child
from tests.unit.testing.test_api_parity import public_names, shape
from tests.unit.testing.test_fakes_conformance import MARKER, _FakeConformance

FAKE_EXTRAS = {"faults", "fail_next", "set_latency", "records"}
TXN = {"transactional_id": "txn-1", "delivery_timeout": 30}


@pytest.fixture
def kafka():
    fake = FakeKafka()
    fake._sleep = lambda seconds: None  # retries in tests never sleep
    fake.connect()
    fake.create_topic("orders", partitions=3)
    yield fake
    fake.disconnect()


def drain(consumer, expected, rounds=50):
    out = []
    for _ in range(rounds):
        if len(out) >= expected:
            break
        out += consumer.consume(100, 0.05)
    return out


# --------------------------------------------------------------- API parity


@pytest.mark.parametrize(
    ("fake", "real"),
    [(FakeKafka, KafkaConnector), (FakeKafkaConsumer, KafkaConsumer)],
    ids=lambda cls: cls.__name__,
)
def test_same_public_api_as_the_real_connector(fake, real):
    assert not public_names(real) - public_names(fake)
    assert public_names(fake) - public_names(real) <= FAKE_EXTRAS
    for name in sorted(public_names(real)):
        if isinstance(inspect.getattr_static(real, name), property):
            assert isinstance(inspect.getattr_static(fake, name), property), name
            continue
        real_attr = getattr(real, name)
        if callable(real_attr) and not isinstance(real_attr, type):
            assert shape(getattr(fake, name)) == shape(real_attr), f"{fake.__name__}.{name}"


def test_identity_docstrings_and_export():
    assert FakeKafka.name == "kafka" and FakeKafka.config_class is KafkaConfig
    assert issubclass(FakeKafka, KafkaConnector)
    assert issubclass(FakeKafkaConsumer, KafkaConsumer)
    for name in public_names(FakeKafka):
        assert (getattr(FakeKafka, name).__doc__ or "").strip(), name
    assert fakes.FakeKafka is FakeKafka and "FakeKafka" in fakes.__all__


def test_takes_a_config_a_url_or_nothing():
    assert FakeKafka().config.bootstrap_servers == "localhost:9092"
    assert FakeKafka("kafka://broker:9093").config.bootstrap_servers == "broker:9093"
    assert FakeKafka(KafkaConfig(client_id="me")).config.client_id == "me"
    with pytest.raises(InvalidConfigError):
        FakeKafka("kafka://h:1?acks=maybe")


# ---------------------------------------------------------------- lifecycle


def test_not_connected_and_connect_faults():
    fake = FakeKafka()
    with pytest.raises(NotConnectedError):
        fake.produce("t", b"x")
    fake.fail_next("connect", code=ErrorCode.AUTH_FAILED)
    with pytest.raises(ConnectorError) as info:
        fake.connect()
    assert info.value.code is ErrorCode.AUTH_FAILED and not fake.is_connected
    fake.connect()
    fake.ping()
    assert fake.disconnect() == 0
    with pytest.raises(NotConnectedError):
        fake.list_topics()


def test_topics_survive_reconnect_and_clusters_are_shared(kafka):
    kafka.produce_sync("orders", b"x", partition=0)
    kafka.disconnect()
    kafka.connect()
    assert kafka.list_topics() == ["orders"]
    other = FakeKafka(cluster=kafka.cluster)
    with other:
        assert other.produce_sync("orders", b"y", partition=0).offset == 1
    assert FakeKafka().cluster is not kafka.cluster


# ---------------------------------------------------------------- producing


def test_produce_futures_metadata_and_keys(kafka):
    future = kafka.produce("orders", b"v", key=b"order-1", timestamp=1234)
    assert isinstance(future, concurrent.futures.Future)
    assert future.done()  # served in the producing thread
    meta = future.result(1)
    assert meta == RecordMetadata("orders", zlib.crc32(b"order-1") % 3, 0, 1234)
    assert kafka.produce_sync("orders", b"w", key=b"order-1").partition == meta.partition
    assert kafka.produce_sync("orders", b"p", partition=2).partition == 2
    batch = kafka.produce_many("orders", [b"a", b"b"], keys=[b"k1", b"k2"]).result(1)
    assert batch == BatchResult(2, [])
    assert kafka.flush(1) == 0
    assert kafka.stats().pool["waiting"] == 0


def test_serializers_are_the_real_ones():
    with FakeKafka(KafkaConfig(value_serializer="json", key_serializer="str")) as kafka:
        kafka.create_topic("t")
        kafka.produce_sync("t", {"n": 1}, key="k", headers={"h": "x"})
        with kafka.consumer("g", "t") as consumer:
            [message] = drain(consumer, 1)
        assert (message.key, message.value, message.headers) == ("k", {"n": 1}, [("h", b"x")])
        with pytest.raises(ConnectorError) as info:
            kafka.produce("t", {1, 2})
        assert info.value.code is ErrorCode.SERIALIZATION_ERROR


def test_partitioners():
    assert pick_partition("consistent_random", b"abc", 7) == zlib.crc32(b"abc") % 7
    # The Java client's murmur2 (org.apache.kafka.common.utils.Utils tests).
    for data, expected in [(b"21", -973932308), (b"foobar", -790332482), (b"abc", 479470107)]:
        value = murmur2(data)
        assert (value - (1 << 32) if value & 0x80000000 else value) == expected
    config = KafkaConfig(producer_options={"partitioner": "murmur2_random"})
    with FakeKafka(config) as kafka:
        kafka.create_topic("t", partitions=5)
        meta = kafka.produce_sync("t", b"x", key=b"foobar")
        assert meta.partition == (murmur2(b"foobar") & 0x7FFFFFFF) % 5


def test_producer_errors_have_the_real_codes(kafka):
    with pytest.raises(ConnectorError) as info:
        kafka.produce("missing", b"x").result(1)
    assert info.value.code is ErrorCode.NOT_FOUND
    assert info.value.details["kafka_code"] == "UNKNOWN_TOPIC_OR_PART"
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"x", partition=7).result(1)
    assert info.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"x" * 1_100_000)
    assert info.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    with pytest.raises(TypeError):
        kafka.produce("orders", "not bytes")
    with pytest.raises(ConnectorError) as info:
        kafka.produce("bad topic!", b"x")
    assert info.value.code is ErrorCode.INVALID_REQUEST


def test_auto_created_topics():
    with FakeKafka(KafkaConfig(allow_auto_create_topics=True)) as kafka:
        assert kafka.produce_sync("fresh", b"x").offset == 0
        assert kafka.list_topics() == ["fresh"]


# -------------------------------------------------------------------- admin


def test_admin_verbs(kafka):
    info = kafka.describe_topic("orders")
    assert [p.id for p in info.partitions] == [0, 1, 2]
    assert all(p.leader == 1 and p.replicas == (1,) for p in info.partitions)
    with pytest.raises(ConnectorError) as err:
        kafka.create_topic("orders")
    assert err.value.code is ErrorCode.CONFLICT
    with pytest.raises(ConnectorError) as err:
        kafka.create_topic("x", replication_factor=3)
    assert err.value.code is ErrorCode.INVALID_REQUEST
    kafka.delete_topic("orders")
    with pytest.raises(ConnectorError) as err:
        kafka.delete_topic("orders")
    assert err.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(ConnectorError) as err:
        kafka.describe_topic("orders")
    assert err.value.code is ErrorCode.NOT_FOUND
    assert kafka.list_topics() == []


# ---------------------------------------------------------------- consumers


def test_group_resumes_from_committed_offsets(kafka):
    for i in range(6):
        kafka.produce("orders", str(i).encode(), partition=0)
    with kafka.consumer("billing", "orders") as consumer:
        assert isinstance(consumer, KafkaConsumer)
        got = drain(consumer, 6)
        assert [m.offset for m in got] == list(range(6))
        consumer.commit(got[2])
        assert consumer.lag() == {("orders", 0): 0, ("orders", 1): 0, ("orders", 2): 0}
        consumer.seek("orders", 0, 1)
        assert consumer.poll(0.1).offset == 1
    assert consumer.closed
    with kafka.consumer("billing", "orders") as again:
        assert [m.offset for m in drain(again, 3)] == [3, 4, 5]
        assert again.lag()[("orders", 0)] == 0
    with kafka.consumer("billing", "orders") as third:  # nothing committed after offset 2
        assert third.lag()[("orders", 0)] == 3


def test_auto_offset_reset(kafka):
    kafka.produce_sync("orders", b"old", partition=0)
    with kafka.consumer("late", "orders", auto_offset_reset="latest") as late:
        assert late.poll(0.05) is None
        kafka.produce_sync("orders", b"new", partition=0)
        assert [m.value for m in drain(late, 1)] == [b"new"]
    with kafka.consumer("early", "orders") as early:
        assert [m.value for m in drain(early, 2)] == [b"old", b"new"]
    with pytest.raises(InvalidConfigError):
        kafka.consumer("g", "orders", auto_offset_reset="sometimes")


def test_thread_confinement_is_the_real_one(kafka):
    with kafka.consumer("g", "orders") as consumer:
        errors = []

        def other():
            try:
                consumer.poll(0)
            except ConnectorError as err:
                errors.append(err)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert errors and errors[0].code is ErrorCode.INVALID_REQUEST


def test_two_members_split_the_partitions_and_rebalance(kafka):
    first = kafka.consumer("pair", "orders")
    assert len(first.assignment()) == 3
    result = {}

    def second_member():
        with kafka.consumer("pair", "orders") as second:
            for _ in range(100):
                second.poll(0.01)
                if len(second.assignment()) == 1:
                    break
            result["second"] = second.assignment()

    t = threading.Thread(target=second_member)
    t.start()
    while t.is_alive():
        first.poll(0.01)
    t.join()
    assert result["second"] == [("orders", 1)]  # round-robin in join order
    for _ in range(20):
        first.poll(0.01)
    assert len(first.assignment()) == 3  # the second left: all back
    first.close()


def test_subscribing_to_a_missing_topic_then_it_appears(kafka):
    with kafka.consumer("g", ["later"]) as consumer:
        with pytest.raises(ConnectorError) as info:
            consumer.poll(0.1)
        assert info.value.code is ErrorCode.NOT_FOUND
        kafka.create_topic("later")
        kafka.produce_sync("later", b"hello")
        assert [m.value for m in drain(consumer, 1)] == [b"hello"]


def test_patterns_subscribe_to_matching_topics(kafka):
    kafka.create_topic("events.a")
    kafka.create_topic("events.b")
    kafka.produce_sync("events.a", b"a")
    kafka.produce_sync("events.b", b"b")
    with kafka.consumer("g", "^events\\..*") as consumer:
        assert sorted(m.value for m in drain(consumer, 2)) == [b"a", b"b"]


def test_run_loop_dead_letters_and_commits(kafka):
    kafka.create_topic("dlq")
    for value in (b"1", b"poison", b"3"):
        kafka.produce("orders", value, partition=0)
    stop = threading.Event()
    seen = []

    def handler(message):
        if message.value == b"poison":
            raise ValueError("bad")
        seen.append(message.value)
        if len(seen) == 2:
            stop.set()

    consumer = kafka.consumer("loop", "orders")
    result = consumer.run(handler, stop_event=stop, dead_letter_topic="dlq", handle_sigterm=False)
    assert (result.processed, result.dead_lettered) == (3, 1) and consumer.closed
    [letter] = kafka.records("dlq")
    assert letter.value == b"poison" and letter.header("dictamesh.error.code") == b"ValueError"
    with kafka.consumer("loop", "orders") as after:
        assert after.poll(0.05) is None


def test_run_retries_a_transient_handler_error(kafka):
    kafka.produce_sync("orders", b"x", partition=0)
    stop = threading.Event()
    calls = []

    def handler(message):
        calls.append(message.offset)
        if len(calls) == 1:
            raise ConnectorError("flaky", code=ErrorCode.UNAVAILABLE)
        stop.set()

    kafka.consumer("retry", "orders").run(handler, stop_event=stop, handle_sigterm=False)
    assert calls == [0, 0]


# ------------------------------------------------------------- transactions


def test_transactions_markers_and_isolation():
    with FakeKafka(KafkaConfig(**TXN)) as txn:
        txn.create_topic("t")
        with txn.transaction():
            assert txn.produce_sync("t", b"a").offset == 0
        with pytest.raises(RuntimeError), txn.transaction():
            txn.produce("t", b"b")
            raise RuntimeError
        with txn.transaction():
            txn.produce("t", b"c")
        assert [(m.offset, m.value) for m in txn.records("t", committed_only=True)] == [
            (0, b"a"),
            (4, b"c"),
        ]
        with txn.consumer("ru", "t", isolation_level="read_uncommitted") as ru:
            assert [m.offset for m in drain(ru, 3)] == [0, 2, 4]
        with pytest.raises(ConnectorError) as info:
            txn.produce("t", b"outside")
        assert info.value.code is ErrorCode.INVALID_REQUEST
        with pytest.raises(ConnectorError) as info, txn.transaction(), txn.transaction():
            pass
        assert info.value.code is ErrorCode.INVALID_REQUEST


def test_read_committed_stops_at_an_open_transaction():
    with FakeKafka(KafkaConfig(**TXN)) as txn:
        txn.create_topic("t")
        reader = FakeKafka(cluster=txn.cluster)
        reader.connect()
        with reader.consumer("g", "t") as consumer, txn.transaction():
            txn.produce("t", b"pending")
            assert consumer.poll(0.05) is None
        with reader.consumer("g2", "t") as consumer:
            assert [m.value for m in drain(consumer, 1)] == [b"pending"]
        reader.disconnect()


def test_send_offsets_commit_with_the_transaction():
    with FakeKafka(KafkaConfig(**TXN)) as txn:
        txn.create_topic("in")
        txn.create_topic("out")
        plain = FakeKafka(cluster=txn.cluster)
        with plain:
            for i in range(3):
                plain.produce("in", str(i).encode())
            with txn.consumer("eos", "in") as consumer:
                batch = drain(consumer, 3)
                with txn.transaction():
                    txn.produce("out", b"done")
                    txn.send_offsets_to_transaction(consumer, batch[:2])
                with pytest.raises(ConnectorError) as info:
                    txn.send_offsets_to_transaction(consumer)
                assert info.value.code is ErrorCode.INVALID_REQUEST
            with plain.consumer("eos", "in") as resumed:
                assert [m.value for m in drain(resumed, 1)] == [b"2"]


def test_fencing():
    cluster = FakeCluster()
    first = FakeKafka(KafkaConfig(**TXN), cluster=cluster)
    first.connect()
    first.create_topic("t")
    second = FakeKafka(KafkaConfig(**TXN), cluster=cluster)
    second.connect()
    with pytest.raises(ConnectorError) as info, first.transaction():
        first.produce("t", b"zombie")
    assert info.value.code is ErrorCode.CONFLICT
    assert info.value.retry_hint is RetryHint.RECONNECT
    with second.transaction():
        second.produce("t", b"ok")
    assert [m.value for m in second.records("t", committed_only=True)] == [b"ok"]
    second.disconnect()
    first.disconnect()


# ------------------------------------------------------------------- faults


def test_fail_next_produce_and_partial_produce_many(kafka):
    kafka.fail_next("produce", code=ErrorCode.UNAVAILABLE)
    with pytest.raises(ConnectorError) as info:
        kafka.produce("orders", b"x")
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.details["injected"]
    kafka.fail_next("produce_many", partial=2, code=ErrorCode.TIMEOUT)
    result = kafka.produce_many("orders", [b"0", b"1", b"2", b"3"], partition=0).result(1)
    assert result.delivered == 2
    assert [i for i, _ in result.failed] == [2, 3]
    assert all(err.code is ErrorCode.TIMEOUT for _, err in result.failed)
    assert [m.value for m in kafka.records("orders")] == [b"0", b"1"]


def test_admin_faults_go_through_the_real_retries(kafka):
    kafka.fail_next("create_topic", code=ErrorCode.UNAVAILABLE)
    kafka.create_topic("retried")
    assert kafka.faults.call_count("create_topic") == 3  # orders, the failure, the retry
    assert "retried" in kafka.list_topics()
    assert kafka.stats().retries == 1


def test_commit_failure_aborts_the_transaction():
    with FakeKafka(KafkaConfig(**TXN)) as txn:
        txn._sleep = lambda seconds: None
        txn.create_topic("t")
        txn.fail_next("commit_transaction", code=ErrorCode.TRANSACTION_FAILED)
        with pytest.raises(ConnectorError) as info, txn.transaction():
            txn.produce("t", b"lost")
        assert info.value.code is ErrorCode.TRANSACTION_FAILED
        assert txn.records("t", committed_only=True) == []
        with txn.transaction():
            txn.produce("t", b"kept")
        assert [m.value for m in txn.records("t", committed_only=True)] == [b"kept"]


def test_consumer_faults(kafka):
    kafka.produce_sync("orders", b"x", partition=0)
    with kafka.consumer("g", "orders") as consumer:
        kafka.fail_next("poll", code=ErrorCode.CONNECTION_LOST)
        with pytest.raises(ConnectorError) as info:
            consumer.poll(0.1)
        assert info.value.code is ErrorCode.CONNECTION_LOST
        message = consumer.poll(1.0)
        kafka.fail_next("commit", code=ErrorCode.CONFLICT)
        with pytest.raises(ConnectorError):
            consumer.commit(message)
        consumer.commit(message)


# --------------------------------------------------------- threads and fork


def test_thirty_two_producing_threads(kafka):
    errors = []

    def work(n):
        try:
            for i in range(50):
                kafka.produce("orders", f"{n}-{i}".encode(), key=str(n).encode())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and kafka.flush(5) == 0
    records = kafka.records("orders")
    assert len(records) == 32 * 50
    for partition in range(3):
        offsets = [m.offset for m in records if m.partition == partition]
        assert offsets == list(range(len(offsets)))
    assert all(isinstance(m, KafkaMessage) for m in records)
    assert kafka.stats().in_flight == 0


def test_fork_child_builds_its_own_producer(kafka):
    kafka.produce_sync("orders", b"parent", partition=0)

    def child():
        meta = kafka.produce_sync("orders", b"child", partition=0)
        return meta.offset == 1

    assert run_in_child(child) == 0
    assert [m.value for m in kafka.records("orders")] == [b"parent"]


def test_a_group_of_four_consumer_threads_reads_everything_and_commits(kafka):
    """Producers and 4 members of one group at once: every record read, offsets committed."""
    kafka.create_topic("load", partitions=6)
    total = 600
    seen = []
    seen_lock = threading.Lock()
    done = threading.Event()
    errors = []

    def member():
        try:
            with kafka.consumer("workers", "load") as consumer:
                while not done.is_set():
                    batch = consumer.consume(50, 0.05)
                    if batch:
                        with seen_lock:
                            seen.extend((m.partition, m.offset) for m in batch)
                        consumer.commit()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def producer(n):
        for i in range(total // 3):
            kafka.produce("load", f"{n}-{i}".encode(), key=f"{n}-{i}".encode())

    members = [threading.Thread(target=member) for _ in range(4)]
    producers = [threading.Thread(target=producer, args=(n,)) for n in range(3)]
    for t in members + producers:
        t.start()
    for t in producers:
        t.join()
    assert kafka.flush(5) == 0
    for _ in range(400):
        with seen_lock:
            if len(set(seen)) >= total:
                break
        threading.Event().wait(0.05)
    done.set()
    for t in members:
        t.join(30)
    assert not errors
    assert len(set(seen)) == total  # at least once: every record
    group = kafka.cluster.groups["workers"]
    highs = {
        (t, p): len(log) for t in ["load"] for p, log in enumerate(kafka.cluster.topics[t].logs)
    }
    assert group.committed == highs


class TestFakeKafkaConformance(_FakeConformance):
    """The fake keeps the connector contract (lifecycle, drain, fork, secrets...)."""

    connector_class = FakeKafka
    config = KafkaConfig(
        bootstrap_servers="broker.test:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        username="u",
        password=MARKER,
    )
    secret_marker = MARKER
    slow_verb = "produce"

    def slow(self, connector: Any) -> object:
        # The latency is inside produce(); the record's topic does not matter.
        connector.produce("slow", b"x")
        return None

    def is_unreachable(self, config: Any) -> bool:
        return bool(config.bootstrap_servers == "unreachable.test:1")

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(bootstrap_servers="unreachable.test:1")

    def operation(self, connector: Any) -> object:
        return connector.list_topics()

    def failing_operation(self, connector: Any) -> object:
        return connector.describe_topic("missing")


# ----------------------------------------- records behind an error in a batch


def _refusing(bad: set[bytes]) -> Any:
    def decode(data: bytes | None) -> bytes | None:
        if data in bad:
            raise ValueError("refused")
        return data

    return decode


def _run_bounded(consumer: KafkaConsumer, handler: Any, stop: threading.Event) -> None:
    """run() until ``stop``, or 5 s at most (a regression fails, not hangs)."""
    timer = threading.Timer(5.0, stop.set)
    timer.start()
    try:
        consumer.run(handler, stop_event=stop, handle_sigterm=False)
    finally:
        timer.cancel()


def _filled(values: list[bytes], bad: set[bytes]) -> FakeKafka:
    kafka = FakeKafka(value_deserializer=_refusing(bad))
    kafka.connect()
    kafka.create_topic("t", partitions=1)
    for value in values:
        kafka.produce_sync("t", value)
    return kafka


def test_records_behind_an_error_in_a_consume_batch_are_returned_later_in_order():
    values = [b"%d" % i for i in range(8)]
    with _filled(values, {b"2", b"5"}) as kafka, kafka.consumer("g", "t") as consumer:
        first = consumer.consume(100, 0.5)  # one librdkafka batch: all 8
        assert [m.value for m in first] == [b"0", b"1"]
        with pytest.raises(ConnectorError) as info:
            consumer.consume(100, 0.5)
        assert info.value.code is ErrorCode.SERIALIZATION_ERROR
        assert info.value.details["offset"] == 2
        second = consumer.consume(100, 0.5)
        assert [m.value for m in second] == [b"3", b"4"]
        with pytest.raises(ConnectorError) as info:
            consumer.poll(0.5)
        assert info.value.details["offset"] == 5
        assert [consumer.poll(0.5).value for _ in range(2)] == [b"6", b"7"]
        assert consumer.poll(0.05) is None
        consumer.commit()
    with FakeKafka(cluster=kafka.cluster) as again, again.consumer("g", "t") as consumer:
        assert consumer.poll(0.05) is None  # committed past all 8: none skipped unread


def test_an_error_first_in_a_batch_keeps_the_records_behind_it():
    with _filled([b"bad", b"a", b"b"], {b"bad"}) as kafka, kafka.consumer("g", "t") as consumer:
        with pytest.raises(ConnectorError):
            consumer.consume(100, 0.5)
        assert [m.value for m in consumer.consume(1, 0.5)] == [b"a"]  # max_messages holds
        assert [m.value for m in consumer.consume(100, 0.5)] == [b"b"]


def test_run_handles_the_records_an_earlier_consume_held_back():
    values = [b"%d" % i for i in range(6)]
    with _filled(values, {b"1"}) as kafka:
        seen: list[bytes] = []
        stop = threading.Event()
        with kafka.consumer("g", "t") as consumer:
            assert [m.value for m in consumer.consume(100, 0.5)] == [b"0"]
            consumer.commit()

            def handler(message: KafkaMessage) -> None:
                seen.append(message.value)
                if len(seen) == 4:
                    stop.set()

            # The held-back error (offset 1) is permanent: run() raises it
            # first, as the next consume() would have.
            with pytest.raises(ConnectorError) as info:
                _run_bounded(consumer, handler, stop)
            assert info.value.code is ErrorCode.SERIALIZATION_ERROR
            assert seen == []
            assert consumer.closed  # run() closes the consumer, as it always does
        # Not lost: uncommitted, the records behind the error are read again
        # by the group (consume() moved past the refused one, as documented).
        with kafka.consumer("g", "t") as consumer:
            _run_bounded(consumer, handler, stop)
        assert seen == [b"2", b"3", b"4", b"5"]
        with kafka.consumer("g", "t") as consumer:
            assert consumer.poll(0.05) is None  # run() committed them all


def test_a_seek_or_revoke_drops_the_held_back_records_of_that_partition():
    values = [b"0", b"bad", b"2", b"3"]
    with _filled(values, {b"bad"}) as kafka, kafka.consumer("g", "t") as consumer:
        assert [m.value for m in consumer.consume(100, 0.5)] == [b"0"]
        consumer.seek("t", 0, 3)
        with pytest.raises(ConnectorError):
            consumer.consume(100, 0.5)  # the error was met before the seek
        assert [m.value for m in consumer.consume(100, 0.5)] == [b"3"]


def test_run_logs_a_transient_held_back_error_and_handles_the_records_behind_it(caplog):
    # A deserializer whose schema registry is briefly down (transient).
    calls = {"n": 0}

    def decode(data: bytes | None) -> bytes | None:
        if data == b"1":
            calls["n"] += 1
            raise ConnectorError("registry down", code=ErrorCode.UNAVAILABLE, transient=True)
        return data

    kafka = FakeKafka(value_deserializer=decode)
    kafka.connect()
    kafka.create_topic("t", partitions=1)
    for i in range(5):
        kafka.produce_sync("t", b"%d" % i)
    seen: list[bytes] = []
    stop = threading.Event()

    def handler(message: KafkaMessage) -> None:
        seen.append(message.value)
        if len(seen) == 3:
            stop.set()

    with kafka, kafka.consumer("g", "t") as consumer:
        assert [m.value for m in consumer.consume(100, 0.5)] == [b"0"]
        with caplog.at_level("WARNING"):
            _run_bounded(consumer, handler, stop)
    assert "registry down" in caplog.text
    assert seen == [b"2", b"3", b"4"]  # held back behind it, then handled by run()
    assert calls["n"] == 1


def test_consume_batch_keeps_the_records_behind_an_error_as_consume_does():
    values = [b"%d" % i for i in range(6)]
    with _filled(values, {b"3"}) as kafka, kafka.consumer("g", "t") as consumer:
        assert consumer.consume_batch(100, 0.5).values == [b"0", b"1", b"2"]
        with pytest.raises(ConnectorError) as info:
            consumer.consume_batch(100, 0.5)
        assert info.value.code is ErrorCode.SERIALIZATION_ERROR
        assert consumer.consume_batch(100, 0.5).values == [b"4", b"5"]
        assert len(consumer.consume_batch(100, 0.05)) == 0
        with pytest.raises(TypeError):
            consumer.consume_batch("10")  # type: ignore[arg-type]
        with pytest.raises(ConnectorError):
            consumer.consume_batch(0)


def test_consume_batch_without_deserializers_and_commit(kafka):
    for i in range(30):
        kafka.produce_sync("orders", b"%d" % i, key=b"k%d" % (i % 4))
    with kafka.consumer("g", "orders") as consumer:
        got: list[bytes] = []
        for _ in range(50):
            if len(got) >= 30:
                break
            got += consumer.consume_batch(7, 0.05).values
        consumer.commit()
    assert sorted(got, key=int) == [b"%d" % i for i in range(30)]
    with kafka.consumer("g", "orders") as consumer:
        assert len(consumer.consume_batch(100, 0.05)) == 0  # all committed


def test_commit_of_everything_makes_no_round_trip_when_nothing_new_was_read(kafka):
    for i in range(3):
        kafka.produce_sync("orders", b"%d" % i)
    with kafka.consumer("g", "orders") as consumer:
        calls: list[object] = []
        real = consumer._consumer.commit

        def counted(*args: Any, **kwargs: Any) -> Any:
            calls.append(kwargs.get("offsets"))
            return real(*args, **kwargs)

        consumer._consumer.commit = counted  # type: ignore[method-assign]
        consumer.commit()  # nothing read yet
        assert calls == []
        assert len(drain(consumer, 3)) == 3
        consumer.commit()
        assert len(calls) == 1
        consumer.commit()  # nothing new since
        assert consumer.consume(100, 0.05) == []
        consumer.commit()
        assert len(calls) == 1
    with kafka.consumer("g", "orders") as again:
        assert again.consume(100, 0.05) == []  # the one commit covered all 3


def test_records_held_back_and_handed_after_a_commit_are_committed_by_the_next():
    values = [b"0", b"bad", b"2", b"3"]
    with _filled(values, {b"bad"}) as kafka:
        with kafka.consumer("g", "t") as consumer:
            assert [m.value for m in consumer.consume(100, 0.5)] == [b"0"]
            consumer.commit()  # up to the first record held back
            with pytest.raises(ConnectorError):
                consumer.consume(100, 0.5)
            assert [m.value for m in consumer.consume(100, 0.5)] == [b"2", b"3"]
            consumer.commit()  # they were handed after the last commit: not skipped
        with kafka.consumer("g", "t") as consumer:
            assert consumer.poll(0.05) is None


def test_a_commit_after_a_seek_commits_the_position_sought():
    with _filled([b"0", b"1", b"2"], set()) as kafka:
        with kafka.consumer("g", "t") as consumer:
            assert len(drain(consumer, 3)) == 3
            consumer.commit()
            consumer.seek("t", 0, 1)
            consumer.commit()  # rewinds the group to the position sought
        with kafka.consumer("g", "t") as consumer:
            assert [m.value for m in drain(consumer, 2)] == [b"1", b"2"]
