"""A connector created before os.fork() works in the child, and the parent is untouched."""

import os
import sys

import pytest

from .fakes import FakeConfig, FakeConnector

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def run_in_child(fn):
    """Fork; run fn() in the child; return its exit status (0 = fn returned True)."""
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            code = 0 if fn() else 3
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 2
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


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
    import threading

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
