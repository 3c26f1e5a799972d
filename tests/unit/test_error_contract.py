"""Pins what docs/errors.md and docs/retries.md promise about the core error model.

Each assertion here is a documented default; a change to any of them is a
change to the public contract, not a refactoring.
"""

from __future__ import annotations

import math
import pickle

import pytest

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    InvalidConfigError,
    MissingDependencyError,
    NotConnectedError,
    RetryHint,
    error_class_for,
    is_transient_code,
)
from dictamesh_connectors.retry import MAX_ATTEMPTS_LIMIT, MAX_SECONDS, RetryPolicy, retry_call

from .fakes import FakeClock


def test_maybe_applied_defaults_to_false():
    assert ConnectorError("x").maybe_applied is False
    assert ConnectorError("x", code=ErrorCode.TIMEOUT).maybe_applied is False


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        (ConnectorError, ErrorCode.INTERNAL),
        (NotConnectedError, ErrorCode.NOT_CONNECTED),
        (InvalidConfigError, ErrorCode.INVALID_CONFIG),
        (ConnectorTimeoutError, ErrorCode.TIMEOUT),
        (AuthenticationError, ErrorCode.AUTH_FAILED),
        (MissingDependencyError, ErrorCode.MISSING_DEPENDENCY),
    ],
)
def test_default_code_of_each_class(cls, code):
    assert cls.default_code is code
    assert cls("x").code is code


def test_transient_defaults_and_hints_of_the_lock_codes():
    deadlock = ConnectorError("d", code=ErrorCode.DEADLOCK)
    assert deadlock.transient is True and deadlock.retry_hint is RetryHint.RETRY_TRANSACTION
    lock = ConnectorError("l", code=ErrorCode.LOCK_TIMEOUT)
    assert lock.transient is True and lock.retry_hint is RetryHint.RETRY
    serial = ConnectorError("s", code=ErrorCode.SERIALIZATION_FAILURE)
    assert serial.retry_hint is RetryHint.RETRY_TRANSACTION
    lost = ConnectorError("c", code=ErrorCode.CONNECTION_LOST)
    assert lost.transient is True and lost.retry_hint is RetryHint.RECONNECT
    assert ConnectorError("r", code=ErrorCode.UNAVAILABLE, retry_after=2).retry_hint is (
        RetryHint.RETRY_AFTER
    )
    permanent = ConnectorError("p", code=ErrorCode.CONSTRAINT_VIOLATION, retry_after=2)
    assert permanent.transient is False and permanent.retry_hint is RetryHint.NONE


TRANSIENT = {
    ErrorCode.CONNECTION_FAILED,
    ErrorCode.CONNECTION_LOST,
    ErrorCode.TIMEOUT,
    ErrorCode.SERIALIZATION_FAILURE,
    ErrorCode.DEADLOCK,
    ErrorCode.LOCK_TIMEOUT,
    ErrorCode.RATE_LIMITED,
    ErrorCode.UNAVAILABLE,
    ErrorCode.RESOURCE_EXHAUSTED,
}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_has_its_documented_transience(code):
    assert is_transient_code(code) is (code in TRANSIENT)


CLASS_FOR_CODE = {
    ErrorCode.NOT_CONNECTED: NotConnectedError,
    ErrorCode.INVALID_CONFIG: InvalidConfigError,
    ErrorCode.TIMEOUT: ConnectorTimeoutError,
    ErrorCode.AUTH_FAILED: AuthenticationError,
    ErrorCode.MISSING_DEPENDENCY: MissingDependencyError,
}


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_row_of_error_class_for(code):
    assert error_class_for(code) is CLASS_FOR_CODE.get(code, ConnectorError)


def test_invalid_config_stays_a_value_error():
    assert issubclass(error_class_for(ErrorCode.INVALID_CONFIG), ValueError)
    with pytest.raises(ValueError):
        raise InvalidConfigError("bad")


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (10**400, math.inf),  # a hostile server's 400-digit retryAfter
        (-(10**400), 0.0),
        (-5, 0.0),
        (float("nan"), None),
        ("soon", None),
        ("2.5", 2.5),
        (None, None),
    ],
)
def test_retry_after_never_raises_whatever_the_server_sent(given, kept):
    err = ConnectorError("x", code=ErrorCode.RATE_LIMITED, retry_after=given)
    assert err.retry_after == kept
    assert pickle.loads(pickle.dumps(err)).retry_after == kept


def test_an_infinite_retry_after_is_raised_not_waited():
    clock = FakeClock()
    err = ConnectorError("x", code=ErrorCode.RATE_LIMITED, retry_after=10**400)

    def fn():
        raise err

    with pytest.raises(ConnectorError) as info:
        retry_call(fn, RetryPolicy(max_attempts=5), sleep=clock.sleep, clock=clock.clock)
    assert info.value is err and clock.sleeps == []


def test_retry_policy_documented_defaults():
    p = RetryPolicy()
    assert (p.max_attempts, p.initial_backoff, p.max_backoff, p.multiplier) == (3, 0.1, 10.0, 2.0)
    assert p.jitter is True and p.deadline == 30.0


@pytest.mark.parametrize(
    "fields",
    [
        {"max_attempts": True},  # a bool is not a count
        {"max_attempts": None},
        {"max_attempts": 0},
        {"max_attempts": MAX_ATTEMPTS_LIMIT + 1},
        {"max_attempts": 2.5},
        {"multiplier": 0.99},  # below 1 would shrink the backoff
        {"initial_backoff": -0.001},
        {"max_backoff": MAX_SECONDS + 1},
        {"deadline": -1},
        {"deadline": float("inf")},
        {"jitter": 1},
    ],
)
def test_retry_policy_bounds(fields):
    with pytest.raises(InvalidConfigError) as info:
        RetryPolicy(**fields)
    assert info.value.message.startswith("retry policy: ")


def test_retry_policy_accepts_its_boundaries():
    assert RetryPolicy(multiplier=1).multiplier == 1.0
    assert RetryPolicy(max_attempts=MAX_ATTEMPTS_LIMIT).max_attempts == MAX_ATTEMPTS_LIMIT
    assert RetryPolicy(deadline=0).deadline == 0.0


def test_the_deadline_boundary_is_inclusive():
    # A wait that ends exactly at the deadline is made; one past it is not.
    clock = FakeClock()
    calls = []

    def fn():
        calls.append(clock.clock())
        raise ConnectorError("busy", code=ErrorCode.UNAVAILABLE, retry_after=5)

    policy = RetryPolicy(max_attempts=10, max_backoff=5, deadline=10, jitter=False)
    with pytest.raises(ConnectorError):
        retry_call(fn, policy, sleep=clock.sleep, clock=clock.clock)
    assert clock.sleeps == [5, 5] and len(calls) == 3
