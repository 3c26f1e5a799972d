"""A connector created before os.fork() works in the child, and the parent is untouched."""

import functools
import gc
import os
import pathlib
import re
import threading
import weakref

import pytest

from dictamesh_connectors import _fork
from tests.forking import held_by_another_thread, run_in_child

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
    with held_by_another_thread(c._lock):
        # Without a fresh lock in the child this would deadlock.
        assert run_in_child(lambda: c.work() == 2) == 0
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


@pytest.mark.parametrize("make", ["lock", "rlock", "condition"])
def test_forkable_locks_held_by_another_thread_are_free_in_the_child(make):
    lock = {
        "lock": _fork.create_lock,
        "rlock": _fork.create_rlock,
        "condition": _fork.create_condition,
    }[make]()
    with held_by_another_thread(lock):
        assert run_in_child(lambda: lock.acquire(timeout=2)) == 0
        assert not lock.acquire(timeout=0)  # the parent's holder still holds it


def _reset_ran(obj):
    return obj.reset_saw_lock_free is True


def test_child_resets_run_after_the_locks_and_are_held_weakly():
    class Resettable:
        def __init__(self):
            self.lock = _fork.create_lock()
            self.reset_saw_lock_free = None
            _fork.register_child_reset(self)

        def _after_fork_in_child(self):
            self.reset_saw_lock_free = self.lock.acquire(timeout=1)

    obj = Resettable()
    with held_by_another_thread(obj.lock):
        assert run_in_child(functools.partial(_reset_ran, obj)) == 0
    assert obj.reset_saw_lock_free is None  # the parent never ran it
    ref = weakref.ref(obj)
    obj = None
    gc.collect()
    assert ref() is None  # registration does not keep it alive


def test_a_reset_that_raises_does_not_break_the_child():
    class Broken:
        def _after_fork_in_child(self):
            raise RuntimeError("boom")

    broken = Broken()
    _fork.register_child_reset(broken)
    assert run_in_child(lambda: True) == 0
    del broken


def test_a_reset_the_hook_missed_is_caught_by_the_fork_generation_check():
    c = FakeConnector(FakeConfig())
    c.connect()
    c._pid, c._forks = -1, -1  # as if this (pretend) child's reset had not run
    assert c.work() == 2  # the "inherited" handle was dropped, a new one opened
    assert c.opened[0].discarded and not c.opened[0].closed
    assert c._forks == _fork.generation
    c.disconnect()


def test_a_fork_that_bypassed_the_hook_is_caught_by_the_pid_check_of_the_slow_path():
    """A C extension's fork moves the pid but not the fork generation.

    The hot path reads only the generation (os.getpid() is a system call);
    any path through the lock (connecting, reconnecting) compares the pid.
    """
    c = FakeConnector(FakeConfig())
    c.connect()
    c._invalidate(c.opened[0])  # lost before the fork: the next use reconnects
    assert c.work() == 2
    c._invalidate(c.opened[1])
    c._pid = -1  # the (pretend) child: the hook did not run, the generation did not move
    assert c.work() == 3
    assert c._pid == os.getpid() and c.stats().operations == 1  # counters restarted
    c.disconnect()


def test_only_the_fork_module_registers_a_fork_hook():
    root = pathlib.Path(_fork.__file__).parent
    users = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "register_at_fork(" in p.read_text(encoding="utf-8")
    )
    assert users == ["_fork.py"]


def test_no_hand_written_after_fork_reset_outside_the_fork_module():
    # One after-fork hook (issue #7): per-process state resets in
    # _after_fork_in_child, registered with _fork.register_child_reset. The
    # one reset_after_fork left is Connectors' public hook for frameworks
    # (Celery's worker_process_init), which calls into the same resets.
    root = pathlib.Path(_fork.__file__).parent
    found = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "def reset_after_fork(" in p.read_text(encoding="utf-8")
    )
    assert found == ["connectors.py"]


def test_the_package_makes_its_locks_through_the_fork_module():
    """A plain threading lock or Condition is reset in no forked child (held there forever
    if another thread held it at the fork): every one comes from ``_fork``."""
    root = pathlib.Path(_fork.__file__).parent
    plain = re.compile(r"threading\.(Lock|RLock|Condition)\(")
    # Plain on purpose, each with the reason it is fork-safe.
    allowed = {
        # A _Directory lives only while its fsync runs, reachable only from the
        # registry, which a forked child empties (_Registry._after_fork_in_child).
        ("file/dirsync.py", "self.cond = threading.Condition(threading.Lock())"),
    }
    found = sorted(
        f"{p.relative_to(root)}:{n}: {line.strip()}"
        for p in root.rglob("*.py")
        if p.name != "_fork.py"
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if plain.search(line)
        and "type(threading." not in line
        and not any(
            str(p.relative_to(root)) == path and line.strip().startswith(code)
            for path, code in allowed
        )
    )
    assert found == []


def test_the_locks_found_by_the_review_are_forkable():
    from dictamesh_connectors import registry
    from dictamesh_connectors.kafka.producer import DeliveryFuture
    from dictamesh_connectors.testing.conformance import ErrorRecorder
    from dictamesh_connectors.testing.conformance._locks import fork_registered

    assert fork_registered(ErrorRecorder()._lock)
    assert fork_registered(DeliveryFuture()._condition)
    assert fork_registered(registry._lock)


@pytest.mark.parametrize(
    ("module", "path"),
    [
        ("dictamesh_connectors.registry", "_lock"),
        ("dictamesh_connectors.observability", "_global_lock"),
        ("dictamesh_connectors.kafka.connector", "_live_lock"),
        ("dictamesh_connectors.kafka.connector", "_hook_lock"),
        ("dictamesh_connectors.kafka.producer", "_condition_lock"),
        ("dictamesh_connectors.file.dirsync", "_registry.lock"),
    ],
)
def test_module_locks_of_the_later_connectors_are_free_in_a_child(module, path):
    # Issue #7: every connector, the new ones included, makes its locks with
    # _fork; a real fork while another thread holds each module-level one
    # (HTTP's and SOAP's: tests/unit/http/test_fork.py).
    import importlib

    lock = importlib.import_module(module)
    for name in path.split("."):
        lock = getattr(lock, name)

    def child():
        if not lock.acquire(timeout=2):
            return False
        lock.release()
        return True

    with held_by_another_thread(lock):
        assert run_in_child(child, timeout=20) == 0
