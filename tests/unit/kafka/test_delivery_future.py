"""DeliveryFuture: a real Future whose resolution takes no lock (the delivery report path)."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import confluent_kafka
import pytest

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.kafka.producer import DeliveryFuture, RecordMetadata, new_future


def _message(offset: int) -> confluent_kafka.Message:
    return confluent_kafka.Message(
        topic="t", partition=2, offset=offset, value=b"v", timestamp=(1, 1_700_000_000_000)
    )


def test_it_is_its_own_delivery_callback_and_a_real_future():
    future = new_future()
    assert isinstance(future, concurrent.futures.Future) and isinstance(future, DeliveryFuture)
    assert future.running() and not future.done() and not future.cancel()
    future(None, _message(7))
    assert future.done() and not future.cancelled()
    assert future.result(0) == RecordMetadata("t", 2, 7, 1_700_000_000_000)
    assert future.exception(0) is None
    seen = []
    future.add_done_callback(seen.append)  # already done: called at once
    assert seen == [future]
    assert "finished" in repr(future)
    with pytest.raises(concurrent.futures.InvalidStateError):
        future.set_result(RecordMetadata("t", 0, 0, None))


def test_a_failed_delivery_is_a_classified_error():
    future = DeliveryFuture()
    future(confluent_kafka.KafkaError(confluent_kafka.KafkaError._MSG_TIMED_OUT), _message(1))
    error = future.exception(0)
    assert isinstance(error, ConnectorError) and error.maybe_applied
    with pytest.raises(ConnectorError):
        future.result(0)


def _blocked_in_wait(future: DeliveryFuture) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cond = future._cond
        if cond is not None and cond._waiters:  # type: ignore[attr-defined]
            return True
        time.sleep(0.001)
    return False


@pytest.mark.parametrize("outcome", ["result", "error"])
def test_a_thread_already_waiting_is_woken_by_the_delivery_report(outcome):
    future = new_future()
    called = []
    future.add_done_callback(called.append)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(future.exception(60)))
    completed: list[object] = []
    watcher = threading.Thread(
        target=lambda: completed.extend(concurrent.futures.as_completed([future], timeout=60))
    )
    waiter.start()
    assert _blocked_in_wait(future)
    watcher.start()
    while len(future._cond._waiters) < 1 or not future._waiters:  # type: ignore[union-attr]
        time.sleep(0.001)  # as_completed installed its waiter
    if outcome == "result":
        future(None, _message(3))
    else:
        future(confluent_kafka.KafkaError(confluent_kafka.KafkaError._MSG_TIMED_OUT), None)
    waiter.join(10)
    watcher.join(10)
    assert not waiter.is_alive() and not watcher.is_alive()  # woken, not timed out
    assert completed == [future] and called == [future]
    assert (got[0] is None) == (outcome == "result")


def _race_once(per_round: int) -> None:
    futures = [new_future() for _ in range(per_round)]
    calls: list[DeliveryFuture] = []
    results: list[RecordMetadata] = []
    go = threading.Barrier(4)

    def wait_one_by_one() -> None:
        go.wait()
        results.extend(f.result(10) for f in futures)

    def as_completed() -> None:
        go.wait()
        done = list(concurrent.futures.as_completed(futures, timeout=10))
        assert len(done) == per_round

    def add_callbacks() -> None:
        go.wait()
        for f in futures:
            f.add_done_callback(calls.append)

    def resolve() -> None:
        go.wait()
        for offset, f in enumerate(futures):
            f(None, _message(offset))

    threads = [
        threading.Thread(target=fn)
        for fn in (wait_one_by_one, as_completed, add_callbacks, resolve)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
        assert not t.is_alive()
    assert [r.offset for r in results] == list(range(per_round))
    assert sorted(calls, key=id) == sorted(futures, key=id)  # each callback exactly once
    assert concurrent.futures.wait(futures, timeout=0).not_done == set()


def test_waiters_and_callbacks_racing_the_resolution_are_all_served_once():
    """Resolution sets FINISHED, then looks for a Condition; waiters make one, then look."""
    for _ in range(200):
        _race_once(8)
