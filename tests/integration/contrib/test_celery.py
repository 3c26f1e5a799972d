"""A real Celery worker (prefork, concurrency 2; and --pool threads) on a real Redis broker.

The worker imports tests/integration/contrib/celery_app.py, whose PostgreSQL
and HTTP connectors are created and connected at import time in the
worker's main process, before the pool forks. The test process only sends
tasks by name and reads their results: it never imports the task module.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery")

from celery import Celery
from celery.result import ResultSet

from tests.integration.contrib import helpers
from tests.integration.http.servers import LocalServer, ScriptedApp

pytestmark = pytest.mark.integration

TASKS = 500


def _enrich(environ: dict[str, Any]) -> Any:
    path = environ["PATH_INFO"]
    if path.startswith("/enrich/"):
        number = int(path.rsplit("/", 1)[1])
        body = json.dumps({"value": number * 3}).encode()
        return 200, [("Content-Type", "application/json")], body
    return 404, [], b"no such page"


def _without_logged_failure(output: str) -> str:
    """The worker log minus the ERROR record of the permanent task and its traceback."""
    kept, skipping = [], False
    for line in output.splitlines():
        if "ERROR/" in line and "Task dictamesh.permanent[" in line:
            skipping = True
            continue
        if skipping and line.startswith("["):  # the next log record
            skipping = False
        if not skipping:
            kept.append(line)
    return "\n".join(kept)


class Worker:
    """One ``celery worker`` process with its own queue, table and application_name."""

    def __init__(
        self,
        pool: str,
        concurrency: int,
        *,
        redis_url: str,
        postgres_dsn: str,
        http_url: str,
        log: Path,
    ):
        self.pool = pool
        self.name = helpers.unique_name(f"celery_{pool}")
        self.table = self.name
        self.queue = self.name
        self.postgres_dsn = postgres_dsn
        self.log = log
        self.closed_log = log.with_name("closed.log")
        self.env = helpers.python_env(
            CELERY_TEST_BROKER=redis_url,
            CELERY_TEST_QUEUE=self.queue,
            CELERY_TEST_PG_URL=postgres_dsn,
            CELERY_TEST_APP_NAME=self.name,
            CELERY_TEST_TABLE=self.table,
            CELERY_TEST_HTTP_URL=http_url,
            CELERY_TEST_CLOSED_LOG=str(self.closed_log),
        )
        self.argv = [
            helpers.PYTHON,
            "-m",
            "celery",
            "-A",
            "tests.integration.contrib.celery_app",
            "worker",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{self.name}@%h",
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self.client = Celery("dictamesh_celery_client", broker=redis_url, backend=redis_url)
        self.client.conf.task_default_queue = self.queue

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def start(self) -> None:
        self.sql(
            f"CREATE TABLE {self.table} (number int PRIMARY KEY, value int NOT NULL, "
            "worker_pid int NOT NULL, backend int NOT NULL)"
        )
        self.sql(f"CREATE TABLE {self.table}_parents (pid int NOT NULL, backend int NOT NULL)")
        self.sql(f"CREATE TABLE {self.table}_attempts (task text NOT NULL)")
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=helpers.REPO,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def send(self, task: str, *args: Any) -> Any:
        return self.client.send_task(task, args=list(args), queue=self.queue)

    def stop(self) -> int:
        """Warm shutdown (SIGTERM), as a supervisor stops a worker; the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    def cleanup(self) -> None:
        self.client.close()
        for suffix in ("", "_parents", "_attempts"):
            self.sql(f"DROP TABLE IF EXISTS {self.table}{suffix}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def closed(self) -> dict[int, list[str]]:
        """The connectors each process closed (disconnect() finished), by pid."""
        closed: dict[int, list[str]] = collections.defaultdict(list)
        if self.closed_log.exists():
            for line in self.closed_log.read_text().splitlines():
                pid, kind = line.split()
                closed[int(pid)].append(kind)
        return {pid: sorted(kinds) for pid, kinds in closed.items()}


@pytest.fixture
def http_app() -> Iterator[tuple[ScriptedApp, str]]:
    app = ScriptedApp()
    app.default = _enrich
    with LocalServer(app) as server:
        yield app, server.url


@pytest.mark.parametrize("pool, concurrency", [("prefork", 2), ("threads", 4)])
def test_worker_runs_500_tasks_with_connectors_made_before_the_fork(
    pool, concurrency, redis_url, postgres_dsn, http_app, tmp_path
):
    app, http_url = http_app
    flaky_key = uuid.uuid4().hex
    app.route(
        f"/flaky/{flaky_key}",
        ScriptedApp.sequence(
            ScriptedApp.retry_after(503, "1"),
            ScriptedApp.status(200, b'{"ok": true}', [("Content-Type", "application/json")]),
        ),
    )
    worker = Worker(
        pool,
        concurrency,
        redis_url=redis_url,
        postgres_dsn=postgres_dsn,
        http_url=http_url,
        log=tmp_path / "worker.log",
    )
    worker.start()
    try:
        results = ResultSet([worker.send("dictamesh.store", i) for i in range(TASKS)])
        flaky = worker.send("dictamesh.flaky", flaky_key)
        permanent = worker.send("dictamesh.permanent")
        done = results.join(timeout=240, propagate=True)
        flaky_result = flaky.get(timeout=60)
        with pytest.raises(Exception) as failure:
            permanent.get(timeout=60)
        status = worker.stop()
    except BaseException:
        worker.kill()
        print(worker.output()[-5000:])
        raise
    try:
        output = worker.output()
        assert status == 0, output[-5000:]

        # 500 tasks all succeeded, each row is there exactly once, with the right value.
        assert sorted(r["number"] for r in done) == list(range(TASKS))
        rows = worker.sql(f"SELECT number, value, worker_pid, backend FROM {worker.table}")
        assert sorted(r[0] for r in rows) == list(range(TASKS))
        assert all(value == 3 * number for number, value, _, _ in rows)

        # No shared sockets: each worker process had its own PostgreSQL sessions,
        # none of them the parent's (made at import time, before the fork).
        ((parent_pid, parent_backend),) = worker.sql(
            f"SELECT pid, backend FROM {worker.table}_parents"
        )
        backends_by_worker: dict[int, set[int]] = collections.defaultdict(set)
        for _, _, worker_pid, backend in rows:
            backends_by_worker[worker_pid].add(backend)
        if pool == "prefork":
            assert len(backends_by_worker) == 2, backends_by_worker.keys()  # both children worked
            assert parent_pid not in backends_by_worker
            first, second = backends_by_worker.values()
            assert not first & second, "two worker processes used the same PostgreSQL backend"
            assert all(parent_backend not in b for b in backends_by_worker.values())
        else:
            assert set(backends_by_worker) == {parent_pid}  # threads: the one process
        for backends in backends_by_worker.values():
            assert len(backends) <= 4  # max_open_conns: one pool per process, bounded

        # A transient error (503, Retry-After: 1) was retried by Celery, then succeeded.
        assert flaky_result["body"] == {"ok": True} and flaky_result["retries"] == 1
        assert len(app.hits(f"/flaky/{flaky_key}")) == 2
        # A permanent error failed the task at once: one attempt, no retry.
        assert type(failure.value).__name__ == "ConnectorError"
        assert worker.sql(f"SELECT count(*) FROM {worker.table}_attempts")[0][0] == 1

        # The shutdown handlers drained and closed each process's connectors:
        # worker_process_shutdown in each prefork child, worker_shutdown in the
        # main process (the parent's own, made at import; with --pool threads,
        # the only ones). Each exactly once.
        both = ["http", "postgresql"]
        assert worker.closed() == {pid: both for pid in {parent_pid, *backends_by_worker}}

        # Clean shutdown: no traceback, and no connection left on the server.
        # (the one traceback is the permanent task's failure, logged by Celery).
        errors = [line for line in output.splitlines() if "ERROR/" in line or "CRITICAL" in line]
        assert len(errors) == 1 and "Task dictamesh.permanent[" in errors[0], errors
        assert "Traceback" not in _without_logged_failure(output), output[-5000:]
        assert "WARNING/" not in output, output[-5000:]
        assert helpers.wait_no_backends(postgres_dsn, worker.name) == []
    finally:
        worker.cleanup()
