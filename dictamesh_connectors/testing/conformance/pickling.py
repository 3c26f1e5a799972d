"""Check that connector errors survive pickling (Celery ships them to other processes).

No test framework needed: ``assert_round_trips`` raises ``AssertionError``.
``ErrorRecorder`` is an observability listener that keeps every
``ConnectorError`` a connector's operations raised, so a test can check all
of them afterwards.

Example::

    recorder = ErrorRecorder()
    connector.add_listener(recorder)
    ...  # use the connector
    for error in recorder.errors:
        assert_round_trips(error)
"""

from __future__ import annotations

import pickle
from typing import Any

from dictamesh_connectors import _fork
from dictamesh_connectors.errors import ConnectorError

__all__ = ["ATTRIBUTES", "ErrorRecorder", "assert_round_trips"]

ATTRIBUTES = (
    "message",
    "code",
    "transient",
    "retry_hint",
    "retry_after",
    "maybe_applied",
    "connector",
    "details",
)
"""The ``ConnectorError`` attributes a pickle round trip must keep."""


def _same(left: Any, right: Any) -> bool:
    # NaN never equals itself; a retry_after is never NaN (the constructor
    # makes it None), but details may hold anything the driver said.
    return bool(left == right) or (left != left and right != right)


def assert_round_trips(error: ConnectorError) -> ConnectorError:
    """Pickle ``error``, load it back and check class, ``str`` and every attribute.

    Returns:
        The loaded copy.

    Raises:
        AssertionError: Pickling failed or changed something (the message
            names the attribute).
    """
    assert isinstance(error, ConnectorError), f"not a ConnectorError: {type(error).__name__}"
    try:
        data = pickle.dumps(error)
        copy = pickle.loads(data)
    except Exception as exc:
        raise AssertionError(
            f"{type(error).__name__} ({error.code.value}) does not survive pickling: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    assert type(copy) is type(error), (
        f"pickling turned {type(error).__name__} into {type(copy).__name__}"
    )
    for name in ATTRIBUTES:
        before, after = getattr(error, name), getattr(copy, name)
        assert _same(before, after), (
            f"{type(error).__name__}.{name} changed in a pickle round trip: {before!r} -> {after!r}"
        )
    assert str(copy) == str(error), f"str() changed in a pickle round trip: {error} -> {copy}"
    return copy


class ErrorRecorder:
    """An observability listener keeping every ``ConnectorError`` of the operations it sees.

    Thread-safe: operations of many threads may report at once; fork-safe:
    a forked child gets its lock back unlocked (a child's operations report
    to it too).
    """

    def __init__(self) -> None:
        self._lock = _fork.create_lock()
        self._errors: list[ConnectorError] = []

    def on_error(self, connector: Any, operation: str, error: ConnectorError) -> None:
        """Listener event: an operation of ``connector`` failed with ``error``."""
        self.add(error)

    def add(self, error: BaseException) -> None:
        """Keep ``error`` if it is a ``ConnectorError`` (other exceptions are ignored)."""
        if isinstance(error, ConnectorError):
            with self._lock:
                self._errors.append(error)

    @property
    def errors(self) -> list[ConnectorError]:
        """The errors kept so far, oldest first (a copy)."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        """Forget the errors kept so far."""
        with self._lock:
            self._errors.clear()
