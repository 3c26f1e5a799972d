"""Celery: connectors that survive the prefork pool, and tasks that retry the right errors.

Connect the signal handlers once, where the Celery app is defined::

    from celery import Celery
    from dictamesh_connectors.connectors import Connectors
    from dictamesh_connectors.contrib.celery import ConnectorTask, install

    app = Celery("jobs", broker="redis://127.0.0.1:6379/0")
    connectors = Connectors.from_toml("connectors.toml")
    install(connectors)  # fork reset, drain on shutdown

    @app.task(base=ConnectorTask, bind=True)
    def sync_order(self, order_id):
        db = connectors.postgresql("orders_db")
        ...

What ``install`` connects:

* ``worker_process_init`` (in each prefork child, right after the fork):
  every connector built in the parent drops the parent's sockets (never
  closing them: they belong to the parent) and reconnects on first use, so
  no two processes ever share a PostgreSQL backend or an HTTP connection;
* ``worker_process_shutdown`` (in each child as it exits) and
  ``worker_shutdown`` (in the main process): drain in-flight operations and
  close every connector, within ``close_timeout`` seconds.

``ConnectorTask`` is the retry pattern: ``autoretry_for = (ConnectorError,)``
with exponential backoff, but an error is retried only when the error says
so: ``transient`` is true, and, when ``maybe_applied`` is true, only if the
task is declared ``idempotent``. A server's ``retry_after`` (HTTP 429/503
``Retry-After``) sets the countdown when it is longer than the backoff.
Permanent errors (bad credentials, constraint violations, 404s) fail the
task at once instead of burning retries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.errors import ConnectorError

require("celery", extra="celery", connector="contrib.celery")

from celery import Task, signals  # noqa: E402

__all__ = ["ConnectorTask", "install", "retry_countdown", "should_retry"]

logger = logging.getLogger(__name__)


def install(
    connectors: Connectors | Callable[[], Connectors], *, close_timeout: float | None = 30.0
) -> None:
    """Connect the worker signal handlers for ``connectors``.

    Args:
        connectors: The ``Connectors``, or a callable returning it (when it
            is built later, e.g. from Django settings).
        close_timeout: Seconds to drain on shutdown (one deadline for all).
    """
    if isinstance(connectors, Connectors):
        fixed = connectors

        def resolve() -> Connectors:
            return fixed

    else:
        resolve = connectors

    def on_process_init(**_: Any) -> None:
        resolve().reset_after_fork()
        logger.debug("dictamesh-connectors: worker process ready, connectors reset after fork")

    def on_shutdown(**_: Any) -> None:
        resolve().close_all(close_timeout)
        logger.debug("dictamesh-connectors: connectors closed")

    # weak=False: the handlers are closures that nothing else references.
    signals.worker_process_init.connect(on_process_init, weak=False)
    signals.worker_process_shutdown.connect(on_shutdown, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)


def should_retry(err: ConnectorError, *, idempotent: bool) -> bool:
    """Whether a task that raised ``err`` should be retried.

    True for a transient error, unless it may have taken effect
    (``maybe_applied``) and the task is not idempotent.
    """
    return err.transient and (idempotent or not err.maybe_applied)


def retry_countdown(err: ConnectorError, backoff: float | None) -> float | None:
    """The countdown of a retry: the server's ``retry_after`` if longer than ``backoff``."""
    if err.retry_after is None:
        return backoff
    return max(backoff or 0.0, err.retry_after)


class ConnectorTask(Task):  # type: ignore[misc]
    """A Celery ``Task`` base that retries ``ConnectorError`` by its own retryability.

    Use it as ``@app.task(base=ConnectorTask, bind=True)``. Set
    ``idempotent = False`` (as a task option) on a task whose effect must not
    happen twice: errors that may have been applied then fail the task
    instead of retrying it. Every Celery retry option still applies
    (``max_retries``, ``retry_backoff``, ``retry_backoff_max``...).
    """

    autoretry_for = (ConnectorError,)
    retry_backoff = True
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5
    idempotent = True

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``retry``, refusing permanent errors and honouring ``retry_after``."""
        if isinstance(exc, ConnectorError):
            if not should_retry(exc, idempotent=bool(self.idempotent)):
                logger.info(
                    "%s: not retried: %s (%s, transient=%s, maybe_applied=%s)",
                    self.name,
                    exc.code.value,
                    exc.connector,
                    exc.transient,
                    exc.maybe_applied,
                )
                raise exc
            if eta is None:
                countdown = retry_countdown(exc, countdown)
        return super().retry(
            args=args,
            kwargs=kwargs,
            exc=exc,
            throw=throw,
            eta=eta,
            countdown=countdown,
            max_retries=max_retries,
            **options,
        )
