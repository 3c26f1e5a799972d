"""A connector created before os.fork() works in the child, and the parent is untouched."""

import os
import threading

import pytest

from tests.forking import run_in_child

from .fakes import Blocker, FakeConfig, FakeConnector

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def test_child_drops_parent_handle_and_rebuilds_on_first_use():
    c = FakeConnector(FakeConfig())
    c.connect()
    parent_handle = c.opened[0]

    def child():
        assert c.is_connected
        assert c._handle is None  # dropped right after the fork
        assert parent_handle.discarded and not parent_handle.closed
        assert c.work() == 2  # a new handle of the child's own
        assert len(c.opened) == 2
        c.disconnect()
        assert c.opened[1].closed and not parent_handle.closed
        return True

    assert run_in_child(child) == 0
    # The parent's handle was neither closed nor replaced.
    assert not parent_handle.closed and not parent_handle.discarded
    assert c.work() == 1
    c.disconnect()


def test_fork_while_another_thread_holds_the_lock():
    c = FakeConnector(FakeConfig())
    c.connect()
    held, release = threading.Event(), threading.Event()

    def hold():
        with c._lock:
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        # Without a fresh lock in the child this would deadlock.
        assert run_in_child(lambda: c.work() == 2) == 0
    finally:
        release.set()
        t.join()
    c.disconnect()


def test_disconnected_connector_stays_disconnected_in_child():
    c = FakeConnector(FakeConfig())

    def child():
        from dictamesh_connectors.errors import NotConnectedError

        try:
            c.work()
        except NotConnectedError:
            return True
        return False

    assert run_in_child(child) == 0


def test_fork_from_inside_an_operation_keeps_the_child_in_flight_count_right():
    """An operation that forks ends in both processes; the child's count must not go negative.

    If it did, the child's next disconnect() would not wait for a running
    operation and would close the handle under it.
    """
    c = FakeConnector(FakeConfig())
    c.connect()
    pids = []

    def forks(handle):
        pids.append(os.fork())
        return handle.serial

    assert c.work(forks) == 1
    if pids[0] == 0:  # the child: the operation begun in the parent just ended here
        ok = False
        try:
            ok = c._inflight == 0
            slow = Blocker()
            t = threading.Thread(target=c.work, args=(slow,))
            t.start()
            slow.started.wait(5)
            closer = threading.Thread(target=c.disconnect)
            closer.start()
            closer.join(0.2)
            ok = ok and closer.is_alive()  # disconnect() waits for the operation
            slow.release.set()
            t.join(5)
            closer.join(5)
            ok = ok and slow.saw_closed == [False] and c._inflight == 0
        finally:
            os._exit(0 if ok else 3)
    _, status = os.waitpid(pids[0], 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert c._inflight == 0  # the parent's count is untouched
    c.disconnect()
