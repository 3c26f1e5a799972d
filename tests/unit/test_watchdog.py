"""The core watchdog: client-side deadlines that end a wait the driver would never end."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from dictamesh_connectors._watchdog import Watchdog, shutdown_socket
from tests.forking import held_by_another_thread, run_in_child


def wait_until(predicate, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_an_expired_deadline_runs_its_action_once_and_disarm_says_it_fired():
    dog = Watchdog(tick=0.01)
    fired = []
    key = dog.arm(0.05, lambda: fired.append(1))
    assert wait_until(lambda: fired)
    time.sleep(0.05)
    assert fired == [1]
    assert dog.disarm(key) is True
    assert dog.armed() == 0


def test_a_deadline_disarmed_in_time_never_fires():
    dog = Watchdog(tick=0.01)
    fired = []
    key = dog.arm(0.5, lambda: fired.append(1))
    assert dog.disarm(key) is False
    time.sleep(0.6)
    assert fired == []


def test_the_thread_ends_when_nothing_is_armed_and_restarts_on_demand():
    dog = Watchdog(tick=0.01)
    dog.disarm(dog.arm(10.0, lambda: None))
    assert wait_until(lambda: dog._thread is None, timeout=5.0)
    fired = threading.Event()
    dog.arm(0.02, fired.set)
    assert fired.wait(5.0)


def test_a_failing_action_does_not_stop_the_others():
    dog = Watchdog(tick=0.01)
    fired = []

    def boom() -> None:
        raise RuntimeError("boom")

    dog.arm(0.01, boom)
    dog.arm(0.01, lambda: fired.append(1))
    assert wait_until(lambda: fired)


def test_many_threads_arm_and_disarm_at_once():
    dog = Watchdog(tick=0.01)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(500):
                assert dog.disarm(dog.arm(30.0, lambda: None)) is False
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert dog.armed() == 0


def test_shutdown_socket_wakes_a_blocked_reader_and_leaves_the_fd_open():
    left, right = socket.socketpair()
    with left, right:
        got: list[bytes] = []
        reader = threading.Thread(target=lambda: got.append(left.recv(10)))
        reader.start()
        time.sleep(0.05)
        shutdown_socket(left.fileno())
        reader.join(10)
        assert not reader.is_alive()
        assert got == [b""]
        os.fstat(left.fileno())  # still open: the driver closes its own descriptor


def test_shutdown_socket_ignores_what_is_not_a_socket():
    read_end, write_end = os.pipe()
    try:
        before = len(os.listdir("/proc/self/fd"))
        shutdown_socket(read_end)
        shutdown_socket(-1)
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        os.close(read_end)
        os.close(write_end)


@pytest.mark.parametrize("held", [False, True])
def test_a_forked_child_starts_its_own_thread(held: bool):
    dog = Watchdog(tick=0.01)
    dog.arm(3600.0, lambda: None)  # the parent's thread runs

    def child() -> bool:
        assert dog.armed() == 0  # the parent's deadlines are not the child's
        fired = threading.Event()
        dog.arm(0.02, fired.set)
        return fired.wait(10)

    with held_by_another_thread(*([dog._lock] if held else [])):
        assert run_in_child(child, timeout=30) == 0
