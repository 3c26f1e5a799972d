"""The Connector base class: state machine, in-flight drain, no lock across I/O, reconnect."""

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

from .fakes import FakeConfig, FakeConnector, FakeDriverError

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)


def make(**kw):
    return FakeConnector(FakeConfig(retry=FAST, **kw))


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
    while c.state is not State.CONNECTING:
        time.sleep(0.001)
    c.disconnect()
    c.open_gate.set()
    t.join(5)
    assert errors and c.state is State.DISCONNECTED
    assert all(h.closed for h in c.opened)


def test_disconnect_drains_in_flight_operations():
    c = make()
    c.connect()
    started, release = threading.Event(), threading.Event()
    results = []

    def slow(handle):
        started.set()
        release.wait(5)
        results.append(handle.closed)
        return "done"

    with ThreadPoolExecutor(2) as pool:
        op = pool.submit(c.work, slow)
        started.wait(5)
        closer = pool.submit(c.disconnect)
        time.sleep(0.05)
        assert c.state is State.DISCONNECTING and not closer.done()
        with pytest.raises(NotConnectedError):
            c.work()
        release.set()
        assert op.result(5) == "done"
        closer.result(5)
    assert results == [False]  # the handle was still open while the operation ran
    assert c.opened[0].closed and c.state is State.DISCONNECTED


def test_disconnect_timeout_closes_anyway():
    c = make()
    c.connect()
    started, release = threading.Event(), threading.Event()

    def slow(handle):
        started.set()
        release.wait(5)

    t = threading.Thread(target=c.work, args=(slow,))
    t.start()
    started.wait(5)
    t0 = time.monotonic()
    c.disconnect(timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < 2
    assert c.opened[0].closed
    release.set()
    t.join(5)


def test_no_lock_across_io_slow_operation_does_not_block_others():
    c = make()
    c.connect()
    started, release = threading.Event(), threading.Event()

    def slow(handle):
        started.set()
        release.wait(10)
        return "slow"

    with ThreadPoolExecutor(4) as pool:
        slow_future = pool.submit(c.work, slow)
        assert started.wait(5)
        fast = [pool.submit(c.work) for _ in range(20)]
        ping = pool.submit(c.ping)
        for f in fast:
            assert f.result(timeout=2) == 1
        ping.result(timeout=2)
        assert not slow_future.done()
        release.set()
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
