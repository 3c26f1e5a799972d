"""KafkaConnector vs a raw confluent-kafka Producer/Consumer, same settings, interleaved.

One run, side by side, against the same broker:

1. Throughput: produce N records of 100 bytes (default 1,000,000) and consume
   them back, connector vs raw, alternating over several rounds (each round
   on fresh topics); median messages/s and MB/s and the median per-round
   ratio connector / raw (target >= 0.95 both ways).
   * raw producer: ``Producer.produce(topic, value)`` with ``poll(0)`` after
     each call (the idiomatic way to serve its delivery reports) and no
     per-record callback; ``flush()`` at the end;
   * raw producer with a no-op delivery callback per record: the least any
     producer pays that learns each record's outcome (confluent-kafka then
     builds a ``Message`` per delivery report and calls into Python);
   * connector: ``produce()`` (a Future per record, resolved by the delivery
     thread), ``flush()`` at the end; and ``produce_many()`` (one future per
     10,000 records), the batch path;
   * raw consumer: ``consume(10000, 1.0)`` touching ``msg.value()``;
   * connector consumer: ``KafkaConsumer.consume(10000, 1.0)`` returning
     ``KafkaMessage`` objects, touching ``.value``; and
     ``consume_batch(10000, 1.0)`` (the batch path), touching each of
     ``batch.values``.
2. Client CPU per record at 1, 8 and 32 producing threads: the CPU time
   (``time.thread_time`` of every producing thread, plus the connector's
   delivery thread read through its CPU clock, plus the final flush) per
   record. librdkafka's own threads do the same work on both sides and are
   left out; the difference is the connector's own cost (the Future, the
   in-flight accounting and the callback thread), target <= 3 us per record.
3. The connector's own path: ``produce()`` with librdkafka replaced by a
   stub that reports delivery on the next ``poll()``, against the bare stub
   calls; and ``consume()`` over a stub handing prebuilt records, against a
   bare loop over it (no broker, no I/O: steady on a busy box).

Both consumers set ``fetch.queue.backoff.ms`` to 10 (see ``main``).
Consuming asks for no more records than remain (``consume(n)`` waits for
``n`` records or its timeout: asking for more would time that wait), and
prints the consuming thread's CPU per record for both sides.

Both sides use the connector's producer settings (acks=all, idempotence,
linger.ms=5, batch.size=1000000, no compression).

Usage: python benchmarks/kafka_bench.py [--messages 1000000] [--rounds 3]
       [--cpu-messages 200000] [--threads 1,8,32] [--own-path-records 100000]
The topics it makes (``bench-*``) are deleted at the end, also after a failure.
Reads the broker from DICTAMESH_TEST_KAFKA_BOOTSTRAP (default: the local test broker).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, Producer

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

BOOTSTRAP = os.environ.get("DICTAMESH_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:59092")
VALUE = b"v" * 100


_made: list[str] = []  # every topic fresh_topic() made, deleted at the end


def fresh_topic(admin: KafkaConnector, partitions: int = 3) -> str:
    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin.create_topic(name, partitions=partitions)
    _made.append(name)
    return name


def delete_topics(admin: KafkaConnector) -> None:
    """Delete the topics this run made (also after a failed run): none is left behind."""
    while _made:
        name = _made.pop()
        try:
            admin.delete_topic(name)
        except ConnectorError as err:
            print(f"  could not delete topic {name}: {err}")


def thread_cpu(thread: threading.Thread | None) -> float:
    if thread is None or thread.ident is None:
        return 0.0
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


# ---------------------------------------------------------------- producing


def run_producers(
    work: Callable[[], None], threads: int, flush: Callable[[], None]
) -> tuple[float, float]:
    """Run ``work`` in ``threads`` threads at once, then ``flush``.

    Returns (wall seconds, client CPU seconds): the producing threads' CPU
    (each timed from the common start) plus the flush's.
    """
    cpu: list[float] = []
    barrier = threading.Barrier(threads + 1)

    def timed() -> None:
        barrier.wait()
        start = time.thread_time()
        work()
        cpu.append(time.thread_time() - start)

    pool = [threading.Thread(target=timed) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    flush_cpu = time.thread_time()
    flush()
    flush_cpu = time.thread_time() - flush_cpu
    return time.perf_counter() - t0, sum(cpu) + flush_cpu


def _noop_report(err: Any, msg: Any) -> None:
    """A delivery callback that does nothing (what learning each outcome costs at least)."""


def produce_raw(
    conf: dict[str, Any], topic: str, count: int, threads: int, *, callback: bool = False
) -> tuple[float, float]:
    """Return (wall seconds, client CPU seconds) for ``count`` records.

    ``callback``: pass a no-op delivery callback with every record, as any
    producer that learns each record's outcome must.
    """
    producer = Producer(conf)
    producer.list_topics(timeout=10)
    per = count // threads
    report = _noop_report if callback else None

    def work() -> None:
        produce, poll = producer.produce, producer.poll
        for _ in range(per):
            while True:
                try:
                    if report is None:
                        produce(topic, VALUE)
                    else:
                        produce(topic, VALUE, callback=report)
                    break
                except BufferError:
                    poll(0.001)
            poll(0)

    def flush() -> None:
        assert producer.flush(120) == 0

    wall, cpu = run_producers(work, threads, flush)
    producer.close()
    return wall, cpu


def produce_connector(
    kafka: KafkaConnector, topic: str, count: int, threads: int, *, batch: bool = False
) -> tuple[float, float]:
    per = count // threads
    chunk = [VALUE] * 10_000

    def work() -> None:
        produce = kafka.produce
        futures: list[Any] = []
        if batch:
            for done in range(0, per, len(chunk)):
                futures.append(kafka.produce_many(topic, chunk[: min(len(chunk), per - done)]))
        else:
            for _ in range(per):
                futures.append(produce(topic, VALUE))  # held, as a caller would

    def flush() -> None:
        assert kafka.flush(120) == 0

    delivery = kafka._handle.delivery_thread if kafka._handle is not None else None
    delivery_start = thread_cpu(delivery)
    wall, cpu = run_producers(work, threads, flush)
    return wall, cpu + thread_cpu(delivery) - delivery_start


class _StubProducer:
    """Stands in for librdkafka: queues the callback, reports delivery on the next poll()."""

    def __init__(self) -> None:
        from confluent_kafka import Message

        self.pending: list[Any] = []
        self.report = Message(
            topic="stub", partition=0, offset=1, value=VALUE, timestamp=(1, 1_700_000_000_000)
        )

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        callback: Any = None,
        on_delivery: Any = None,
        **kwargs: Any,
    ) -> None:
        callback = callback or on_delivery  # as confluent-kafka: callback, or its alias
        if callback is not None:
            self.pending.append(callback)

    def produce_batch(self, topic: str, messages: list[dict[str, Any]], partition: int = -1) -> int:
        self.pending += [m["callback"] for m in messages if "callback" in m]
        return len(messages)

    def poll(self, timeout: float = 0) -> int:
        pending, self.pending = self.pending, []
        if not pending and timeout:
            time.sleep(timeout)  # the delivery thread, while nothing is produced
        for callback in pending:
            callback(None, self.report)
        return len(pending)


def own_path_cost(kafka: KafkaConnector, n: int = 100_000) -> None:
    """produce() with librdkafka replaced by a stub, against the bare stub calls.

    No broker, no librdkafka threads: the steadiest figure of what the
    connector adds per record (checks, the Future, in-flight accounting,
    serving the report and resolving the Future) on a busy box.
    """
    handle = kafka._handle
    assert handle is not None
    stub = _StubProducer()
    real, handle.producer = handle.producer, stub  # type: ignore[assignment]
    try:
        costs = []
        for _ in range(5):
            start = time.thread_time()
            produce = kafka.produce
            for _ in range(n):
                produce("stub", VALUE)
            mid = time.thread_time()
            stub_produce, stub_poll = stub.produce, stub.poll
            for _ in range(n):
                stub_produce("stub", VALUE)
                stub_poll(0)
            costs.append(((mid - start) - (time.thread_time() - mid)) / n * 1e6)
        many = []
        chunk = [VALUE] * 10_000
        for _ in range(5):
            start = time.thread_time()
            for _ in range(0, n, len(chunk)):
                kafka.produce_many("stub", chunk)
            mid = time.thread_time()
            for _ in range(0, n, len(chunk)):
                stub.produce_batch("stub", [{"value": value} for value in chunk])
                stub.poll(0)
            many.append(((mid - start) - (time.thread_time() - mid)) / n * 1e6)
    finally:
        handle.producer = real
    print(f"\n== the connector's own path, librdkafka replaced by a stub ({n:,} records, 1 thread)")
    print(f"  produce()       {statistics.median(costs):5.2f} us/record over the bare stub calls")
    print(
        f"  produce_many()  {statistics.median(many):5.2f} us/record over the bare stub"
        " produce_batch() (no callback)"
    )


# ---------------------------------------------------------------- consuming


class _StubConsumer:
    """Stands in for librdkafka's consumer: hands over prebuilt records in batches."""

    def __init__(self, records: list[Any]) -> None:
        self.records = records
        self.at = 0

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        batch = self.records[self.at : self.at + num_messages]
        self.at += len(batch)
        return batch


def consume_own_path_cost(kafka: KafkaConnector, n: int = 100_000) -> None:
    """consume() of a real KafkaConsumer over a stub, against a bare loop over the stub.

    Both touch every record's value, as the throughput run does; the
    difference is what the connector adds per record (checks, wrapping).
    """
    from confluent_kafka import Message

    records = [
        Message(topic="stub", partition=i % 3, offset=i, value=VALUE, timestamp=(1, 1))
        for i in range(n)
    ]
    costs = []
    with kafka.consumer(f"bench-{uuid.uuid4().hex[:8]}", ["stub"]) as consumer:
        real = consumer._consumer
        try:
            for _ in range(5):
                stub = consumer._consumer = _StubConsumer(records)
                start = time.thread_time()
                size = 0
                while stub.at < n:
                    for message in consumer.consume(10_000, 0):
                        size += len(message.value)
                mid = time.thread_time()
                stub = _StubConsumer(records)
                while stub.at < n:
                    for raw in stub.consume(10_000, 0):
                        if raw.error() is None:
                            size += len(raw.value())
                costs.append(((mid - start) - (time.thread_time() - mid)) / n * 1e6)
                assert size == 2 * n * len(VALUE)
        finally:
            consumer._consumer = real
    print(f"  consume()       {statistics.median(costs):5.2f} us/record over the bare stub loop")


def consume_raw(conf: dict[str, Any], topic: str, count: int) -> tuple[float, float]:
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    seen = 0
    size = 0
    t0 = cpu0 = 0.0
    while seen < count:
        # Never more than remain: consume(n) waits for n records or its
        # timeout, so asking for more than are left would time the wait.
        batch = consumer.consume(min(10_000, count - seen), 1.0)
        if batch and not t0:
            t0 = time.perf_counter()  # from the first record: the group join is not timed
            cpu0 = time.thread_time()
        for msg in batch:
            if msg.error() is None:
                size += len(msg.value())
                seen += 1
    wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    consumer.close()
    assert size == count * len(VALUE)
    return wall, cpu


def consume_connector(
    kafka: KafkaConnector, topic: str, count: int, batch_path: bool = False
) -> tuple[float, float]:
    seen = 0
    size = 0
    t0 = cpu0 = 0.0
    with kafka.consumer(f"bench-{uuid.uuid4().hex[:8]}", [topic]) as consumer:
        while seen < count:
            if batch_path:
                batch = consumer.consume_batch(min(10_000, count - seen), 1.0)
                if batch and not t0:
                    t0 = time.perf_counter()
                    cpu0 = time.thread_time()
                for value in batch.values:
                    size += len(value)
                seen += len(batch)
                continue
            messages = consumer.consume(min(10_000, count - seen), 1.0)
            if messages and not t0:
                t0 = time.perf_counter()
                cpu0 = time.thread_time()
            for message in messages:
                size += len(message.value)
            seen += len(messages)
        wall, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    assert size == count * len(VALUE)
    return wall, cpu


# ---------------------------------------------------------------- report


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>10,.0f} msg/s {count * len(VALUE) / seconds / 1e6:>6.1f} MB/s"


def median_ratio(pairs: list[tuple[float, float]]) -> float:
    # Each pair is (connector seconds, raw seconds) of one round: rate ratio = raw/connector.
    return statistics.median(raw / conn for conn, raw in pairs)


def per_record_us(runs: dict[str, list[tuple[float, float]]], n: int) -> Callable[[str], float]:
    def us(name: str) -> float:
        return statistics.median(cpu for _, cpu in runs[name]) / n * 1e6

    return us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cpu-messages", type=int, default=200_000)
    parser.add_argument("--threads", default="1,8,32", help="producing threads, comma-separated")
    parser.add_argument("--own-path-records", type=int, default=100_000)
    args = parser.parse_args()
    # Both sides: librdkafka's fetch.queue.backoff.ms (1000) otherwise
    # stalls a fast reader about one second in two runs out of three (a
    # partition's fetch is put off when its local queue passed a threshold,
    # though the reader drains it in milliseconds): that wait, not either
    # side's cost, would set the ratio.
    config = KafkaConfig(
        bootstrap_servers=BOOTSTRAP,
        client_id="bench",
        consumer_options={"fetch.queue.backoff.ms": 10},
    )
    producer_conf = config.producer_conf()
    consumer_conf = dict(config.consumer_conf("x"))
    kafka = KafkaConnector(config)
    kafka.connect()
    try:
        measure(kafka, args, producer_conf, consumer_conf)
    finally:
        delete_topics(kafka)
        kafka.disconnect(60)


def measure(
    kafka: KafkaConnector,
    args: argparse.Namespace,
    producer_conf: dict[str, Any],
    consumer_conf: dict[str, Any],
) -> None:
    """The three parts of the run (see the module docstring), printed as they finish."""
    count = args.messages

    print(f"== throughput: {count:,} records of {len(VALUE)} bytes, {args.rounds} rounds, 1 thread")
    produced: dict[str, list[float]] = {
        "raw": [],
        "raw+callback": [],
        "connector": [],
        "produce_many": [],
    }
    consumed: dict[str, list[float]] = {"raw": [], "connector": [], "consume_batch": []}
    consumed_cpu: dict[str, list[float]] = {"raw": [], "connector": [], "consume_batch": []}
    for _ in range(args.rounds):
        topics = {}
        for name in produced:
            topic = fresh_topic(kafka)
            topics[name] = topic
            if name.startswith("raw"):
                wall, _ = produce_raw(producer_conf, topic, count, 1, callback=name != "raw")
            else:
                wall, _ = produce_connector(kafka, topic, count, 1, batch=name == "produce_many")
            produced[name].append(wall)
        for name, (wall, cpu) in (
            (
                "raw",
                consume_raw(
                    dict(consumer_conf, **{"group.id": uuid.uuid4().hex}), topics["raw"], count
                ),
            ),
            ("connector", consume_connector(kafka, topics["connector"], count)),
            ("consume_batch", consume_connector(kafka, topics["produce_many"], count, True)),
        ):
            consumed[name].append(wall)
            consumed_cpu[name].append(cpu)
    for name, walls in produced.items():
        print(f"  produce {name:<13} {rate(count, statistics.median(walls))}")
    for name, walls in consumed.items():
        cpu_us = statistics.median(consumed_cpu[name]) / count * 1e6
        print(
            f"  consume {name:<13} {rate(count, statistics.median(walls))}"
            f"   {cpu_us:.2f} us client CPU/record"
        )

    def ratio(side: dict[str, list[float]], name: str) -> float:
        return median_ratio(list(zip(side[name], side["raw"], strict=True)))

    print(
        f"  ratio produce raw+callback/raw {ratio(produced, 'raw+callback'):.3f}"
        f"   connector/raw {ratio(produced, 'connector'):.3f}"
        f"   produce_many/raw {ratio(produced, 'produce_many'):.3f}"
        f"   consume connector/raw {ratio(consumed, 'connector'):.3f}"
        f"   consume_batch/raw {ratio(consumed, 'consume_batch'):.3f}   (target >= 0.95)"
    )

    n = args.cpu_messages
    print(f"\n== client CPU per record ({n:,} records per run, median of {args.rounds})")
    print(
        f"  {'threads':>7}  {'raw us':>8}  {'connector us':>12}  {'diff us':>8}"
        f"  {'produce_many us':>15}  {'diff us':>8}  {'conn/raw rate':>13}"
    )
    for threads in [int(t) for t in args.threads.split(",")]:
        runs: dict[str, list[tuple[float, float]]] = {"raw": [], "connector": [], "many": []}
        for _ in range(args.rounds):
            topic = fresh_topic(kafka)
            runs["raw"].append(produce_raw(producer_conf, topic, n, threads))
            runs["connector"].append(produce_connector(kafka, topic, n, threads))
            runs["many"].append(produce_connector(kafka, topic, n, threads, batch=True))
        us = per_record_us(runs, n)
        wall_ratio = median_ratio(
            [(c[0], r[0]) for c, r in zip(runs["connector"], runs["raw"], strict=True)]
        )
        print(
            f"  {threads:>7}  {us('raw'):>8.2f}  {us('connector'):>12.2f}  "
            f"{us('connector') - us('raw'):>8.2f}  {us('many'):>15.2f}  "
            f"{us('many') - us('raw'):>8.2f}  {wall_ratio:>13.3f}"
        )
    print("  (target: connector - raw <= 3 us per record)")
    own_path_cost(kafka, args.own_path_records)
    consume_own_path_cost(kafka, args.own_path_records)


if __name__ == "__main__":
    main()
