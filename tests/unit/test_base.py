"""The Connector base class: state machine, in-flight drain, no lock across I/O, reconnect."""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from dictamesh_connectors.base import State
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
)
from dictamesh_connectors.retry import RetryPolicy

from .fakes import Blocker, FakeConfig, FakeConnector, FakeDriverError, wait_until

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)


def make(**kw):
    return FakeConnector(FakeConfig(retry=FAST, **kw))


def start_draining_disconnect(pool, c):
    """Submit ``c.disconnect()``; check it waits for in-flight work and refuses new work."""
    closer = pool.submit(c.disconnect)
    wait_until(lambda: c.state is State.DISCONNECTING)
    time.sleep(0.05)
    assert not closer.done()
    with pytest.raises(NotConnectedError):
        c.work()
    return closer


def test_state_machine_and_idempotence():
    c = make()
    assert c.state is State.DISCONNECTED and not c.is_connected
    c.connect()
    c.connect()
    assert c.state is State.CONNECTED and c.is_connected
    assert len(c.opened) == 1
    handle = c.opened[0]
    c.disconnect()
    c.disconnect()
    assert c.state is State.DISCONNECTED and handle.closed
    c.connect()
    assert len(c.opened) == 2 and c.is_connected
    c.disconnect()


def test_operations_need_a_connection():
    c = make()
    with pytest.raises(NotConnectedError):
        c.work()
    with pytest.raises(NotConnectedError):
        c.ping()


def test_context_manager_connects_and_disconnects():
    with make() as c:
        assert c.work() == 1
    assert c.state is State.DISCONNECTED and c.opened[0].closed


def test_failed_connect_leaves_connector_reusable():
    c = make()
    c.fail_open = FakeDriverError("refused", lost=True)
    with pytest.raises(ConnectorError) as info:
        c.connect()
    assert info.value.code is ErrorCode.CONNECTION_LOST
    assert isinstance(info.value.__cause__, FakeDriverError)
    assert c.state is State.DISCONNECTED
    c.fail_open = None
    c.connect()
    assert c.work() == 1


def test_wrong_config_type_is_rejected():
    with pytest.raises(InvalidConfigError):
        FakeConnector(object())


def test_many_threads_race_connect_and_open_once():
    c = make()
    c.open_gate = threading.Event()
    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(c.connect) for _ in range(16)]
        time.sleep(0.05)
        c.open_gate.set()
        for f in futures:
            f.result()
    assert len(c.opened) == 1 and c.is_connected
    c.disconnect()


def test_disconnect_winning_a_race_with_connect_does_not_leak():
    c = make()
    c.open_gate = threading.Event()
    errors = []

    def connect():
        try:
            c.connect()
        except NotConnectedError as err:
            errors.append(err)

    t = threading.Thread(target=connect)
    t.start()
    wait_until(lambda: c.state is State.CONNECTING)
    c.disconnect()
    c.open_gate.set()
    t.join(5)
    assert errors and c.state is State.DISCONNECTED
    assert all(h.closed for h in c.opened)


def test_disconnect_drains_in_flight_operations():
    c = make()
    c.connect()
    slow = Blocker(result="done")

    with ThreadPoolExecutor(2) as pool:
        op = pool.submit(c.work, slow)
        assert slow.started.wait(5)
        closer = start_draining_disconnect(pool, c)
        slow.release.set()
        assert op.result(5) == "done"
        closer.result(5)
    assert slow.saw_closed == [False]  # the handle was still open while the operation ran
    assert c.opened[0].closed and c.state is State.DISCONNECTED


def test_disconnect_timeout_closes_anyway():
    c = make()
    c.connect()
    slow = Blocker()
    t = threading.Thread(target=c.work, args=(slow,))
    t.start()
    assert slow.started.wait(5)
    t0 = time.monotonic()
    c.disconnect(timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < 2
    assert c.opened[0].closed
    slow.release.set()
    t.join(5)


def test_no_lock_across_io_slow_operation_does_not_block_others():
    c = make()
    c.connect()
    slow = Blocker(result="slow", limit=10)

    with ThreadPoolExecutor(4) as pool:
        slow_future = pool.submit(c.work, slow)
        assert slow.started.wait(5)
        fast = [pool.submit(c.work) for _ in range(20)]
        ping = pool.submit(c.ping)
        for f in fast:
            assert f.result(timeout=2) == 1
        ping.result(timeout=2)
        assert not slow_future.done()
        slow.release.set()
        assert slow_future.result(5) == "slow"
    c.disconnect()


def test_lost_connection_reconnects_automatically():
    c = make()
    c.connect()
    c.opened[0].broken = True
    assert c.work() == 2  # first attempt hits the broken handle, the retry reopens
    assert c.opened[0].closed and len(c.opened) == 2


def test_reconnect_is_bounded_by_the_retry_policy():
    c = make()
    c.connect()
    c.opened[0].broken = True
    c.fail_open = FakeDriverError("still down", lost=True)
    with pytest.raises(ConnectorError) as info:
        c.work()
    assert info.value.transient
    c.fail_open = None
    assert c.work() == 2  # recovers once the server is back, without connect()


def test_auto_reconnect_off_requires_connect():
    c = make(auto_reconnect=False)
    c.connect()
    c.opened[0].broken = True
    with pytest.raises(ConnectorError):
        c.work()
    with pytest.raises(NotConnectedError):
        c.work()
    c.connect()
    assert c.work() == 2


def test_permanent_errors_do_not_invalidate_the_handle():
    c = make()
    c.connect()

    def fails(handle):
        raise FakeDriverError("syntax error")

    with pytest.raises(ConnectorError) as info:
        c.work(fails)
    assert info.value.code is ErrorCode.QUERY_FAILED and not info.value.transient
    assert len(c.opened) == 1 and not c.opened[0].closed


def test_programming_errors_pass_through():
    c = make()
    c.connect()

    def bug(handle):
        raise TypeError("bug")

    with pytest.raises(TypeError):
        c.work(bug)


def test_hammer_connect_disconnect_and_operations_from_many_threads():
    c = make()
    stop = time.monotonic() + 1.0
    outcomes = {"ok": 0, "not_connected": 0}
    lock = threading.Lock()

    def worker(i):
        while time.monotonic() < stop:
            try:
                if i % 8 == 0:
                    c.disconnect()
                elif i % 8 == 1:
                    c.connect()
                else:
                    c.work()
                    with lock:
                        outcomes["ok"] += 1
            except NotConnectedError:
                with lock:
                    outcomes["not_connected"] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    c.disconnect()
    assert c.state is State.DISCONNECTED
    # Every handle ever opened was closed: nothing leaked.
    assert all(h.closed for h in c.opened)
    assert outcomes["ok"] > 0
    assert c._inflight == 0


def test_repr_masks_credentials():
    c = FakeConnector(FakeConfig.from_url("fake://alice:pa55word@db"))
    assert "pa55word" not in repr(c)
    assert "disconnected" in repr(c)


def test_disconnect_during_a_reconnect_drains_and_the_reopened_handle_is_closed():
    """disconnect() while an operation's automatic reconnection is still opening."""
    c = make()
    c.connect()
    slow = Blocker()

    with ThreadPoolExecutor(3) as pool:
        busy = pool.submit(c.work, slow)  # in flight on handle 1
        assert slow.started.wait(5)
        c.opened[0].broken = True
        c._invalidate(c.opened[0])  # the connection is lost: handle 1 dropped
        c.open_gate = threading.Event()
        reopening = pool.submit(c.work)  # reopens, blocked in _open
        wait_until(lambda: c.state is State.CONNECTING)
        # disconnect() waits for the operation still in flight ...
        closer = start_draining_disconnect(pool, c)
        slow.release.set()
        busy.result(5)
        closer.result(5)
        assert c.state is State.DISCONNECTED
        # ... and the reconnection, finishing after it, loses the race.
        c.open_gate.set()
        with pytest.raises(NotConnectedError):
            reopening.result(5)
    assert len(c.opened) == 2 and all(h.closed for h in c.opened)
    assert c._inflight == 0
    c.connect()  # reusable
    assert c.work() == 3
    c.disconnect()


def test_operations_abandoned_by_a_disconnect_timeout_end_harmlessly():
    """Late _release/_invalidate from operations a timed-out disconnect() left behind."""
    c = make()
    c.connect()
    old = c.opened[0]
    slow_then_lost = Blocker(error=FakeDriverError("reset", lost=True))

    with ThreadPoolExecutor(1) as pool:
        late = pool.submit(c.work, slow_then_lost, idempotent=True)
        assert slow_then_lost.started.wait(5)
        c.disconnect(timeout=0.05)
        assert c.state is State.DISCONNECTED and old.closed
        assert c._inflight == 0  # abandoned: a later disconnect() will not wait for it
        c.connect()
        new = c.opened[1]
        c.work()  # an operation of the new epoch, counted and released normally
        assert c._inflight == 0
        slow_then_lost.release.set()
        # Its retry ran on the new handle and failed the same way, so it
        # invalidated *that* one only; the stale one was not touched again.
        with pytest.raises(ConnectorError):
            late.result(5)
    assert c._inflight == 0
    assert c.work() >= 2  # the connector still works (reopened if needed)
    assert new in c.opened
    c.disconnect()
    assert all(h.closed for h in c.opened)


def test_late_invalidate_of_a_stale_handle_keeps_the_current_one():
    c = make()
    c.connect()
    old = c.opened[0]
    c.disconnect(timeout=0)
    c.connect()
    c._invalidate(old)  # an operation of the previous epoch reports its loss late
    assert c._handle is c.opened[1] and not c.opened[1].closed
    assert c.work() == 2
    c.disconnect()


class _Interrupt(BaseException):
    """Stands in for KeyboardInterrupt (which pytest itself would act on)."""


@pytest.mark.parametrize("interrupt", [_Interrupt, KeyboardInterrupt, SystemExit])
def test_base_exception_in_open_leaves_the_connector_reusable(interrupt):
    c = make()
    c.fail_open = interrupt()
    with pytest.raises(interrupt):
        c.connect()
    assert c.state is State.DISCONNECTED
    c.fail_open = None
    c.connect()
    # The same during an automatic reconnection: stays CONNECTED, retried next time.
    c.opened[0].broken = True
    c._invalidate(c.opened[0])
    c.fail_open = interrupt()
    with pytest.raises(interrupt):
        c.work()
    assert c.state is State.CONNECTED and c._handle is None and c._inflight == 0
    c.fail_open = None
    assert c.work() == 2
    c.disconnect()
    assert c.state is State.DISCONNECTED


def test_interrupted_disconnect_still_closes_and_never_sticks_in_disconnecting():
    c = make()
    c.connect()
    slow = Blocker()

    class InterruptedCondition(threading.Condition):
        def wait(self, timeout=None):
            if c.state is State.DISCONNECTING and threading.current_thread() is main:
                raise _Interrupt
            return super().wait(timeout)

    main = threading.current_thread()
    c._changed = InterruptedCondition(c._lock)

    t = threading.Thread(target=c.work, args=(slow,))
    t.start()
    assert slow.started.wait(5)
    with pytest.raises(_Interrupt):
        c.disconnect()  # Ctrl-C while it waits for the operation
    assert c.state is State.DISCONNECTED and c.opened[0].closed
    slow.release.set()
    t.join(5)
    assert c._inflight == 0
    c.connect()  # would hang forever if the state had stayed DISCONNECTING
    assert c.work() == 2
    c.disconnect()


def test_no_log_record_is_emitted_with_the_connector_lock_held():
    """Logging handlers may do I/O (files, sockets): never under the lock."""
    c = make(auto_reconnect=True)
    held = []

    class Probe(logging.Handler):
        def emit(self, record):
            held.append((record.getMessage(), c._lock._is_owned()))

    probe = Probe(logging.DEBUG)
    log = logging.getLogger("dictamesh_connectors")
    old_level = log.level
    log.addHandler(probe)
    log.setLevel(logging.DEBUG)
    try:
        c.connect()
        c.opened[0].broken = True
        c.work()  # connection lost -> WARNING, reconnect -> DEBUG
        slow = Blocker()
        t = threading.Thread(target=c.work, args=(slow,))
        t.start()
        assert slow.started.wait(5)
        c.disconnect(timeout=0.01)  # WARNING: still in flight
        slow.release.set()
        t.join(5)
    finally:
        log.removeHandler(probe)
        log.setLevel(old_level)
    messages = [m for m, _ in held]
    assert any("connected" in m for m in messages)
    assert any("connection lost" in m for m in messages)
    assert any("still in flight" in m for m in messages)
    assert not [m for m, owned in held if owned]


def test_version_and_name_are_class_attributes():
    from dictamesh_connectors import __version__

    c = make()
    assert c.version == __version__ and c.name == "fake"


def test_a_later_disconnect_does_not_wait_for_operations_an_earlier_one_abandoned():
    c = make()
    c.connect()
    stuck = Blocker(limit=10)  # e.g. a read on a dead socket without a timeout
    t = threading.Thread(target=c.work, args=(stuck,))
    t.start()
    assert stuck.started.wait(5)
    c.disconnect(timeout=0.05)  # gives up on it
    c.connect()
    t0 = time.monotonic()
    c.disconnect()  # no timeout: it must not wait for the abandoned operation
    assert time.monotonic() - t0 < 1
    stuck.release.set()
    t.join(5)
    assert c._inflight == 0


def _exits_within(fn, seconds=10.0):
    """Run ``fn`` in a thread; True when it returned within ``seconds`` (no deadlock)."""
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_disconnect_from_a_thread_holding_its_own_operation_does_not_deadlock(caplog):
    c = FakeConnector(FakeConfig())
    outcome = {}

    def body():
        with c, c._use():  # an operation this thread keeps open, like a stream
            c.disconnect()  # what `with connector:` does on the way out
            outcome["state"] = c.state
        outcome["after"] = c.state

    with caplog.at_level(logging.WARNING, logger="dictamesh_connectors.base"):
        assert _exits_within(body)
    assert outcome == {"state": State.DISCONNECTED, "after": State.DISCONNECTED}
    assert "1 of its own operation(s) open" in caplog.text and "not waited for" in caplog.text
    # The abandoned operation's end was not counted against the next life.
    c.connect()
    assert c.work() == 2 and c._inflight == 0 and not c._ops
    c.disconnect(timeout=1)


def test_disconnect_still_waits_for_other_threads_operations():
    c = FakeConnector(FakeConfig())
    c.connect()
    blocker = Blocker()
    other = threading.Thread(target=lambda: c.work(blocker))
    other.start()
    assert blocker.started.wait(5)
    done = threading.Event()

    def own_then_disconnect():
        with c._use():
            c.disconnect()
        done.set()

    t = threading.Thread(target=own_then_disconnect, daemon=True)
    t.start()
    assert not done.wait(0.3)  # waiting for the other thread's operation...
    blocker.release.set()
    assert done.wait(5)  # ...and only for it
    other.join(5)
    assert c.state is State.DISCONNECTED


@pytest.mark.parametrize("bad", [float("nan"), -1, 10**400, 1e306, 7 * 24 * 3600 + 1])
def test_ping_and_disconnect_refuse_unusable_timeouts_before_any_change(bad):
    c = FakeConnector(FakeConfig())
    c.connect()
    with pytest.raises(InvalidConfigError):
        c.ping(timeout=bad)
    with pytest.raises(InvalidConfigError):
        c.disconnect(timeout=bad)
    with pytest.raises(InvalidConfigError):
        c.ping(timeout=0)  # a zero network wait cannot succeed
    assert c.is_connected  # nothing changed
    with pytest.raises(TypeError):
        c.disconnect(timeout="5")
    c.disconnect(timeout=float("inf"))  # inf means no limit
    assert c.state is State.DISCONNECTED


class _RaceAtAdmission(set):
    """The in-flight set, where a disconnect() starts between an operation's add and its
    state check (the window of the lock-free registration), made to happen every time."""

    def __init__(self, connector):
        super().__init__()
        self.connector = connector
        self.closer = None
        self.seen = []  # (stats().in_flight, _in_flight_threads()) inside the window

    def add(self, op):
        super().add(op)
        if self.closer is None:
            self.closer = threading.Thread(target=self.connector.disconnect, daemon=True)
            self.closer.start()
            wait_until(lambda: self.connector.state is State.DISCONNECTING)
            self.seen.append(
                (self.connector.stats().in_flight, self.connector._in_flight_threads())
            )


def test_an_operation_refused_at_admission_never_shows_in_flight():
    """The drain contract as observers see it: what stats() shows in flight is admitted and
    runs to its end; an operation that loses the race with disconnect() is refused and was
    never shown (the conformance drain check disconnected on such a count and saw the
    "in-flight" operation refused)."""
    c = make()
    c.connect()
    ops = c._ops = _RaceAtAdmission(c)
    with pytest.raises(NotConnectedError):
        c.work()
    ops.closer.join(5)
    assert not ops.closer.is_alive() and c.state is State.DISCONNECTED
    assert ops.seen == [(0, {})]


def test_an_admitted_operation_shows_per_thread_and_finishes_through_a_disconnect():
    c = make()
    c.connect()
    blocker = Blocker(result="done")
    results = []
    worker = threading.Thread(target=lambda: results.append(c.work(blocker)), daemon=True)
    worker.start()
    assert blocker.started.wait(5)
    assert c._in_flight_threads() == {worker.ident: 1} and c.stats().in_flight == 1
    closer = threading.Thread(target=c.disconnect, daemon=True)
    closer.start()
    wait_until(lambda: c.state is State.DISCONNECTING)
    blocker.release.set()
    worker.join(5)
    closer.join(5)
    assert results == ["done"] and c.state is State.DISCONNECTED
    assert c._in_flight_threads() == {} and c.stats().in_flight == 0
