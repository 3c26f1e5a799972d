"""Events and stats() of the base class (observability), on the fake connector."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest

from dictamesh_connectors import observability
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.observability import Listener, Stats
from dictamesh_connectors.retry import RetryPolicy

from .fakes import FakeConfig, FakeConnector, FakeDriverError

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)


class Recorder(Listener):
    def __init__(self, connector=None):
        self.events = []
        self.connector = connector
        self.lock_held = []

    def _note(self, *event):
        if self.connector is not None:
            self.lock_held.append(self.connector._lock._is_owned())
        self.events.append(event)

    def on_connect(self, connector):
        self._note("connect", connector.name)

    def on_disconnect(self, connector):
        self._note("disconnect", connector.name)

    def on_operation(self, connector, operation, duration, error):
        assert duration >= 0
        self._note("operation", operation, None if error is None else error.code)

    def on_retry(self, connector, operation, attempt, wait, error):
        self._note("retry", operation, attempt, error.code)

    def on_error(self, connector, operation, error):
        self._note("error", operation, error.code)


def test_events_in_order_and_never_under_the_lock():
    c = FakeConnector(FakeConfig(retry=FAST))
    rec = Recorder(c)
    c.add_listener(rec)
    c.connect()
    assert c.work() == 1
    failures = [FakeDriverError("flaky", lost=True)]

    def flaky(handle):
        if failures:
            raise failures.pop()
        return "ok"

    assert c.work(flaky) == "ok"
    c.disconnect()
    assert rec.events == [
        ("connect", "fake"),
        ("operation", "work", None),
        ("operation", "work", ErrorCode.CONNECTION_LOST),
        ("error", "work", ErrorCode.CONNECTION_LOST),
        ("retry", "work", 1, ErrorCode.CONNECTION_LOST),
        ("connect", "fake"),  # the lost handle was reopened
        ("operation", "work", None),
        ("disconnect", "fake"),
    ]
    assert rec.lock_held and not any(rec.lock_held)


def test_a_listener_that_raises_is_logged_and_never_breaks_the_operation(caplog):
    class Broken(Listener):
        def on_operation(self, connector, operation, duration, error):
            raise RuntimeError("listener bug")

    c = FakeConnector(FakeConfig())
    c.add_listener(Broken())
    c.connect()
    with caplog.at_level(logging.WARNING, logger="dictamesh_connectors.observability"):
        assert c.work() == 1
    assert "failed in on_operation" in caplog.text and "listener bug" in caplog.text
    c.disconnect()


def test_global_listeners_see_every_connector_and_can_be_removed():
    rec = Recorder()
    observability.add_listener(rec)
    try:
        a, b = FakeConnector(FakeConfig()), FakeConnector(FakeConfig())
        a.connect()
        b.connect()
        a.work()
        b.work()
    finally:
        observability.remove_listener(rec)
    a.work()
    assert [e for e in rec.events if e[0] == "operation"] == [("operation", "work", None)] * 2
    assert observability.global_listeners() == ()
    a.disconnect()
    b.disconnect()


def test_listener_objects_may_have_only_some_methods():
    seen = []

    class OnlyErrors:
        def on_error(self, connector, operation, error):
            seen.append(error.code)

    c = FakeConnector(FakeConfig(retry=RetryPolicy.no_retry()))
    c.add_listener(OnlyErrors())
    c.connect()
    with pytest.raises(ConnectorError):
        c.work(lambda h: (_ for _ in ()).throw(FakeDriverError("boom")))
    assert len(seen) == 1
    c.remove_listener(OnlyErrors())  # not subscribed: no error
    c.disconnect()


def test_an_operation_with_a_target_reaches_listeners_as_its_name_carrying_it():
    """A connector that stores ``_target`` on the operation (MongoDB: the collection)
    hands listeners an ``Operation``: equal to the plain name, with ``.target``."""
    seen = []

    class Names(Listener):
        def on_operation(self, connector, operation, duration, error):
            seen.append(("operation", operation, getattr(operation, "target", None)))

        def on_error(self, connector, operation, error):
            seen.append(("error", operation, getattr(operation, "target", None)))

    c = FakeConnector(FakeConfig(retry=RetryPolicy.no_retry()))
    c.connect()
    c.add_listener(Names())
    with c._use("find_one"):
        pass
    op = c._use("find_one")
    op._target = "users"
    with op:
        pass
    op = c._use("insert_one")
    op._target = "users"
    with pytest.raises(ConnectorError), op:
        raise ConnectorError("boom", code=ErrorCode.CONFLICT)
    assert seen == [
        ("operation", "find_one", None),
        ("operation", "find_one", "users"),
        ("operation", "insert_one", "users"),
        ("error", "insert_one", "users"),
    ]
    named = seen[1][1]
    assert isinstance(named, observability.Operation) and isinstance(named, str)
    assert named == "find_one" and hash(named) == hash("find_one") and str(named) == "find_one"
    assert type(str(named)) is str
    assert c.stats().errors == {"CONFLICT": 1}
    c.disconnect()


def test_stats_count_operations_errors_and_retries_under_32_threads():
    c = FakeConnector(FakeConfig(retry=FAST))
    c.connect()

    def call(i):
        attempts = []

        def body(handle):  # every tenth call fails once, then succeeds
            attempts.append(1)
            if i % 10 == 0 and len(attempts) == 1:
                raise FakeDriverError("flaky", lost=True)
            return i

        return c.work(body)

    with ThreadPoolExecutor(32) as pool:
        assert list(pool.map(call, range(320))) == list(range(320))
    stats = c.stats()
    assert isinstance(stats, Stats)
    assert stats.errors == {"CONNECTION_LOST": 32}
    assert stats.operations == 320 + 32  # every attempt is an operation
    assert stats.retries == 32
    assert stats.in_flight == 0 and stats.pool == {}
    c.disconnect()


def test_an_operation_recorded_outside_the_in_flight_accounting():
    """_record_operation (a Kafka consumer's calls): counted and reported like a _use()
    block, never in flight, even while disconnected; no clock read without listeners."""
    c = FakeConnector(FakeConfig())
    assert c._operation_clock() == 0.0  # no listener: no clock read
    c._record_operation("poll", c._operation_clock())
    assert c.stats().operations == 1 and c.stats().in_flight == 0
    rec = Recorder(c)
    c.add_listener(rec)
    started = c._operation_clock()
    assert started > 0
    failure = ConnectorError("gone", code=ErrorCode.NOT_FOUND)
    c._record_operation(observability.Operation("poll", "orders", group="g", records=0), started)
    c._record_operation("commit", c._operation_clock(), failure)
    assert rec.events == [
        ("operation", "poll", None),
        ("operation", "commit", ErrorCode.NOT_FOUND),
        ("error", "commit", ErrorCode.NOT_FOUND),
    ]
    assert rec.lock_held == [False, False, False]
    stats = c.stats()
    assert stats.operations == 3 and stats.errors == {"NOT_FOUND": 1}
    assert c._in_flight_threads() == {} and c.state.value == "disconnected"


def test_operation_carries_a_consumers_group_and_record_count():
    op = observability.Operation("consume", "orders", group="billing", records=3)
    assert op == "consume" and hash(op) == hash("consume")
    assert (op.target, op.group, op.records) == ("orders", "billing", 3)
    plain = observability.Operation("find_one", "users")
    assert plain.group is None and plain.records is None
