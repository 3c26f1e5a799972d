"""The Celery pattern's decisions (which errors retry, with what countdown) and its signals."""

from __future__ import annotations

import pytest

pytest.importorskip("celery")

from celery import Celery, signals
from celery.exceptions import Retry

from dictamesh_connectors import registry
from dictamesh_connectors.base import State
from dictamesh_connectors.connectors import Connectors
from dictamesh_connectors.contrib.celery import (
    ConnectorTask,
    install,
    retry_countdown,
    should_retry,
)
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from tests.unit.fakes import FakeConnector


@pytest.mark.parametrize(
    "transient, maybe_applied, idempotent, expected",
    [
        (True, False, False, True),
        (True, False, True, True),
        (True, True, True, True),
        (True, True, False, False),
        (False, False, True, False),
        (False, True, True, False),
    ],
)
def test_should_retry(transient, maybe_applied, idempotent, expected):
    err = ConnectorError("x", transient=transient, maybe_applied=maybe_applied)
    assert should_retry(err, idempotent=idempotent) is expected


def test_retry_countdown_takes_the_longer_of_backoff_and_retry_after():
    assert retry_countdown(ConnectorError("x"), 2.0) == 2.0
    assert retry_countdown(ConnectorError("x", retry_after=5), 2.0) == 5.0
    assert retry_countdown(ConnectorError("x", retry_after=1), 2.0) == 2.0
    assert retry_countdown(ConnectorError("x", retry_after=3), None) == 3.0


@pytest.fixture
def eager_app():
    app = Celery("unit", broker="memory://", backend="cache+memory://")
    app.conf.task_always_eager = False
    return app


def _task(app, exc, **options):
    @app.task(base=ConnectorTask, bind=True, name=f"t{id(exc)}", **options)
    def task(self):
        raise exc

    return task


def test_transient_error_asks_celery_to_retry_with_retry_after(eager_app, monkeypatch):
    err = ConnectorError("busy", code=ErrorCode.UNAVAILABLE, retry_after=7)
    task = _task(eager_app, err)
    seen = {}

    def fake_apply_async(self, *args, **kwargs):  # Celery's retry re-sends the task
        seen.update(kwargs)

    real = task._get_current_object()
    monkeypatch.setattr(real, "apply_async", fake_apply_async.__get__(real))
    real.push_request(id="t-1", retries=0, called_directly=False, delivery_info={})
    try:
        with pytest.raises(Retry):
            task.run()
    finally:
        real.pop_request()
    assert seen["countdown"] >= 7


def test_permanent_error_fails_at_once(eager_app):
    err = ConnectorError("no", code=ErrorCode.AUTH_FAILED)
    task = _task(eager_app, err)
    with pytest.raises(ConnectorError) as info:
        task.run()
    assert info.value is err


def test_maybe_applied_not_retried_for_a_non_idempotent_task(eager_app):
    err = ConnectorError("timeout", code=ErrorCode.TIMEOUT, maybe_applied=True)
    task = _task(eager_app, err, idempotent=False)
    with pytest.raises(ConnectorError):
        task.run()


def test_install_connects_fork_reset_and_shutdown_handlers():
    registry.register("fake", FakeConnector)
    try:
        connectors = Connectors({"a": "fake://a"})
        install(lambda: connectors, close_timeout=5)
        a = connectors.get("a")
        calls = []
        a._after_fork_in_child = lambda: calls.append("reset")
        signals.worker_process_init.send(sender=None)
        assert calls == ["reset"]
        signals.worker_shutdown.send(sender=None)
        assert a.state is State.DISCONNECTED
    finally:
        registry._registered.pop("fake", None)
