"""A thread-pool batch job: PostgreSQL -> transform -> Kafka + MongoDB + a file export.

Moves every row of a PostgreSQL table through a transform, with 32 threads
(``concurrent.futures.ThreadPoolExecutor``) sharing one connector per
system, built from names (``Connectors``):

* ``source``  (PostgreSQL): the rows, read chunk by chunk (an id range each);
* ``events``  (Kafka): one record per row, keyed by the row id;
* ``store``   (MongoDB): one document per row, ``_id`` = the row id (upserted);
* ``export``  (File): one JSON-lines file per chunk, written atomically.

Nothing is lost when the job is interrupted (Ctrl-C, a crash) and nothing
is doubled when it is re-run: a chunk is recorded as done in PostgreSQL
(``batch_job_progress``) only after all three sinks confirmed it, and a
re-run skips the chunks already done. A chunk cut off half-way is redone,
which is safe for MongoDB (upserts by ``_id``) and the export (the chunk's
file is replaced atomically); Kafka may then hold a second copy of some of
that chunk's records, with the same keys (at-least-once: consumers dedupe by
key, or the topic is compacted).

Progress is a bar on a terminal, log lines otherwise.

Usage::

    python examples/batch_job.py --seed 100000 \\
        --source postgresql://dictamesh:dictamesh-test-pw@127.0.0.1:55432/dictamesh_test \\
        --events kafka://127.0.0.1:59092 \\
        --store "mongodb://127.0.0.1:57017/batch?directConnection=true" \\
        --export /tmp/batch-export

Exit status: 0 done, 1 a chunk failed (re-run to finish), 2 bad arguments or
configuration, 130 interrupted (re-run to resume).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.errors import ConnectorError, InvalidConfigError

logger = logging.getLogger("batch_job")

PROGRESS_TABLE = "batch_job_progress"  # (job, chunk, rows): the chunks all sinks confirmed


def transform(row: dict[str, Any]) -> dict[str, Any]:
    """The business rule: cents to an amount with VAT, a tier, a normalised name."""
    cents = int(row["amount_cents"])
    return {
        "_id": int(row["id"]),
        "customer": str(row["customer"]).strip().title(),
        "amount": round(cents / 100, 2),
        "amount_with_vat": round(cents * 1.21 / 100, 2),
        "tier": "gold" if cents >= 50_000 else "silver" if cents >= 10_000 else "bronze",
    }


class Progress:
    """Chunks done so far: a bar on a terminal, else a log line every ~10%."""

    def __init__(self, total: int, already: int, tty: bool) -> None:
        self.total, self.done, self.tty = total, already, tty
        self._lock = threading.Lock()
        self._next_log = 0.0
        self._start = time.monotonic()

    def advance(self) -> None:
        with self._lock:
            self.done += 1
            done, total = self.done, self.total
        fraction = done / total if total else 1.0
        if self.tty:
            bar = "#" * int(fraction * 40)
            sys.stderr.write(f"\r[{bar:<40}] {done}/{total} chunks")
            sys.stderr.flush()
        elif fraction >= self._next_log or done == total:
            self._next_log = fraction + 0.1
            logger.info("progress: %d/%d chunks (%.0f%%)", done, total, fraction * 100)

    def finish(self) -> None:
        if self.tty:
            sys.stderr.write("\n")


class BatchJob:
    """One run of the job; ``run()`` returns the exit status."""

    def __init__(
        self,
        connectors: Connectors,
        *,
        job: str,
        topic: str,
        collection: str,
        chunk_size: int,
        workers: int,
    ) -> None:
        self.connectors = connectors
        self.job = job
        self.topic = topic
        self.collection = collection
        self.chunk_size = chunk_size
        self.workers = workers
        self.source_table = f"batch_source_{job}"
        self.stop = threading.Event()

    # ---------------------------------------------------------------- setup

    def seed(self, rows: int) -> None:
        """(Re)create the source table with ``rows`` rows (a demo data set)."""
        db = self.connectors.postgresql("source")
        table = self.source_table
        db.execute(f"DROP TABLE IF EXISTS {table}")
        db.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, customer text NOT NULL, "
            "amount_cents integer NOT NULL)"
        )
        db.execute(
            f"INSERT INTO {table} SELECT g, ' customer ' || (g %% 997), (g * 7919) %% 100000 "
            "FROM generate_series(1, %s) AS g",
            [rows],
        )
        self._progress_table()
        db.execute(f"DELETE FROM {PROGRESS_TABLE} WHERE job = %s", [self.job])
        logger.info("seeded %s with %d rows", table, rows)

    def _progress_table(self) -> None:
        self.connectors.postgresql("source").execute(
            f"CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (job text, chunk integer, "
            "rows integer NOT NULL, PRIMARY KEY (job, chunk))"
        )

    def _chunks(self) -> tuple[list[tuple[int, int, int]], int]:
        """All chunks (number, first id, last id) not yet done, and how many are done."""
        db = self.connectors.postgresql("source")
        self._progress_table()
        low, high = db.query(f"SELECT min(id), max(id) FROM {self.source_table}").tuples[0]
        if low is None:
            return [], 0
        done = {
            r["chunk"]
            for r in db.query(f"SELECT chunk FROM {PROGRESS_TABLE} WHERE job = %s", [self.job])
        }
        chunks = []
        for number, first in enumerate(range(low, high + 1, self.chunk_size)):
            if number not in done:
                chunks.append((number, first, min(first + self.chunk_size - 1, high)))
        return chunks, len(done)

    # ------------------------------------------------------------- one chunk

    def process(self, number: int, first: int, last: int) -> int:
        """Move one chunk to every sink, then record it as done. Returns its row count."""
        if self.stop.is_set():
            return 0
        db = self.connectors.postgresql("source")
        rows = db.query(
            f"SELECT id, customer, amount_cents FROM {self.source_table} "
            "WHERE id BETWEEN %s AND %s ORDER BY id",
            [first, last],
        ).rows
        docs = [transform(row) for row in rows]
        if docs:
            events = self.connectors.kafka("events")
            delivery = events.produce_many(
                self.topic,
                [json.dumps(doc).encode() for doc in docs],
                keys=[str(doc["_id"]).encode() for doc in docs],
            )
            self.connectors.mongodb("store").bulk_write(
                self.collection,
                [("replace_one", ({"_id": doc["_id"]}, doc, {"upsert": True})) for doc in docs],
                ordered=False,
            )
            lines = "".join(json.dumps(doc, sort_keys=True) + "\n" for doc in docs)
            self.connectors.file("export").write_text(f"{self.job}/part-{number:06d}.jsonl", lines)
            result = delivery.result(timeout=120)
            if result.failed:
                raise result.failed[0][1]
        db.execute(
            f"INSERT INTO {PROGRESS_TABLE} (job, chunk, rows) VALUES (%s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [self.job, number, len(docs)],
        )
        return len(docs)

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        chunks, already = self._chunks()
        total = len(chunks) + already
        if already:
            logger.info("resuming: %d of %d chunks already done", already, total)
        self.connectors.file("export").mkdir(self.job, exist_ok=True)
        progress = Progress(total, already, sys.stderr.isatty())
        failed: list[tuple[int, ConnectorError]] = []
        moved = 0
        pool = concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="batch")
        try:
            futures = {pool.submit(self.process, *chunk): chunk[0] for chunk in chunks}
            for future in concurrent.futures.as_completed(futures):
                try:
                    moved += future.result()
                except ConnectorError as err:
                    failed.append((futures[future], err))
                    logger.error("chunk %d failed: %s (%s)", futures[future], err.code.value, err)
                    continue
                progress.advance()
        except KeyboardInterrupt:
            # Ctrl-C: no new chunk starts; the ones running finish (and are
            # recorded), so a re-run resumes exactly where this one stopped.
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            progress.finish()
            _, done = self._chunks()
            logger.warning("interrupted: %d of %d chunks done; re-run to resume", done, total)
            return 130
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        progress.finish()
        if failed:
            logger.error("%d chunk(s) failed; re-run to finish them", len(failed))
            return 1
        logger.info("done: %d rows moved in this run, %d chunks in all", moved, total)
        return 0


def _job_name(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", value):
        raise argparse.ArgumentTypeError("lower-case letters, digits and _ (at most 41)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, help="postgresql:// URL of the source table")
    parser.add_argument("--events", required=True, help="kafka:// URL of the broker")
    parser.add_argument("--store", required=True, help="mongodb:// URL (with the database)")
    parser.add_argument("--export", required=True, help="directory of the JSON-lines export")
    parser.add_argument(
        "--job", default="demo", type=_job_name, help="job name: tables, topic, collection"
    )
    parser.add_argument("--seed", type=int, metavar="ROWS", help="(re)create the source table")
    parser.add_argument("--chunk-size", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        connectors = Connectors(
            {
                "source": {"url": args.source, "max_open_conns": args.workers},
                "events": {"url": args.events, "client_id": f"batch-{args.job}"},
                "store": {"url": args.store},
                "export": {"url": f"file://{args.export}", "create_root": True},
            }
        )
    except InvalidConfigError as err:
        logger.error("bad configuration: %s", err)
        return 2
    job = BatchJob(
        connectors,
        job=args.job,
        topic=f"batch-{args.job}",
        collection=f"batch_{args.job}",
        chunk_size=args.chunk_size,
        workers=args.workers,
    )
    try:
        if args.seed is not None:
            job.seed(args.seed)
        events = connectors.kafka("events")
        if f"batch-{args.job}" not in events.list_topics():
            events.create_topic(f"batch-{args.job}", partitions=4)
        return job.run()
    except ConnectorError as err:
        logger.error("failed: %s (%s)", err.code.value, err)
        return 1
    finally:
        connectors.close_all(timeout=60)  # Kafka: every queued record delivered or reported


if __name__ == "__main__":
    sys.exit(main())
