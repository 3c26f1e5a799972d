"""Processes that die: a consumer SIGKILLed mid-batch loses nothing; a transformer that
crashes inside a transaction still yields exactly-once output; aborted transactions are
invisible to read_committed readers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

from dictamesh_connectors.kafka import KafkaConnector
from tests.conftest import REPO_ROOT

from .conftest import read_all, unique, wait_for

pytestmark = pytest.mark.integration

WORKER = "tests.integration.kafka.kafka_worker"


def _worker(*args: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", WORKER, *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_a_consumer_killed_mid_batch_loses_nothing(kafka, kafka_bootstrap, new_topic, tmp_path):
    topic = new_topic(partitions=2)
    total = 2000
    for i in range(total):
        kafka.produce(topic, f"r{i}".encode(), key=str(i % 7).encode())
    assert kafka.flush(60) == 0
    group = unique("killed")
    log = tmp_path / "handled.log"
    log.touch()
    worker = _worker("consume", kafka_bootstrap, topic, group, str(log))
    try:
        # SIGKILL once it handled a few batches and is inside another one.
        assert wait_for(lambda: len(log.read_bytes().splitlines()) >= 350, 120), (
            worker.stderr.read().decode() if worker.poll() is not None else "too slow"
        )
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(30)
    handled = log.read_bytes().splitlines()
    assert 350 <= len(handled) < total
    # A new member of the same group starts from the last commit: nothing is skipped.
    seen: list[bytes] = []
    with kafka.consumer(group, [topic]) as consumer:
        committed_start: bytes | None = None
        for _ in range(600):
            batch = consumer.consume(500, 0.5)
            if batch and committed_start is None:
                committed_start = batch[0].value
            seen += [m.value for m in batch]
            if set(seen) | set(handled) >= {f"r{i}".encode() for i in range(total)}:
                break
    everything = {f"r{i}".encode() for i in range(total)}
    assert set(handled) | set(seen) == everything
    # The new member did not start from the beginning: the dead one's commits were real.
    assert committed_start != b"r0" and len(seen) < total


def test_sigterm_stops_the_loop_cleanly_with_a_final_commit(
    kafka, kafka_bootstrap, new_topic, tmp_path
):
    topic = new_topic()
    total = 1500
    for i in range(total):
        kafka.produce(topic, f"s{i}".encode())
    assert kafka.flush(60) == 0
    group = unique("sigterm")
    log = tmp_path / "handled.log"
    log.touch()
    worker = _worker("sigterm", kafka_bootstrap, topic, group, str(log))
    try:
        assert wait_for(lambda: len(log.read_bytes().splitlines()) >= 200, 120)
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, stderr.decode()
    assert stdout.decode().startswith("stopped ")
    handled = log.read_bytes().splitlines()
    assert len(handled) < total and int(stdout.split()[1]) == len(handled)
    # The final commit covered exactly what was handled: the group resumes right after.
    with kafka.consumer(group, [topic]) as consumer:
        first = None
        while first is None:
            first = consumer.poll(5.0)
    assert first.value == f"s{len(handled)}".encode()


def test_an_aborted_transaction_is_invisible_to_read_committed(kafka_config, kafka, new_topic):
    topic = new_topic()
    txn = KafkaConnector(kafka_config.evolve(transactional_id=unique("txn"), delivery_timeout=60))
    txn.connect()
    try:
        with pytest.raises(RuntimeError), txn.transaction():
            for i in range(10):
                txn.produce(topic, f"aborted-{i}".encode())
            txn.flush(30)  # really written to the log, then aborted
            raise RuntimeError("changed my mind")
        with txn.transaction():
            for i in range(5):
                txn.produce(topic, f"committed-{i}".encode())
    finally:
        txn.disconnect(30)
    committed = read_all(kafka, topic, 5)
    assert sorted(m.value for m in committed) == [f"committed-{i}".encode() for i in range(5)]
    everything = read_all(kafka, topic, 15, **{"isolation.level": "read_uncommitted"})
    assert len(everything) == 15  # the aborted ones exist, unseen by read_committed


def test_consume_transform_produce_is_exactly_once_across_a_crash(
    kafka, kafka_bootstrap, new_topic
):
    source, out = new_topic(partitions=2), new_topic(partitions=2)
    total = 400
    for i in range(total):
        kafka.produce(source, f"v{i}".encode(), key=str(i % 5).encode())
    assert kafka.flush(60) == 0
    group, txn_id = unique("eos"), unique("eos-txn")
    crashed = _worker("transform", kafka_bootstrap, source, out, group, txn_id, "3")
    assert crashed.wait(180) == 17, crashed.stderr.read().decode()
    finished = _worker("transform", kafka_bootstrap, source, out, group, txn_id, "0")
    _stdout, stderr = finished.communicate(timeout=300)
    assert finished.returncode == 0, stderr.decode()
    output = read_all(kafka, out, total)
    counts = Counter(m.value for m in output)
    assert set(counts) == {f"v{i}!".encode() for i in range(total)}
    assert max(counts.values()) == 1, [v for v, c in counts.items() if c > 1][:5]
    raw = read_all(kafka, out, total + 1, **{"isolation.level": "read_uncommitted"})
    assert len(raw) > total  # the crashed batch's output is in the log, aborted
