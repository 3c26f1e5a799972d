"""The Celery app of the worker tests: its connectors are created at import time, in the parent.

``celery -A tests.integration.contrib.celery_app worker`` imports this module
once, in the worker's main process, which connects a PostgreSQL and an HTTP
connector here and records its own PostgreSQL backend pid; then the prefork
pool forks its children, which must never use the parent's sockets.

Environment (set by the test): ``CELERY_TEST_BROKER`` (a redis:// URL, also
the result backend), ``CELERY_TEST_QUEUE``, ``CELERY_TEST_PG_URL``,
``CELERY_TEST_APP_NAME`` (the connector's application_name),
``CELERY_TEST_TABLE``, ``CELERY_TEST_HTTP_URL`` and ``CELERY_TEST_CLOSED_LOG`` (a
file where every process appends ``pid kind`` as each connector's
``disconnect()`` finishes: what proves the shutdown handlers closed them).
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from dictamesh_connectors import observability
from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.contrib.celery import ConnectorTask, install

BROKER = os.environ["CELERY_TEST_BROKER"]
TABLE = os.environ["CELERY_TEST_TABLE"]
CLOSED_LOG = os.environ["CELERY_TEST_CLOSED_LOG"]


class ClosedLog(observability.Listener):
    """Appends ``pid kind`` to CLOSED_LOG when a connector's disconnect() finishes."""

    def on_disconnect(self, connector: Any) -> None:
        with open(CLOSED_LOG, "a") as log:  # one short line per write: O_APPEND keeps it whole
            log.write(f"{os.getpid()} {connector.name}\n")


observability.add_listener(ClosedLog())

app = Celery("dictamesh_celery_tests", broker=BROKER, backend=BROKER)
app.conf.update(
    task_default_queue=os.environ["CELERY_TEST_QUEUE"],
    broker_connection_retry_on_startup=True,
    result_expires=600,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
)

connectors = Connectors(
    {
        "orders_db": {
            "url": os.environ["CELERY_TEST_PG_URL"],
            "application_name": os.environ["CELERY_TEST_APP_NAME"],
            "max_open_conns": 4,
        },
        # One attempt: a 503 reaches the task as a transient ConnectorError,
        # so the retry under test is Celery's, not the connector's.
        "enricher": {"url": os.environ["CELERY_TEST_HTTP_URL"], "retry": {"max_attempts": 1}},
    }
)
install(connectors, close_timeout=10)

# Created and connected here, in the parent, before the pool forks.
db = connectors.postgresql("orders_db")
api = connectors.http("enricher")
api.get("/enrich/0")
db.execute(
    f"INSERT INTO {TABLE}_parents (pid, backend) VALUES (%s, pg_backend_pid())", [os.getpid()]
)


@app.task(name="dictamesh.store", base=ConnectorTask, bind=True)
def store(self: Any, number: int) -> dict[str, Any]:
    """Fetch a value over HTTP and insert one row for ``number`` (a duplicate fails)."""
    value = api.get(f"/enrich/{number}").json()["value"]
    row = db.execute(
        f"INSERT INTO {TABLE} (number, value, worker_pid, backend) "
        "VALUES (%s, %s, %s, pg_backend_pid()) RETURNING backend",
        [number, value, os.getpid()],
    ).rows[0]
    return {"number": number, "value": value, "worker": os.getpid(), "backend": row["backend"]}


@app.task(name="dictamesh.flaky", base=ConnectorTask, bind=True, max_retries=3)
def flaky(self: Any, key: str) -> dict[str, Any]:
    """An HTTP call whose first answer is a 503 with Retry-After: 1."""
    body = api.get(f"/flaky/{key}").json()
    return {"body": body, "retries": self.request.retries, "worker": os.getpid()}


@app.task(name="dictamesh.permanent", base=ConnectorTask, bind=True, max_retries=3)
def permanent(self: Any) -> None:
    """A division by zero: a permanent error, so the task fails at once, never retried."""
    db.execute(f"INSERT INTO {TABLE}_attempts (task) VALUES ('permanent')")
    db.query("SELECT 1/0")
