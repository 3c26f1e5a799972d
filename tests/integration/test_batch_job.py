"""examples/batch_job.py on the real services: exact counts, Ctrl-C, and a safe re-run.

The default suite moves 5,000 rows (and 20,000 in the interrupted run);
``make batch-job`` runs the same tests with 100,000
(``DICTAMESH_BATCH_ROWS=100000``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

from tests.integration.contrib import helpers

pytestmark = pytest.mark.integration

ROWS = int(os.environ.get("DICTAMESH_BATCH_ROWS", "5000"))
INTERRUPTED_ROWS = int(os.environ.get("DICTAMESH_BATCH_INTERRUPTED_ROWS", str(max(ROWS, 20000))))
SCRIPT = helpers.REPO / "examples" / "batch_job.py"


class Job:
    def __init__(self, postgres_dsn: str, kafka_bootstrap: str, mongodb_uri: str, export: Path):
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.postgres_dsn = postgres_dsn
        self.kafka_bootstrap = kafka_bootstrap
        parts = urllib.parse.urlsplit(mongodb_uri)
        self.database = f"batch_{self.name}"
        self.mongodb_uri = urllib.parse.urlunsplit(
            (parts.scheme, parts.netloc, f"/{self.database}", parts.query, "")
        )
        self.export = export

    def argv(self, *extra: str) -> list[str]:
        return [
            helpers.PYTHON, str(SCRIPT), "--job", self.name,
            "--source", self.postgres_dsn,
            "--events", f"kafka://{self.kafka_bootstrap}",
            "--store", self.mongodb_uri,
            "--export", str(self.export),
            *extra,
        ]  # fmt: skip

    def run(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(*extra), env=helpers.python_env(), capture_output=True, text=True,
            timeout=900, check=False,
        )  # fmt: skip

    def sql(self, statement: str, params: object = None) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def done_chunks(self) -> int:
        try:
            rows = self.sql("SELECT count(*) FROM batch_job_progress WHERE job = %s", [self.name])
        except Exception:  # the table does not exist yet
            return 0
        return int(rows[0][0])

    def check_exact(self, rows: int, *, kafka_exact: bool) -> None:
        """Every sink holds each row exactly once, transformed."""
        import pymongo
        from confluent_kafka import Consumer, TopicPartition

        ((_, total),) = self.sql(
            "SELECT count(*), sum(rows) FROM batch_job_progress WHERE job = %s", [self.name]
        )  # fmt: skip
        assert total == rows

        client = pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=10_000)
        try:
            collection = client[self.database][f"batch_{self.name}"]
            assert collection.count_documents({}) == rows
            doc = collection.find_one({"_id": 7})
            assert doc == {
                "_id": 7, "customer": "Customer 7", "amount": 554.33,
                "amount_with_vat": round(55433 * 1.21 / 100, 2), "tier": "gold",
            }  # fmt: skip
        finally:
            client.close()

        ids: list[int] = []
        for part in sorted((self.export / self.name).glob("part-*.jsonl")):
            ids.extend(json.loads(line)["_id"] for line in part.read_text().splitlines())
        assert len(ids) == rows and sorted(ids) == list(range(1, rows + 1))
        assert not [p for p in (self.export / self.name).iterdir() if not p.name.endswith(".jsonl")]

        consumer = Consumer({
            "bootstrap.servers": self.kafka_bootstrap, "group.id": f"check-{self.name}",
            "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })  # fmt: skip
        try:
            topic = f"batch-{self.name}"
            metadata = consumer.list_topics(topic, timeout=30)
            partitions = [TopicPartition(topic, p) for p in metadata.topics[topic].partitions]
            end = sum(consumer.get_watermark_offsets(tp, timeout=30)[1] for tp in partitions)
            consumer.assign([TopicPartition(topic, tp.partition, 0) for tp in partitions])
            keys: set[bytes] = set()
            seen = 0
            deadline = time.monotonic() + 300
            while seen < end and time.monotonic() < deadline:
                for message in consumer.consume(1000, timeout=1):
                    if message.error() is None:
                        seen += 1
                        keys.add(message.key())
            assert seen == end
            assert keys == {str(i).encode() for i in range(1, rows + 1)}
            if kafka_exact:
                assert end == rows  # an uninterrupted run sends each record once
            else:
                assert end >= rows  # a redone chunk may add copies, with the same keys
        finally:
            consumer.close()

    def cleanup(self) -> None:
        import pymongo

        with pymongo.MongoClient(self.mongodb_uri, serverSelectionTimeoutMS=10_000) as client:
            client.drop_database(self.database)
        self.sql(f"DROP TABLE IF EXISTS batch_source_{self.name}")
        if self.sql("SELECT to_regclass('batch_job_progress')")[0][0] is not None:
            self.sql("DELETE FROM batch_job_progress WHERE job = %s", [self.name])


@pytest.fixture
def job(postgres_dsn, kafka_bootstrap, mongodb_uri, tmp_path):
    job = Job(postgres_dsn, kafka_bootstrap, mongodb_uri, tmp_path / "export")
    yield job
    job.cleanup()


def test_moves_every_row_exactly_once(job):
    result = job.run("--seed", str(ROWS), "--chunk-size", "500")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "progress:" in result.stderr  # not a terminal: log lines
    assert f"done: {ROWS} rows moved" in result.stderr
    job.check_exact(ROWS, kafka_exact=True)
    again = job.run("--chunk-size", "500")  # a re-run of a finished job does nothing
    assert again.returncode == 0, again.stderr[-3000:]
    assert "done: 0 rows moved" in again.stderr
    job.check_exact(ROWS, kafka_exact=True)


def test_ctrl_c_loses_nothing_and_a_rerun_resumes(job):
    rows = INTERRUPTED_ROWS
    process = subprocess.Popen(
        job.argv("--seed", str(rows), "--chunk-size", "100", "--workers", "4"),
        env=helpers.python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while job.done_chunks() < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted:" in stderr and "re-run to resume" in stderr
    done = job.done_chunks()
    assert 3 <= done < rows // 100
    result = job.run("--chunk-size", "100", "--workers", "32")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming: {done} of {rows // 100} chunks already done" in result.stderr
    job.check_exact(rows, kafka_exact=False)


def test_progress_is_a_bar_on_a_terminal(job):
    import pty

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        job.argv("--seed", "1000", "--chunk-size", "100"),
        env=helpers.python_env(), stdin=follower, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        assert process.wait(timeout=300) == 0, output.decode(errors="replace")[-3000:]
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    text = output.decode(errors="replace")
    assert "\r[" + "#" * 40 + "] 10/10 chunks" in text
    assert "progress:" not in text  # the bar replaces the log lines
    job.check_exact(1000, kafka_exact=True)
