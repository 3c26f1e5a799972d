"""FaultPlan: programmed errors, latency, partial failures, the call record, threads."""

from __future__ import annotations

import pickle
import threading

import pytest

from dictamesh_connectors.errors import (
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing import fakes
from dictamesh_connectors.testing.fakes import ANY, FaultInjection, FaultPlan
from tests.unit.fakes import FakeClock, FakeConfig, FakeConnector


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def plan(**kwargs: object) -> FaultPlan:
    return FaultPlan("demo", sleep=kwargs.pop("sleep", Sleeps()), **kwargs)  # type: ignore[arg-type]


def test_nothing_programmed_is_a_normal_call():
    faults = plan()
    assert faults.check("query") is None
    assert faults.calls == ["query"]
    assert faults.pending == 0


def test_fail_next_raises_the_class_and_rule_of_the_code():
    faults = plan()
    faults.fail_next("query", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorTimeoutError) as info:
        faults.check("query")
    err = info.value
    assert err.code is ErrorCode.TIMEOUT
    assert err.transient and err.retry_hint is RetryHint.RETRY
    assert err.connector == "demo" and not err.maybe_applied
    assert err.details == {"injected": True, "operation": "query"}
    assert str(err) == "demo: query: injected fault (TIMEOUT)"
    assert faults.check("query") is None  # times=1: only the next call


def test_default_code_is_unavailable_and_permanent_codes_have_no_hint():
    faults = plan()
    faults.fail_next("get")
    faults.fail_next("put", code=ErrorCode.CONSTRAINT_VIOLATION, message="dup key")
    faults.fail_next("x", code=ErrorCode.CONNECTION_LOST)
    faults.fail_next("y", code=ErrorCode.NOT_CONNECTED)
    with pytest.raises(ConnectorError) as info:
        faults.check("get")
    assert (info.value.code, info.value.transient) == (ErrorCode.UNAVAILABLE, True)
    with pytest.raises(ConnectorError) as info:
        faults.check("put")
    assert str(info.value) == "dup key"
    assert (info.value.transient, info.value.retry_hint) == (False, RetryHint.NONE)
    with pytest.raises(ConnectorError) as info:
        faults.check("x")
    assert info.value.retry_hint is RetryHint.RECONNECT
    with pytest.raises(NotConnectedError):
        faults.check("y")


def test_retry_after_and_maybe_applied_and_details():
    faults = plan()
    faults.fail_next(
        "post",
        code=ErrorCode.RATE_LIMITED,
        retry_after=2.5,
        maybe_applied=True,
        details={"status": 429},
    )
    with pytest.raises(ConnectorError) as info:
        faults.check("post")
    err = info.value
    assert err.retry_after == 2.5 and err.retry_hint is RetryHint.RETRY_AFTER
    assert err.maybe_applied and err.details["status"] == 429
    clone = pickle.loads(pickle.dumps(err))
    assert (clone.code, clone.retry_after, clone.details) == (err.code, 2.5, err.details)


def test_times_and_after():
    faults = plan()
    faults.fail_next("query", times=2, after=1)
    outcomes = []
    for _ in range(4):
        try:
            faults.check("query")
            outcomes.append("ok")
        except ConnectorError:
            outcomes.append("fail")
    assert outcomes == ["ok", "fail", "fail", "ok"]
    assert faults.call_count("query") == 4


def test_faults_for_one_operation_queue_in_order():
    faults = plan()
    faults.fail_next("query", code=ErrorCode.TIMEOUT)
    faults.fail_next("query", code=ErrorCode.DEADLOCK)
    assert faults.pending == 2
    codes = []
    for _ in range(3):
        try:
            faults.check("query")
            codes.append(None)
        except ConnectorError as err:
            codes.append(err.code)
    assert codes == [ErrorCode.TIMEOUT, ErrorCode.DEADLOCK, None]


def test_star_matches_any_operation_and_named_faults_win():
    faults = plan()
    faults.fail_next(ANY, code=ErrorCode.UNAVAILABLE, times=2)
    faults.fail_next("query", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorTimeoutError):
        faults.check("query")
    with pytest.raises(ConnectorError) as info:
        faults.check("execute")
    assert info.value.code is ErrorCode.UNAVAILABLE
    with pytest.raises(ConnectorError):
        faults.check("query")
    assert faults.check("ping") is None


def test_other_operations_are_not_affected():
    faults = plan()
    faults.fail_next("insert_one")
    assert faults.check("find") is None
    with pytest.raises(ConnectorError):
        faults.check("insert_one")


def test_partial_failure_returns_the_prefix_then_the_error():
    faults = plan()
    faults.fail_next("insert_many", partial=True, code=ErrorCode.CONNECTION_LOST)
    applied = faults.check("insert_many", batch_size=5)
    assert applied == 2
    err = faults.partial_error("insert_many", applied, total=5)
    assert err.code is ErrorCode.CONNECTION_LOST and err.maybe_applied
    assert (err.details["applied"], err.details["total"]) == (2, 5)
    assert faults.check("insert_many", batch_size=5) is None


def test_partial_with_a_count_is_capped_by_the_batch():
    faults = plan()
    faults.fail_next("insert_many", partial=7, times=2)
    assert faults.check("insert_many", batch_size=3) == 3
    assert faults.check("insert_many", batch_size=10) == 7


def test_partial_on_an_operation_without_a_batch_just_raises():
    faults = plan()
    faults.fail_next("query", partial=True)
    with pytest.raises(ConnectorError):
        faults.check("query")


def test_partial_error_without_a_programmed_fault_is_still_an_error():
    err = plan().partial_error("insert_many", 1)
    assert isinstance(err, ConnectorError) and err.maybe_applied
    assert err.details["applied"] == 1


def test_latency_sleeps_outside_the_lock_and_named_wins():
    sleeps: list[float] = []
    faults: FaultPlan

    def sleep(seconds: float) -> None:
        # The lock must be free while sleeping: another thread can program.
        assert faults._lock.acquire(blocking=False)
        faults._lock.release()
        sleeps.append(seconds)

    faults = FaultPlan("demo", sleep=sleep, rand=lambda: 0.5)
    faults.set_latency(seconds=0.1)
    faults.set_latency("query", 0.2, jitter=0.2)
    faults.check("execute")
    faults.check("query")
    faults.set_latency("query")  # removed: the "*" latency applies again
    faults.check("query")
    assert sleeps == [0.1, pytest.approx(0.3), 0.1]


def test_clear_forgets_everything():
    faults = plan()
    faults.fail_next("query")
    faults.set_latency(seconds=1)
    faults.check("ping")
    faults.clear()
    assert faults.calls == [] and faults.pending == 0
    assert faults.check("query") is None
    assert "faults=0" in repr(faults)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"times": 0}, InvalidConfigError),
        ({"after": -1}, InvalidConfigError),
        ({"partial": -2}, InvalidConfigError),
        ({"times": 1.5}, TypeError),
        ({"times": True}, TypeError),
        ({"code": "NO_SUCH_CODE"}, InvalidConfigError),
        ({"retry_after": float("nan")}, InvalidConfigError),
        ({"retry_after": 10**400}, InvalidConfigError),  # was a raw OverflowError
        ({"retry_after": "1"}, TypeError),
    ],
)
def test_fail_next_validates(kwargs, error):
    with pytest.raises(error):
        plan().fail_next("query", **kwargs)


@pytest.mark.parametrize("seconds", [-1, float("nan"), float("inf"), 7200, 10**400])
def test_set_latency_validates(seconds):
    with pytest.raises(InvalidConfigError):
        plan().set_latency("query", seconds)
    with pytest.raises(TypeError):
        plan().set_latency("query", "1")  # type: ignore[arg-type]


def test_operation_must_be_a_nonempty_str():
    with pytest.raises(TypeError):
        plan().fail_next(3)  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError):
        plan().fail_next("")


def test_code_may_be_given_by_value():
    faults = plan()
    faults.fail_next("q", code="TIMEOUT")  # type: ignore[arg-type]
    with pytest.raises(ConnectorTimeoutError):
        faults.check("q")


def test_connector_classes_override_the_class():
    class MyNotFound(ConnectorError):
        pass

    faults = FaultPlan("demo", classes={ErrorCode.NOT_FOUND: MyNotFound})
    faults.fail_next("get", code=ErrorCode.NOT_FOUND)
    with pytest.raises(MyNotFound):
        faults.check("get")


def test_32_threads_consume_exactly_the_programmed_failures():
    faults = plan()
    faults.fail_next("query", times=100)
    failures = []
    lock = threading.Lock()
    barrier = threading.Barrier(32)

    def worker() -> None:
        barrier.wait()
        for _ in range(10):
            try:
                faults.check("query")
            except ConnectorError:
                with lock:
                    failures.append(1)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 100
    assert faults.call_count("query") == 320 and faults.call_count() == 320


def test_partial_counts_are_per_thread():
    faults = plan()
    faults.fail_next("insert_many", partial=1, code=ErrorCode.TIMEOUT)
    assert faults.check("insert_many", batch_size=4) == 1
    other: list[ConnectorError] = []
    thread = threading.Thread(target=lambda: other.append(faults.partial_error("insert_many", 0)))
    thread.start()
    thread.join()
    assert other[0].code is ErrorCode.UNAVAILABLE  # not this thread's fault
    assert faults.partial_error("insert_many", 1).code is ErrorCode.TIMEOUT


class Faulty(FaultInjection, FakeConnector):
    """A minimal fake on the real base class: proves faults travel the real path."""

    def __init__(self) -> None:
        super().__init__(FakeConfig())
        self._faults = FaultPlan(self.name)

    def lookup(self, *, idempotent: bool = True) -> int:
        def body(handle: object) -> int:
            self._faults.check("lookup")
            return 42

        return self._run(body, idempotent=idempotent, description="lookup")


def test_through_the_base_class_retries_follow_the_policy():
    fake = Faulty()
    clock = FakeClock()
    fake._sleep, fake._clock, fake._rand = clock.sleep, clock.clock, lambda: 1.0
    with pytest.raises(NotConnectedError):
        fake.lookup()
    assert fake.faults.calls == []  # refused before the operation ran
    fake.connect()
    fake.fail_next("lookup", code=ErrorCode.UNAVAILABLE, times=2)
    assert fake.lookup() == 42  # the default policy makes 3 attempts
    assert fake.faults.call_count("lookup") == 3
    assert len(clock.sleeps) == 2
    stats = fake.stats()
    assert stats.retries == 2 and stats.errors == {"UNAVAILABLE": 2}
    fake.fail_next("lookup", code=ErrorCode.INVALID_REQUEST)
    with pytest.raises(ConnectorError) as info:
        fake.lookup()
    assert info.value.code is ErrorCode.INVALID_REQUEST
    assert fake.faults.call_count("lookup") == 4  # permanent: no retry
    fake.fail_next("lookup", maybe_applied=True)
    with pytest.raises(ConnectorError):
        fake.lookup(idempotent=False)  # may have applied, not idempotent: no retry
    fake.disconnect()


def test_mixin_shortcuts_forward_to_the_plan():
    fake = Faulty()
    fake.set_latency("lookup", 0.0, jitter=0.0)
    fake.fail_next("lookup", times=3, after=1, retry_after=1.0, details={"a": 1})
    assert fake.faults.pending == 3
    with fake:
        fake._run(lambda handle: None, idempotent=True, retry=RetryPolicy.no_retry())


def test_fakes_package_exports():
    assert fakes.__all__ == sorted(fakes.__all__)
    for name in fakes.__all__:
        assert (getattr(fakes, name).__doc__ or "").strip(), name
    with pytest.raises(AttributeError):
        fakes.NoSuchFake  # noqa: B018


FAKES_AND_CHECKED_NAMES = [
    ("FakeHTTP", ["get", "post", "options", "ping", "connect"]),
    ("FakePostgreSQL", ["query", "execute", "executemany", "stream", "transaction", "commit"]),
    ("FakeMongoDB", ["insert_one", "find_one", "aggregate", "getMore", "commit", "execute"]),
    ("FakeKafka", ["produce", "produce_many", "poll", "consume", "seek", "commit_transaction"]),
    ("FakeFile", ["read_bytes", "write_bytes", "open", "lock", "commit"]),
]


@pytest.mark.parametrize(("fake_name", "names"), FAKES_AND_CHECKED_NAMES)
def test_each_fake_accepts_the_operations_it_checks(fake_name: str, names: list[str]):
    fake = getattr(fakes, fake_name)()
    for name in [*names, ANY]:
        fake.fail_next(name)
        fake.set_latency(name, 0.0)
    assert fake.faults.pending == len(names) + 1


@pytest.mark.parametrize("fake_name", [name for name, _ in FAKES_AND_CHECKED_NAMES])
def test_a_misspelt_operation_is_refused_not_silently_never_fired(fake_name: str):
    fake = getattr(fakes, fake_name)()
    with pytest.raises(InvalidConfigError, match="no_such_operation"):
        fake.fail_next("no_such_operation", code=ErrorCode.TIMEOUT)
    with pytest.raises(InvalidConfigError, match="insertone"):
        fake.faults.fail_next("insertone")  # the plan itself checks, not only the shortcut
    with pytest.raises(InvalidConfigError):
        fake.set_latency("Query", 0.1)
    assert fake.faults.pending == 0


def test_a_plan_without_a_list_of_operations_takes_any_name():
    plan = FaultPlan("x")
    plan.fail_next("anything_at_all")
    assert plan.pending == 1
