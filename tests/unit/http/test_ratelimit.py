"""The token bucket: burst then rate, fair sharing between threads, fork while its lock is held."""

import threading

import pytest

from dictamesh_connectors.http import TokenBucket

from .test_fork import holding


class Clock:
    def __init__(self):
        self.now = 0.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.slept.append(s)


def test_token_bucket_burst_then_rate():
    clock = Clock()
    bucket = TokenBucket(10, burst=3, clock=clock, sleep=clock.sleep)
    waits = [bucket.reserve() for _ in range(5)]
    assert waits[:3] == [0, 0, 0]
    assert waits[3] == pytest.approx(0.1) and waits[4] == pytest.approx(0.2)
    clock.now = 10.0  # refills, capped at the burst
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_token_bucket_is_shared_fairly_by_threads():
    clock = Clock()
    bucket = TokenBucket(100, burst=1, clock=clock, sleep=clock.sleep)
    waits = []
    lock = threading.Lock()

    def take():
        for _ in range(50):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 reservations at 100/s with no time passing: waits 0, 0.01, ..., 3.99 exactly once.
    assert sorted(round(w, 6) for w in waits) == [round(i / 100, 6) for i in range(400)]


def test_fork_while_another_thread_holds_the_bucket_lock():
    clock = Clock()
    bucket = TokenBucket(10, burst=5, clock=clock, sleep=clock.sleep)
    # In the child the holder thread does not exist: the lock must be free there.
    assert holding(bucket._lock, lambda: bucket.reserve() == 0.0) == 0
