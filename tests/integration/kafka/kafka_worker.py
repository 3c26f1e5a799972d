"""Worker processes for the crash tests (run as ``python -m tests.integration.kafka.kafka_worker``).

``consume BOOTSTRAP TOPIC GROUP LOG``: ``KafkaConsumer.run()`` with a handler
that appends each value to LOG (flushed and fsynced per record) and is slow
enough for the test to SIGKILL the process in the middle of a batch.

``transform BOOTSTRAP IN OUT GROUP TXN_ID CRASH_IN_BATCH``: an
exactly-once consume-transform-produce loop (``transaction()`` +
``send_offsets_to_transaction``) that appends ``!`` to each value; with
CRASH_IN_BATCH > 0 it dies (``os._exit``) in that batch after producing its
output but before committing the transaction.
"""

from __future__ import annotations

import os
import sys
import time

from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector


def consume(bootstrap: str, topic: str, group: str, log_path: str) -> None:
    kafka = KafkaConnector(KafkaConfig(bootstrap_servers=bootstrap))
    kafka.connect()
    with open(log_path, "ab") as log:

        def handle(message):  # type: ignore[no-untyped-def]
            log.write(message.value + b"\n")
            log.flush()
            os.fsync(log.fileno())
            time.sleep(0.002)

        consumer = kafka.consumer(group, [topic], session_timeout_ms=6000)
        consumer.run(handle, max_messages=100, handle_sigterm=False)


def consume_until_sigterm(bootstrap: str, topic: str, group: str, log_path: str) -> None:
    """``run()`` in the main thread with SIGTERM handling on; print its result."""
    kafka = KafkaConnector(KafkaConfig(bootstrap_servers=bootstrap))
    kafka.connect()
    with open(log_path, "ab") as log:

        def handle(message):  # type: ignore[no-untyped-def]
            log.write(message.value + b"\n")
            log.flush()
            time.sleep(0.002)

        result = kafka.consumer(group, [topic], session_timeout_ms=6000).run(
            handle, max_messages=50
        )
    kafka.disconnect(10)
    print(f"stopped {result.processed} {result.commits}", flush=True)


def transform(bootstrap: str, source: str, out: str, group: str, txn_id: str, crash: str) -> None:
    kafka = KafkaConnector(
        KafkaConfig(bootstrap_servers=bootstrap, transactional_id=txn_id, delivery_timeout=60)
    )
    kafka.connect()
    consumer = kafka.consumer(group, [source], session_timeout_ms=6000)
    partitions = len(kafka.describe_topic(source).partitions)
    done, batch_number = 0, 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        batch = consumer.consume(50, 1.0)
        if not batch:
            lags = consumer.lag()
            if len(lags) == partitions and not any(lags.values()):
                break  # every partition is ours and read to its end
            continue
        batch_number += 1
        with kafka.transaction():
            for message in batch:
                kafka.produce(out, message.value + b"!", key=message.key)
            if batch_number == int(crash):
                kafka.flush(30)  # the output is in the log, uncommitted
                os._exit(17)
            kafka.send_offsets_to_transaction(consumer, batch)
        done += len(batch)
    consumer.close()
    kafka.disconnect(30)
    print(f"transformed {done}")


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    modes = {"consume": consume, "sigterm": consume_until_sigterm, "transform": transform}
    modes[mode](*args)
