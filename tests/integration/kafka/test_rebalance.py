"""A real consumer-group rebalance: members join and leave a group mid-stream, nothing is lost.

Two ``KafkaConsumer.run()`` loops share one group on a six-partition topic of
the shared broker while a producer is still writing. The second member joins
once the first has handled some records (the group rebalances: partitions
are revoked from the first and split), then the first leaves (the group
rebalances again: the second takes everything). At-least-once holds:

* every record is handled (none lost across either rebalance);
* the rebalance callback ran on each member, and when it returned, the
  group's committed offset of every revoked partition was exactly where that
  member's handler had got to (what was finished was committed before the
  partition moved, nothing unfinished was);
* duplicates are counted, and bounded by what at-least-once allows: only
  records handled but not yet committed when their partition moved, at most
  one batch per member and rebalance.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any

import confluent_kafka
import pytest

from dictamesh_connectors.kafka import KafkaConnector, KafkaMessage
from dictamesh_connectors.kafka.consumer import KafkaConsumer

from .conftest import unique, wait_for

pytestmark = pytest.mark.integration

TOTAL = 3000
PARTITIONS = 6
BATCH = 50  # run()'s max_messages: the most one member can hold uncommitted


class _Member:
    """One group member: a thread running ``consumer.run(handler)`` until told to stop."""

    def __init__(self, kafka: KafkaConnector, name: str, group: str, topic: str, strategy: str):
        self.name = name
        self.handled: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.result: Any = None
        self.consumer: KafkaConsumer | None = None
        self._args = (kafka, group, topic, strategy)
        self.thread = threading.Thread(target=self._run, name=f"member-{name}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        kafka, group, topic, strategy = self._args
        try:
            # Made in its own thread: a consumer is confined to the thread that made it.
            self.consumer = kafka.consumer(
                group,
                [topic],
                partition_assignment_strategy=strategy,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=500,
            )
            self.result = self.consumer.run(
                self._handle,
                stop_event=self.stop,
                max_messages=BATCH,
                poll_timeout=0.2,
                handle_sigterm=False,
            )
        except BaseException as exc:  # surfaced by the test, never swallowed
            self.error = exc

    def _handle(self, message: KafkaMessage) -> None:
        self.handled.append((message.partition, message.offset, message.value))
        time.sleep(0.001)  # slow enough that the stream outlasts both rebalances

    def finished_offsets(self) -> dict[int, int]:
        """Next offset per partition, after what this member's handler finished."""
        done: dict[int, int] = {}
        for partition, offset, _ in list(self.handled):
            done[partition] = max(done.get(partition, 0), offset + 1)
        return done


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_members_joining_and_leaving_mid_stream_lose_nothing(
    kafka, new_topic, monkeypatch, strategy
):
    topic = new_topic(partitions=PARTITIONS)
    group = unique("rebalance")
    members: dict[int, _Member] = {}
    revocations: list[tuple[str, dict[int, int], dict[int, int]]] = []
    original = KafkaConsumer._on_revoke

    def spy_on_revoke(self: KafkaConsumer, consumer: Any, partitions: list[Any]) -> None:
        original(self, consumer, partitions)
        member = members[id(self)]
        finished = member.finished_offsets()
        revoked = {tp.partition for tp in partitions if tp.topic == topic}
        expected = {p: finished[p] for p in revoked if p in finished}
        # What the group holds for these partitions now that the callback
        # returned. Not askable while the member is closing (it has left):
        # nothing raises out of a rebalance callback (confluent-kafka would
        # re-raise a bare KafkaError from close(), which no except catches).
        try:
            held = consumer.committed(
                [confluent_kafka.TopicPartition(topic, p) for p in sorted(expected)], timeout=10
            )
        except confluent_kafka.KafkaException:
            revocations.append((member.name, expected, None))
            return
        committed = {tp.partition: tp.offset for tp in held}
        revocations.append((member.name, expected, committed))

    monkeypatch.setattr(KafkaConsumer, "_on_revoke", spy_on_revoke)

    first = _Member(kafka, "first", group, topic, strategy)
    second = _Member(kafka, "second", group, topic, strategy)

    def produce_mid_stream() -> None:
        for start in range(0, TOTAL, 100):
            for i in range(start, start + 100):
                kafka.produce(topic, f"r{i}".encode(), partition=i % PARTITIONS)
            time.sleep(0.05)
        assert kafka.flush(60) == 0

    producer = threading.Thread(target=produce_mid_stream, name="producer")
    producer.start()
    first.start()
    assert wait_for(lambda: first.consumer is not None, 30)
    members[id(first.consumer)] = first
    assert wait_for(lambda: len(first.handled) >= 300 or first.error is not None, 120)
    assert first.error is None, first.error

    second.start()  # joins: the group rebalances
    assert wait_for(lambda: second.consumer is not None, 30)
    members[id(second.consumer)] = second
    assert wait_for(lambda: len(second.handled) >= 300 or second.error is not None, 120)
    assert second.error is None, second.error
    # Both were members at once: the partitions were split between them.
    handled_by_first_before_leaving = len(first.handled)

    first.stop.set()  # leaves: the group rebalances again, the second takes everything
    first.thread.join(60)
    assert not first.thread.is_alive() and first.error is None, first.error
    producer.join(120)
    assert not producer.is_alive()

    everything = {f"r{i}".encode() for i in range(TOTAL)}

    def all_seen() -> bool:
        values = {v for _, _, v in first.handled} | {v for _, _, v in second.handled}
        return values >= everything or second.error is not None

    assert wait_for(all_seen, 180)
    second.stop.set()
    second.thread.join(60)
    assert not second.thread.is_alive() and second.error is None, second.error

    # Nothing lost across either rebalance.
    handled = [v for _, _, v in first.handled] + [v for _, _, v in second.handled]
    assert set(handled) == everything
    # The second member took partitions over from the first, and all of them once it left.
    assert {p for p, _, _ in second.handled} == set(range(PARTITIONS))
    assert len(first.handled) >= handled_by_first_before_leaving >= 300
    # The rebalance callback ran on the first member as the second joined (and
    # as it left itself), and when it returned, the group's committed offset
    # of each revoked partition was where that member's handler had got to.
    checked = [(n, e, c) for n, e, c in revocations if c is not None and e]
    assert [n for n, _, _ in checked].count("first") >= 1, revocations
    for name, expected, committed in checked:
        assert committed == expected, (name, expected, committed)
    # And once both left, the group's offsets are at the end of every
    # partition: a new member would redeliver nothing.
    ends = {p: 0 for p in range(PARTITIONS)}
    for p, offset, _ in first.handled + second.handled:
        ends[p] = max(ends[p], offset + 1)
    with kafka.consumer(group, [topic]) as late:
        held = late._consumer.committed(
            [confluent_kafka.TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30
        )
    assert {tp.partition: tp.offset for tp in held} == ends
    # Duplicates: only what was handled but uncommitted when a partition moved.
    duplicates = sum(n - 1 for n in Counter(handled).values() if n > 1)
    rebalances = len(revocations)
    print(
        f"\n{strategy}: {len(handled)} handled for {TOTAL} records, {duplicates} duplicate(s), "
        f"{rebalances} revocation(s), commits first={first.result.commits} "
        f"second={second.result.commits}"
    )
    assert duplicates <= BATCH * rebalances


def _raise_value_error(self: KafkaConsumer, consumer: Any, partitions: list[Any]) -> None:
    raise ValueError("a bug in the rebalance callback")


def _ask_the_group(self: KafkaConsumer, consumer: Any, partitions: list[Any]) -> None:
    # What a callback checking the group's offsets does (test above): while
    # the member closes it has left, and librdkafka refuses (KafkaException).
    consumer.committed(partitions, timeout=5)


@pytest.mark.parametrize("callback", [_raise_value_error, _ask_the_group])
def test_a_raising_rebalance_callback_never_escapes_close(
    kafka, new_topic, monkeypatch, caplog, callback
):
    topic = new_topic()
    kafka.produce_sync(topic, b"first")
    monkeypatch.setattr(KafkaConsumer, "_on_revoke", callback)
    group = unique("raising")
    consumer = kafka.consumer(group, topic)
    message = None
    for _ in range(60):
        message = consumer.poll(1.0)
        if message is not None:
            break
    assert message is not None and message.value == b"first"
    consumer.commit(message)
    caplog.clear()
    consumer.close()  # revokes the assignment: the callback raises in here
    assert consumer.closed
    logged = [r.getMessage() for r in caplog.records if "revoke callback raised" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert "KafkaError{" not in logged[0]  # translated, not the driver's repr
    monkeypatch.undo()
    kafka.produce_sync(topic, b"second")
    with kafka.consumer(group, topic) as after:  # the member left; the group reads on
        nxt = None
        for _ in range(60):
            nxt = after.poll(1.0)
            if nxt is not None:
                break
    assert nxt is not None and nxt.value == b"second"
