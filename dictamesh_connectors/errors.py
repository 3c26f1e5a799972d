"""The error model shared by every connector.

No driver exception leaves a public method of a connector: each connector
translates its driver's exceptions, in its own ``errors.py``, into one of the
classes below, keeping the driver exception as ``__cause__``.

Exception tree::

    ConnectorError                    code, transient, retry_hint, retry_after,
    |                                 maybe_applied, connector, details
    +-- NotConnectedError             NOT_CONNECTED: closed or never connected
    +-- InvalidConfigError            INVALID_CONFIG (also a ValueError)
    +-- ConnectorTimeoutError         TIMEOUT (transient)
    +-- AuthenticationError           AUTH_FAILED (permanent unless refreshable)
    +-- MissingDependencyError        MISSING_DEPENDENCY: an extra is not installed

Retryability is data on the error, not a class: check ``err.transient`` and
``err.retry_hint``; ``err.maybe_applied`` says a write may have taken effect
(retry it only if it is idempotent).

Every error pickles with all of its attributes (Celery sends exceptions
across processes); the driver exception in ``__cause__`` is not pickled, as
with any Python exception.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "ArgumentTypeError",
    "AuthenticationError",
    "ConnectorError",
    "ConnectorTimeoutError",
    "ErrorCode",
    "ErrorRule",
    "InvalidConfigError",
    "MissingDependencyError",
    "NotConnectedError",
    "RetryHint",
    "Translator",
    "build_error",
    "error_class_for",
    "rule_for",
]

logger = logging.getLogger(__name__)


class ErrorCode(str, enum.Enum):
    """What went wrong, independent of the driver that reported it."""

    CONNECTION_FAILED = "CONNECTION_FAILED"
    """A connection could not be established."""
    CONNECTION_LOST = "CONNECTION_LOST"
    """An established connection broke."""
    TIMEOUT = "TIMEOUT"
    """An operation or connection attempt ran out of time."""
    AUTH_FAILED = "AUTH_FAILED"
    """The credentials were refused."""
    PERMISSION_DENIED = "PERMISSION_DENIED"
    """Authenticated, but not allowed to do this."""
    NOT_CONNECTED = "NOT_CONNECTED"
    """The connector is not connected (closed, or closing)."""
    INVALID_CONFIG = "INVALID_CONFIG"
    """A configuration value is invalid."""
    INVALID_REQUEST = "INVALID_REQUEST"
    """The request itself is malformed; the server was not contacted, or refused it."""
    QUERY_FAILED = "QUERY_FAILED"
    """A read failed for a reason with no more specific code."""
    EXEC_FAILED = "EXEC_FAILED"
    """A write failed for a reason with no more specific code."""
    TRANSACTION_FAILED = "TRANSACTION_FAILED"
    """The transaction is aborted and must be rolled back."""
    SERIALIZATION_FAILURE = "SERIALIZATION_FAILURE"
    """A concurrent transaction conflicted; rerun the whole transaction."""
    DEADLOCK = "DEADLOCK"
    """The server broke a deadlock by aborting this transaction."""
    LOCK_TIMEOUT = "LOCK_TIMEOUT"
    """A lock could not be taken in time."""
    CONSTRAINT_VIOLATION = "CONSTRAINT_VIOLATION"
    """A unique, foreign-key, check or not-null constraint refused the data."""
    NOT_FOUND = "NOT_FOUND"
    """The target (database, table, resource, topic) does not exist."""
    CONFLICT = "CONFLICT"
    """The request conflicts with the current state of the target."""
    RATE_LIMITED = "RATE_LIMITED"
    """The server asked the client to slow down."""
    UNAVAILABLE = "UNAVAILABLE"
    """The server is shutting down, starting up or overloaded."""
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    """The server (or a local pool/queue) ran out of a resource."""
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    """A request or response body exceeded a limit."""
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    """The peer answered with something the protocol does not allow."""
    INVALID_INPUT = "INVALID_INPUT"
    """The data sent was refused as invalid (type, range, format)."""
    SERIALIZATION_ERROR = "SERIALIZATION_ERROR"
    """A value could not be encoded or decoded."""
    UNSUPPORTED = "UNSUPPORTED"
    """The server or driver does not support the operation."""
    GRAPHQL_ERROR = "GRAPHQL_ERROR"
    """A GraphQL response carried errors with no more specific code."""
    MISSING_DEPENDENCY = "MISSING_DEPENDENCY"
    """An optional dependency (an extra) is not installed."""
    INTERNAL = "INTERNAL"
    """An error with no better classification."""


class RetryHint(str, enum.Enum):
    """What a caller (or the retry loop) should do about an error."""

    NONE = "NONE"
    """Do not retry: the same call will fail the same way."""
    RETRY = "RETRY"
    """Retry after a backoff."""
    RETRY_AFTER = "RETRY_AFTER"
    """Retry after ``retry_after`` seconds, as the server asked."""
    RECONNECT = "RECONNECT"
    """Drop the connection, reconnect, then retry."""
    RETRY_TRANSACTION = "RETRY_TRANSACTION"
    """Roll back and rerun the whole transaction, decisions included."""
    REFRESH_CREDENTIALS = "REFRESH_CREDENTIALS"
    """Obtain fresh credentials (token), then retry once."""


# Codes that are transient unless the translator says otherwise.
_TRANSIENT_CODES = frozenset(
    {
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
)

_DEFAULT_HINTS = {
    ErrorCode.CONNECTION_LOST: RetryHint.RECONNECT,
    ErrorCode.SERIALIZATION_FAILURE: RetryHint.RETRY_TRANSACTION,
    ErrorCode.DEADLOCK: RetryHint.RETRY_TRANSACTION,
}


def is_transient_code(code: ErrorCode) -> bool:
    """Tell whether errors with ``code`` are transient by default."""
    return code in _TRANSIENT_CODES


class ConnectorError(Exception):
    """Base class of every error a connector raises.

    Args:
        message: What failed and where, with credentials masked.
        code: The classification (defaults to the class's ``default_code``).
        transient: Whether the same call may succeed if retried. Defaults to
            what ``code`` implies.
        retry_hint: What to do about it. Defaults to what ``code`` and
            ``transient`` imply (and ``RETRY_AFTER`` when ``retry_after`` is set).
        retry_after: Seconds the server asked to wait, if it said so
            (negative becomes 0, too large to represent becomes ``inf``,
            NaN or not a number becomes ``None``; never raises).
        maybe_applied: The operation may have taken effect (a write that
            timed out or lost its connection): retry it only if idempotent.
        connector: Name of the connector that raised it ("http", ...).
        details: Extra, non-secret facts (SQLSTATE, status code, ...).

    Example::

        try:
            db.execute("INSERT ...")
        except ConnectorError as err:
            if err.transient and not err.maybe_applied:
                ...  # safe to try again
    """

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str = "",
        *,
        code: ErrorCode | str | None = None,
        transient: bool | None = None,
        retry_hint: RetryHint | str | None = None,
        retry_after: float | None = None,
        maybe_applied: bool = False,
        connector: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = ErrorCode(code) if code is not None else self.default_code
        _, self.transient, self.retry_hint = rule_for(
            self.code,
            transient,
            retry_after=retry_after,
            hint=RetryHint(retry_hint) if retry_hint is not None else None,
        )
        self.retry_after = _seconds(retry_after)
        self.maybe_applied = bool(maybe_applied)
        self.connector = connector
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, code={self.code.value}, "
            f"transient={self.transient}, retry_hint={self.retry_hint.value}, "
            f"connector={self.connector!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild through the keyword constructor so every attribute survives
        # pickling, whatever the subclass's __init__ signature.
        return (_rebuild_error, (type(self), self.message, self._state()))

    def _state(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "transient": self.transient,
            "retry_hint": self.retry_hint,
            "retry_after": self.retry_after,
            "maybe_applied": self.maybe_applied,
            "connector": self.connector,
            "details": self.details,
        }


def _seconds(value: object) -> float | None:
    """A server-given wait as non-negative seconds; never raises (a hostile
    400-digit number is ``inf``: longer than any policy allows, so not retried).

    Not ``_convert.to_seconds`` on purpose: that one checks what a caller
    gave and refuses bad input; this one reads what a server said inside an
    error being built, where raising would lose the error, so garbage is
    ``None`` (no hint) and a negative wait is 0 (retry now).
    """
    if value is None:
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except OverflowError:
        return 0.0 if isinstance(value, int) and value < 0 else math.inf
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def _rebuild_error(
    cls: type[ConnectorError], message: str, state: dict[str, Any]
) -> ConnectorError:
    err = cls.__new__(cls)
    ConnectorError.__init__(err, message, **state)
    return err


class NotConnectedError(ConnectorError):
    """The connector is not connected: never connected, disconnecting or closed."""

    default_code = ErrorCode.NOT_CONNECTED


class InvalidConfigError(ConnectorError, ValueError):
    """A configuration value (or a request argument) is invalid. Never transient."""

    default_code = ErrorCode.INVALID_CONFIG


class ArgumentTypeError(ConnectorError, TypeError):
    """An argument of the wrong type (a filter that is not a mapping, a path that is not a str).

    A programming error, caught before any I/O. Both a ``ConnectorError``
    (code INVALID_REQUEST, never transient), so ``except ConnectorError``
    catches every bad argument, and a ``TypeError``, the type Python code
    expects for a wrong argument type. The message names the argument and
    the type it got, never its value. One class for every connector.
    """

    default_code = ErrorCode.INVALID_REQUEST


class ConnectorTimeoutError(ConnectorError):
    """An operation ran out of time. Transient; ``maybe_applied`` for writes."""

    default_code = ErrorCode.TIMEOUT


class AuthenticationError(ConnectorError):
    """The server refused the credentials."""

    default_code = ErrorCode.AUTH_FAILED


class MissingDependencyError(ConnectorError):
    """An optional dependency is missing; the message names the extra to install."""

    default_code = ErrorCode.MISSING_DEPENDENCY


_CLASS_FOR_CODE: dict[ErrorCode, type[ConnectorError]] = {
    ErrorCode.NOT_CONNECTED: NotConnectedError,
    ErrorCode.INVALID_CONFIG: InvalidConfigError,
    ErrorCode.TIMEOUT: ConnectorTimeoutError,
    ErrorCode.AUTH_FAILED: AuthenticationError,
    ErrorCode.MISSING_DEPENDENCY: MissingDependencyError,
}


def error_class_for(code: ErrorCode) -> type[ConnectorError]:
    """Return the most specific ``ConnectorError`` subclass for ``code``.

    Connector translation tables use this so that ``except
    ConnectorTimeoutError`` catches every timeout, whatever the driver.
    """
    return _CLASS_FOR_CODE.get(code, ConnectorError)


class ErrorRule(NamedTuple):
    """One row of a connector's translation table: what a driver error means.

    Example::

        SQLSTATE_CLASSES = {"08": ErrorRule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)}
    """

    code: ErrorCode
    """The classification."""
    transient: bool
    """Whether the same call may succeed if retried."""
    hint: RetryHint
    """What to do about it."""


def rule_for(
    code: ErrorCode,
    transient: bool | None = None,
    *,
    retry_after: object = None,
    hint: RetryHint | None = None,
) -> ErrorRule:
    """The full ``ErrorRule`` for ``code``, each part left ``None`` taking its default.

    The one place the defaults are decided (``ConnectorError`` uses it too):
    ``transient`` is what the code implies; the hint is ``RETRY_AFTER`` for
    a transient error with a ``retry_after``, else the code's own
    (``RECONNECT`` for a lost connection, ``RETRY_TRANSACTION`` for a
    deadlock or serialization failure, ``RETRY``) when transient, and
    ``NONE`` when not.

    Example::

        build_error(message, rule_for(ErrorCode.RATE_LIMITED, retry_after=5.0), ...)
    """
    transient = is_transient_code(code) if transient is None else bool(transient)
    if hint is None:
        if not transient:
            hint = RetryHint.NONE
        elif retry_after is not None:
            hint = RetryHint.RETRY_AFTER
        else:
            hint = _DEFAULT_HINTS.get(code, RetryHint.RETRY)
    return ErrorRule(code, transient, hint)


def build_error(
    message: str,
    rule: ErrorRule | tuple[ErrorCode, bool, RetryHint],
    *,
    connector: str,
    maybe_applied: bool = False,
    retry_after: float | None = None,
    details: Mapping[str, Any] | None = None,
    classes: Mapping[ErrorCode, type[ConnectorError]] | None = None,
) -> ConnectorError:
    """Build the error a translation table's ``rule`` calls for: the one builder.

    The class is the most specific one for the code: ``classes[code]`` (a
    connector's own subclasses, e.g. HTTP's) when given and present, else
    ``error_class_for(code)``, so ``except ConnectorTimeoutError`` catches
    every timeout of every connector.

    Args:
        message: What failed and where, credentials masked.
        rule: ``(code, transient, hint)``.
        connector: The connector's name.
        maybe_applied: The operation may have taken effect.
        retry_after: Seconds the server asked to wait.
        details: Extra, non-secret facts.
        classes: The connector's own code -> class overrides.
    """
    code, transient, hint = rule
    cls = (classes.get(code) if classes is not None else None) or error_class_for(code)
    return cls(
        message,
        code=code,
        transient=transient,
        retry_hint=hint,
        retry_after=retry_after,
        maybe_applied=maybe_applied,
        connector=connector,
        details=details,
    )


class Translator:
    """Base of every connector's one translation site: ``with translate(...):``.

    A driver exception raised in the block leaves it as the ``ConnectorError``
    that ``classify`` returns, raised ``from`` the driver exception (kept as
    ``__cause__``, after ``scrub`` removed any secret it holds).
    ``ConnectorError``, exceptions that are not ``driver_errors`` (programming
    errors such as ``TypeError``) and ``BaseException`` (Ctrl-C) pass through
    unchanged, as does anything ``classify`` returns ``None`` for.

    It carries the block's keywords (``operation``, ``target`` and whatever
    else the connector's ``classify`` function takes) in one ``context``
    dict, so a connector's ``translate`` only names its driver errors and
    forwards the context.

    A class rather than a generator-based context manager: it wraps every
    operation, so it stays cheap (``__slots__``, no frame per use). httpx's
    ``map_httpcore_exceptions`` is the model.

    Example::

        class translate(Translator):
            __slots__ = ()
            driver_errors = (pymongo.errors.PyMongoError,)

            def classify(self, exc: Exception) -> ConnectorError | None:
                return classify(exc, **self.context)  # operation=, target=, write=, ...

        with translate("insert_one", target, write=True):
            collection.insert_one(document)
    """

    __slots__ = ("context", "operation")

    driver_errors: tuple[type[Exception], ...] = (Exception,)
    """The exceptions to translate; anything else passes through."""

    def __init__(self, operation: str, target: str = "", **context: Any) -> None:
        self.operation = operation
        """The operation the block runs (``"insert_one"``, ``"query"``...)."""
        context["operation"] = operation
        context["target"] = target
        self.context: dict[str, Any] = context
        """The keywords ``classify`` hands the connector's classifier."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or isinstance(exc, ConnectorError):
            return
        if not isinstance(exc, Exception) or not isinstance(exc, self.driver_errors):
            return
        error = self.classify(exc)
        if error is None:
            return
        self.scrub(exc)
        raise error from exc

    def classify(self, exc: Exception) -> ConnectorError | None:
        """The ``ConnectorError`` for driver exception ``exc`` (``None``: let it pass)."""
        raise NotImplementedError

    def scrub(self, exc: Exception) -> None:
        """Remove secrets from ``exc`` before it is kept as ``__cause__`` (default: none)."""
