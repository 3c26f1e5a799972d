"""Load: 16 threads produce 100,000 records through one connector; a two-member consumer
group reads exactly 100,000 distinct records, each partition in order."""

from __future__ import annotations

import threading
import time

import pytest

from .conftest import unique

pytestmark = pytest.mark.integration

THREADS = 16
PER_THREAD = 6_250  # 16 x 6,250 = 100,000


def test_16_threads_100k_records_read_exactly_once_in_order(kafka, new_topic):
    topic = new_topic(partitions=4)
    failures: list[BaseException] = []
    futures: list[list] = [[] for _ in range(THREADS)]
    start = threading.Barrier(THREADS)

    def produce(n: int) -> None:
        start.wait()
        try:
            for seq in range(PER_THREAD):
                # One key per thread: one partition, so its sequence must stay in order.
                futures[n].append(kafka.produce(topic, f"{n}:{seq}".encode(), key=str(n).encode()))
        except BaseException as exc:
            failures.append(exc)

    producers = [threading.Thread(target=produce, args=(n,)) for n in range(THREADS)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    assert not failures, failures[:3]
    assert kafka.flush(120) == 0
    offsets: dict[int, list[int]] = {}
    for per_thread in futures:
        for future in per_thread:
            meta = future.result(0)
            offsets.setdefault(meta.partition, []).append(meta.offset)
    assert sum(len(v) for v in offsets.values()) == THREADS * PER_THREAD
    for values in offsets.values():  # no duplicate offsets: each record stored once
        assert len(set(values)) == len(values)

    group = unique("load")
    received: list[list] = [[], []]
    done = threading.Event()
    errors: list[BaseException] = []

    def member(i: int) -> None:
        try:
            with kafka.consumer(group, [topic]) as consumer:
                while not done.is_set():
                    batch = consumer.consume(5000, 0.5)
                    received[i] += [(m.partition, m.offset, m.key, m.value) for m in batch]
                    if batch:
                        consumer.commit()
        except BaseException as exc:
            errors.append(exc)

    members = [threading.Thread(target=member, args=(i,)) for i in range(2)]
    for t in members:
        t.start()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and sum(map(len, received)) < THREADS * PER_THREAD:
        time.sleep(0.2)
    time.sleep(2.0)  # anything beyond 100,000 (a duplicate) would arrive now
    done.set()
    for t in members:
        t.join(60)
    assert not errors, errors[:3]
    records = received[0] + received[1]
    values = [r[3] for r in records]
    assert len(values) == THREADS * PER_THREAD
    assert len(set(values)) == THREADS * PER_THREAD
    # Each partition in order, and each producer's sequence in order within it.
    for member_records in received:
        last_offset: dict[int, int] = {}
        last_seq: dict[bytes, int] = {}
        for partition, offset, key, value in member_records:
            assert offset > last_offset.get(partition, -1)
            last_offset[partition] = offset
            seq = int(value.split(b":")[1])
            assert seq > last_seq.get(key, -1)
            last_seq[key] = seq
