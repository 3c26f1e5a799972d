import logging

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.retry import RetryPolicy, retry_call, retry_once

from .fakes import FakeClock


def failing(errors, result="ok"):
    calls = []

    def fn():
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return fn, calls


def transient(**kw):
    return ConnectorError("flaky", code=ErrorCode.UNAVAILABLE, connector="t", **kw)


def run(fn, policy, clock, **kw):
    return retry_call(fn, policy, sleep=clock.sleep, clock=clock.clock, rand=lambda: 0.5, **kw)


def test_delay_is_exponential_capped_with_full_jitter():
    p = RetryPolicy(initial_backoff=0.1, multiplier=2, max_backoff=1.0, jitter=False)
    assert [p.delay(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    pj = attrs.evolve(p, jitter=True)
    assert pj.delay(3, rand=0.0) == 0.0
    assert pj.delay(3, rand=0.5) == pytest.approx(0.2)
    assert pj.delay(3, rand=1.0) == pytest.approx(0.4)


def test_retry_after_wins_in_full_and_is_never_zero():
    p = RetryPolicy(initial_backoff=0.05, max_backoff=2.0)
    assert p.delay(1, rand=0.0, retry_after=1.5) == 1.5
    assert p.delay(1, rand=0.0, retry_after=300) == 300  # never shortened...
    assert not p.allows(300, elapsed=0)  # ...the loop raises instead
    assert p.allows(2.0, elapsed=0)
    assert p.delay(1, rand=0.0, retry_after=0) == 0.05


def test_retry_after_beyond_max_backoff_is_raised_not_retried_early():
    clock = FakeClock()
    err = transient(retry_after=60.0)
    fn, calls = failing([err])
    with pytest.raises(ConnectorError) as info:
        run(fn, RetryPolicy(max_attempts=5, max_backoff=10, deadline=None), clock)
    assert info.value is err and info.value.retry_after == 60.0
    assert clock.sleeps == [] and len(calls) == 1


def test_retry_after_at_the_cap_is_waited():
    clock = FakeClock()
    fn, calls = failing([transient(retry_after=10.0)])
    assert run(fn, RetryPolicy(max_attempts=2, max_backoff=10, deadline=None), clock) == "ok"
    assert clock.sleeps == [10.0] and len(calls) == 2


def test_retry_if_replaces_the_default_rule():
    clock = FakeClock()
    permanent = ConnectorError("conflict", code=ErrorCode.SERIALIZATION_FAILURE, transient=False)
    fn, calls = failing([permanent, permanent])
    only_serialization = lambda e: e.code is ErrorCode.SERIALIZATION_FAILURE  # noqa: E731
    assert run(fn, RetryPolicy(max_attempts=3), clock, retry_if=only_serialization) == "ok"
    assert len(calls) == 3
    # ... and can refuse what the default would retry.
    fn, calls = failing([transient()])
    with pytest.raises(ConnectorError):
        run(fn, RetryPolicy(max_attempts=3), clock, retry_if=lambda e: False)
    assert len(calls) == 1


def test_retry_once_runs_a_second_attempt_only_when_allowed():
    seen = []

    def allow(err, attempt):
        seen.append((err.code, attempt))
        return True

    fn, calls = failing([transient()])
    assert retry_once(fn, allow) == "ok"
    assert len(calls) == 2 and seen == [(ErrorCode.UNAVAILABLE, 1)]

    seen.clear()
    second = transient()
    fn, calls = failing([transient(), second])
    with pytest.raises(ConnectorError) as info:
        retry_once(fn, allow)
    assert info.value is second and len(calls) == 2
    assert [a for _, a in seen] == [1, 2]  # told about both failures

    fn, calls = failing([transient()])
    with pytest.raises(ConnectorError):
        retry_once(fn, lambda err, attempt: False)
    assert len(calls) == 1


@given(st.integers(1, 200), st.floats(0, 1))
def test_delay_never_exceeds_cap(attempt, rand):
    p = RetryPolicy(initial_backoff=0.3, max_backoff=5, multiplier=3)
    assert 0 <= p.delay(attempt, rand=rand) <= 5


def test_transient_errors_are_retried_until_success(caplog):
    clock = FakeClock()
    fn, calls = failing([transient(), transient()])
    with caplog.at_level(logging.WARNING, logger="dictamesh_connectors.retry"):
        assert run(fn, RetryPolicy(max_attempts=3, jitter=False), clock) == "ok"
    assert len(calls) == 3
    assert clock.sleeps == [0.1, 0.2]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1 of 3" in warnings[0].getMessage()
    assert "0.100s" in warnings[0].getMessage()


def test_last_error_is_reraised_unchanged():
    clock = FakeClock()
    errors = [transient(), transient(), transient()]
    last = errors[-1]
    fn, calls = failing(errors)
    with pytest.raises(ConnectorError) as info:
        run(fn, RetryPolicy(max_attempts=3), clock)
    assert info.value is last
    assert len(calls) == 3


def test_permanent_errors_propagate_at_once():
    clock = FakeClock()
    fn, calls = failing([ConnectorError("no", code=ErrorCode.CONSTRAINT_VIOLATION)])
    with pytest.raises(ConnectorError):
        run(fn, RetryPolicy(max_attempts=5), clock)
    assert len(calls) == 1 and clock.sleeps == []


def test_non_connector_errors_are_not_retried():
    clock = FakeClock()
    fn, calls = failing([TypeError("bug")])
    with pytest.raises(TypeError):
        run(fn, RetryPolicy(max_attempts=5), clock)
    assert len(calls) == 1


def test_maybe_applied_is_retried_only_when_idempotent():
    clock = FakeClock()
    fn, calls = failing([transient(maybe_applied=True)])
    with pytest.raises(ConnectorError):
        run(fn, RetryPolicy(max_attempts=5), clock, idempotent=False)
    assert len(calls) == 1
    fn, calls = failing([transient(maybe_applied=True)])
    assert run(fn, RetryPolicy(max_attempts=5), clock, idempotent=True) == "ok"
    assert len(calls) == 2


def test_the_last_error_says_maybe_applied_when_an_earlier_attempt_may_have_applied():
    # Found by the fault campaign (tests/chaos): a keyed POST was applied by
    # the server, its answer lost, and the retry was refused: the last error
    # alone said "not applied".
    clock = FakeClock()
    errors = [transient(maybe_applied=True), transient(), transient()]
    last = errors[-1]
    fn, calls = failing(errors)
    with pytest.raises(ConnectorError) as info:
        run(fn, RetryPolicy(max_attempts=3), clock, idempotent=True)
    assert info.value is last and info.value.maybe_applied
    assert len(calls) == 3
    fn, calls = failing([transient(), transient()])
    with pytest.raises(ConnectorError) as info:
        run(fn, RetryPolicy(max_attempts=2), clock)
    assert not info.value.maybe_applied


def test_retry_after_is_honoured_and_zero_is_not_a_hot_loop():
    clock = FakeClock()
    fn, _ = failing([transient(retry_after=2.0), transient(retry_after=0)])
    run(fn, RetryPolicy(max_attempts=3, initial_backoff=0.25, max_backoff=10), clock)
    assert clock.sleeps == [2.0, 0.25]


def test_deadline_stops_retrying_before_overrunning():
    clock = FakeClock()
    errors = [transient(retry_after=4.0) for _ in range(10)]
    fn, calls = failing(errors)
    with pytest.raises(ConnectorError):
        run(fn, RetryPolicy(max_attempts=10, max_backoff=10, deadline=10), clock)
    # 4 + 4 = 8 s waited; a third wait would end past the 10 s deadline.
    assert clock.sleeps == [4.0, 4.0]
    assert len(calls) == 3


def test_before_retry_sees_each_error():
    clock = FakeClock()
    seen = []
    fn, _ = failing([transient(), transient()])
    run(fn, RetryPolicy(max_attempts=3), clock, before_retry=seen.append)
    assert len(seen) == 2


def test_policy_validation():
    with pytest.raises(InvalidConfigError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidConfigError):
        RetryPolicy(initial_backoff=-1)
    with pytest.raises(InvalidConfigError):
        RetryPolicy(deadline=float("nan"))
    with pytest.raises(InvalidConfigError):
        RetryPolicy(jitter="yes")
    assert RetryPolicy(max_attempts="4").max_attempts == 4
    assert RetryPolicy(deadline=None).deadline is None
    assert RetryPolicy.no_retry().max_attempts == 1
    for field in ("initial_backoff", "max_backoff", "deadline"):
        with pytest.raises(InvalidConfigError):
            RetryPolicy(**{field: 1e300})
        with pytest.raises(InvalidConfigError):
            RetryPolicy(**{field: float("inf")})
        assert getattr(RetryPolicy(**{field: 7 * 24 * 3600}), field) == 7 * 24 * 3600


@given(st.integers(1, 100_000), st.floats(1.0, 1e308), st.floats(0, 1))
def test_delay_never_overflows_whatever_the_multiplier_and_attempt(attempt, multiplier, rand):
    p = RetryPolicy(initial_backoff=0.5, max_backoff=30, multiplier=multiplier)
    assert 0 <= p.delay(attempt, rand=rand) <= 30
    assert RetryPolicy(initial_backoff=0, multiplier=multiplier).delay(attempt) == 0


def test_max_attempts_is_capped():
    with pytest.raises(InvalidConfigError):
        RetryPolicy(max_attempts=10**7)
    assert RetryPolicy(max_attempts=1_000_000).max_attempts == 1_000_000
