"""The psycopg -> ConnectorError table, on real psycopg exception instances (no server)."""

import pickle
import re
from pathlib import Path

import psycopg
import psycopg_pool
import pytest
from psycopg import errors as pgerrors
from psycopg.pq import DiagnosticField

from dictamesh_connectors.errors import (
    AuthenticationError,
    ConnectorError,
    ConnectorTimeoutError,
    ErrorCode,
    NotConnectedError,
    RetryHint,
)
from dictamesh_connectors.postgresql.errors import (
    SQLSTATE_CLASSES,
    SQLSTATE_CODES,
    classify,
    translate,
)
from dictamesh_connectors.postgresql.session import PoolConnectFailed

TARGET = "dictamesh_test@127.0.0.1:55432"
PASSWORD = "Sup3r-Secret-Pa55"


def server_error(sqlstate, message="boom", **diag):
    """A psycopg exception as the server would produce it (with diagnostics)."""
    info = {
        DiagnosticField.SQLSTATE: sqlstate.encode(),
        DiagnosticField.MESSAGE_PRIMARY: message.encode(),
    }
    fields = {
        "constraint": DiagnosticField.CONSTRAINT_NAME,
        "table": DiagnosticField.TABLE_NAME,
        "schema": DiagnosticField.SCHEMA_NAME,
        "column": DiagnosticField.COLUMN_NAME,
        "detail": DiagnosticField.MESSAGE_DETAIL,
    }
    for key, value in diag.items():
        info[fields[key]] = value.encode()
    return pgerrors.lookup(sqlstate)(message, info=info)


# (sqlstate, code, transient, hint, error class)
CASES = [
    ("40001", ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION, ConnectorError),
    ("40P01", ErrorCode.DEADLOCK, True, RetryHint.RETRY_TRANSACTION, ConnectorError),
    ("40000", ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION, ConnectorError),
    ("40002", ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, ConnectorError),
    ("55P03", ErrorCode.LOCK_TIMEOUT, True, RetryHint.RETRY, ConnectorError),
    ("57014", ErrorCode.TIMEOUT, True, RetryHint.RETRY, ConnectorTimeoutError),
    ("57P01", ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT, ConnectorError),
    ("57P02", ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT, ConnectorError),
    ("57P03", ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT, ConnectorError),
    ("57P04", ErrorCode.NOT_FOUND, False, RetryHint.NONE, ConnectorError),
    ("57P05", ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT, ConnectorError),
    ("08000", ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT, ConnectorError),
    ("08003", ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT, ConnectorError),
    ("08006", ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT, ConnectorError),
    ("53300", ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY, ConnectorError),
    ("53200", ErrorCode.RESOURCE_EXHAUSTED, True, RetryHint.RETRY, ConnectorError),
    ("23505", ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, ConnectorError),
    ("23503", ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, ConnectorError),
    ("23502", ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, ConnectorError),
    ("23514", ErrorCode.CONSTRAINT_VIOLATION, False, RetryHint.NONE, ConnectorError),
    ("28P01", ErrorCode.AUTH_FAILED, False, RetryHint.NONE, AuthenticationError),
    ("28000", ErrorCode.AUTH_FAILED, False, RetryHint.NONE, AuthenticationError),
    ("42601", ErrorCode.INVALID_REQUEST, False, RetryHint.NONE, ConnectorError),
    ("42703", ErrorCode.INVALID_REQUEST, False, RetryHint.NONE, ConnectorError),
    ("42P01", ErrorCode.NOT_FOUND, False, RetryHint.NONE, ConnectorError),
    ("42501", ErrorCode.PERMISSION_DENIED, False, RetryHint.NONE, ConnectorError),
    ("22P02", ErrorCode.INVALID_INPUT, False, RetryHint.NONE, ConnectorError),
    ("22012", ErrorCode.INVALID_INPUT, False, RetryHint.NONE, ConnectorError),
    ("3D000", ErrorCode.NOT_FOUND, False, RetryHint.NONE, ConnectorError),
    ("25P02", ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE, ConnectorError),
    ("25006", ErrorCode.TRANSACTION_FAILED, False, RetryHint.NONE, ConnectorError),
    ("25P03", ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT, ConnectorError),
    ("0A000", ErrorCode.UNSUPPORTED, False, RetryHint.NONE, ConnectorError),
    ("P0001", ErrorCode.QUERY_FAILED, False, RetryHint.NONE, ConnectorError),
    ("XX000", ErrorCode.QUERY_FAILED, False, RetryHint.NONE, ConnectorError),
]


@pytest.mark.parametrize("sqlstate, code, transient, hint, cls", CASES, ids=[c[0] for c in CASES])
def test_sqlstate_table(sqlstate, code, transient, hint, cls):
    exc = server_error(sqlstate, "server said no")
    err = classify(exc, operation="query", target=TARGET)
    assert type(err) is cls
    assert (err.code, err.transient, err.retry_hint) == (code, transient, hint)
    assert err.details["sqlstate"] == sqlstate
    assert err.connector == "postgresql"
    assert err.message == f"postgresql: query on {TARGET}: server said no"
    assert not err.maybe_applied


def test_every_table_entry_is_exercised():
    tested = {c[0] for c in CASES}
    assert set(SQLSTATE_CODES) - tested <= {"40003", "3F000"}
    assert {s[:2] for s in tested} >= set(SQLSTATE_CLASSES)


def test_hand_built_exception_without_diagnostics_uses_the_class_sqlstate():
    err = classify(pgerrors.lookup("40P01")("deadlock detected"), target=TARGET)
    assert err.code is ErrorCode.DEADLOCK and err.details == {"sqlstate": "40P01"}


def test_unknown_sqlstate_falls_back_by_operation_kind():
    exc = server_error("F0000", "config file error")
    assert classify(exc).code is ErrorCode.QUERY_FAILED
    assert classify(exc, write=True).code is ErrorCode.EXEC_FAILED


def test_details_carry_constraint_and_table_but_never_the_detail_line():
    exc = server_error(
        "23505",
        'duplicate key value violates unique constraint "users_email_key"',
        constraint="users_email_key",
        table="users",
        schema="public",
        detail="Key (email)=(ada@example.org) already exists.",
    )
    err = classify(exc, operation="execute", target=TARGET, write=True)
    assert err.details == {
        "sqlstate": "23505",
        "constraint": "users_email_key",
        "table": "users",
        "schema": "public",
    }
    assert "ada@example.org" not in str(err) and "ada@example.org" not in repr(err.details)
    assert not err.maybe_applied  # the server refused it: nothing happened


def test_class_22_messages_mask_quoted_values():
    exc = server_error("22P02", 'invalid input syntax for type integer: "card-4111111111111111"')
    err = classify(exc, target=TARGET)
    assert "4111111111111111" not in str(err)
    assert str(err).endswith('invalid input syntax for type integer: "***"')


def test_connection_errors_of_a_write_may_have_been_applied_unless_in_a_transaction():
    lost = psycopg.OperationalError("consuming input failed: server closed the connection")
    err = classify(lost, operation="execute", write=True)
    assert err.code is ErrorCode.CONNECTION_LOST and err.retry_hint is RetryHint.RECONNECT
    assert err.transient and err.maybe_applied
    assert not classify(lost, operation="query").maybe_applied
    assert not classify(lost, operation="execute", write=True, in_transaction=True).maybe_applied
    shutdown = server_error("57P01", "terminating connection due to administrator command")
    assert classify(shutdown, write=True).maybe_applied
    # A statement timeout was rolled back by the server.
    assert not classify(server_error("57014", "canceling statement"), write=True).maybe_applied


@pytest.mark.parametrize(
    "message",
    [
        "the connection is closed",
        "connection socket closed",
        "consuming input failed: EOF detected",
        "sending query failed: another command is already in progress",
        "server closed the connection unexpectedly\n\tThis probably means the server terminated",
        "SSL connection has been closed unexpectedly",
    ],
)
def test_client_side_lost_connection_messages(message):
    err = classify(psycopg.OperationalError(message), target=TARGET)
    assert (err.code, err.transient, err.retry_hint) == (
        ErrorCode.CONNECTION_LOST,
        True,
        RetryHint.RECONNECT,
    )


CONNECT_CASES = [
    (
        'connection failed: connection to server at "127.0.0.1", port 55432 failed: '
        'FATAL:  password authentication failed for user "dictamesh"',
        ErrorCode.AUTH_FAILED,
        False,
        AuthenticationError,
    ),
    (
        'connection failed: connection to server at "127.0.0.1", port 55432 failed: '
        "fe_sendauth: no password supplied",
        ErrorCode.AUTH_FAILED,
        False,
        AuthenticationError,
    ),
    (
        'connection failed: connection to server at "127.0.0.1", port 55432 failed: '
        'FATAL:  database "nope" does not exist',
        ErrorCode.NOT_FOUND,
        False,
        ConnectorError,
    ),
    (
        'connection failed: connection to server at "127.0.0.1", port 55499 failed: '
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP "
        "connections?",
        ErrorCode.CONNECTION_FAILED,
        True,
        ConnectorError,
    ),
    (
        'connection failed: connection to server at "127.0.0.1", port 55432 failed: '
        "FATAL:  the database system is starting up",
        ErrorCode.UNAVAILABLE,
        True,
        ConnectorError,
    ),
    (
        'connection failed: connection to server at "127.0.0.1", port 55432 failed: '
        "FATAL:  sorry, too many clients already",
        ErrorCode.RESOURCE_EXHAUSTED,
        True,
        ConnectorError,
    ),
]


@pytest.mark.parametrize("message, code, transient, cls", CONNECT_CASES)
def test_connect_time_errors_are_classified_by_the_server_message(message, code, transient, cls):
    exc = psycopg.OperationalError(message)
    assert exc.sqlstate is None  # as psycopg raises them at connect time
    err = classify(exc, operation="connect", target=TARGET, connecting=True)
    assert type(err) is cls and err.code is code and err.transient is transient
    assert err.message.startswith(f"postgresql: connect on {TARGET}: ")
    assert "FATAL" not in err.message and "\n" not in err.message


def test_connect_timeout_and_class_08_while_connecting():
    timeout = classify(pgerrors.ConnectionTimeout("connection timeout expired"), connecting=True)
    assert isinstance(timeout, ConnectorTimeoutError) and timeout.transient
    refused = classify(server_error("08001", "could not connect"), connecting=True)
    assert refused.code is ErrorCode.CONNECTION_FAILED and refused.transient


def test_pool_errors():
    timeout = classify(psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"))
    assert isinstance(timeout, ConnectorTimeoutError)
    assert timeout.transient and timeout.retry_hint is RetryHint.RETRY
    assert not timeout.maybe_applied
    closed = classify(psycopg_pool.PoolClosed("the pool 'x' is closed"))
    assert isinstance(closed, NotConnectedError) and not closed.transient
    busy = classify(psycopg_pool.TooManyRequests("too many"))
    assert busy.code is ErrorCode.RESOURCE_EXHAUSTED and busy.transient


def test_client_side_programming_errors():
    err = classify(psycopg.ProgrammingError("the query has 1 placeholder but 2 parameters"))
    assert err.code is ErrorCode.INVALID_REQUEST and not err.transient
    err = classify(psycopg.InterfaceError("the connection is in status ACTIVE"))
    assert err.code is ErrorCode.INVALID_REQUEST


def test_non_driver_exceptions_are_not_classified_and_pass_through_translate():
    assert classify(TypeError("bug")) is None
    assert classify(KeyError("k")) is None
    with pytest.raises(TypeError), translate("query", TARGET):
        raise TypeError("bug")
    with pytest.raises(KeyboardInterrupt), translate("query", TARGET):
        raise KeyboardInterrupt
    original = ConnectorError("already ours", code=ErrorCode.TIMEOUT)
    with pytest.raises(ConnectorError) as info, translate("query", TARGET):
        raise original
    assert info.value is original


def test_translate_keeps_the_driver_exception_as_cause():
    exc = server_error("40001", "could not serialize access")
    with pytest.raises(ConnectorError) as info, translate("commit", TARGET, write=True):
        raise exc
    assert info.value.__cause__ is exc
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE
    assert info.value.message == f"postgresql: commit on {TARGET}: could not serialize access"


def test_translate_scrubs_the_password_from_connect_errors():
    pgconn = pgerrors.FinishedPGconn(password=PASSWORD.encode(), user=b"u")
    exc = psycopg.OperationalError("connection failed: FATAL:  password authentication failed")
    exc._pgconn = pgconn
    assert PASSWORD in repr(exc.pgconn)  # what psycopg would leave lying around
    with pytest.raises(AuthenticationError) as info, translate("connect", TARGET, connecting=True):
        raise exc
    cause = info.value.__cause__
    assert cause.pgconn is None
    assert PASSWORD not in repr(vars(cause)) and PASSWORD not in str(info.value)


@pytest.mark.parametrize("sqlstate", [c[0] for c in CASES])
def test_translated_errors_pickle_with_every_attribute(sqlstate):
    exc = server_error(sqlstate, "x", constraint="c", table="t")
    err = classify(exc, operation="execute", target=TARGET, write=True)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err)
    for attr in (
        "message",
        "code",
        "transient",
        "retry_hint",
        "maybe_applied",
        "connector",
        "details",
    ):
        assert getattr(copy, attr) == getattr(err, attr), attr


# ------------------------------------------------- docs/postgresql.md agrees

DOCS = Path(__file__).resolve().parents[3] / "docs" / "postgresql.md"
_DOC_SQLSTATE = re.compile(r"\b(?=[0-9A-Z]*[0-9])[0-9A-Z]{5}\b")
_DOC_CLASS = re.compile(r"\bclass ([0-9A-Z]{2})\b")
_DOC_AT_CONNECT = re.compile(r"at connect time ([\"'])(.+?)\1")
_DOC_DRIVER_CLASS = re.compile(r"`(psycopg_pool|psycopg\.errors)\.(\w+)`")


def documented_error_table():
    """The rows of the table in the "Errors" section: (source text, (code, transient, hint))."""
    section = DOCS.read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 4 or cells[0] in ("Source", "---"):
            continue
        source, code, transient, hint = cells
        assert transient in ("yes", "no"), line
        first_code = re.search(r"`(\w+)`", code).group(1)
        rule = (ErrorCode[first_code], transient == "yes", RetryHint[hint.strip("`")])
        rows.append((source, rule))
    return rows


def rule_of(err):
    return (err.code, err.transient, err.retry_hint)


def test_the_documented_error_table_matches_errors_py():
    rows = documented_error_table()
    assert len(rows) > 15
    states, classes, drivers = set(), set(), set()
    for source, rule in rows:
        for state in _DOC_SQLSTATE.findall(source):
            states.add(state)
            assert rule_of(classify(server_error(state))) == rule, (source, state)
        for cls in _DOC_CLASS.findall(source):
            classes.add(cls)
            if "while connecting" in source:
                assert rule_of(classify(server_error(cls + "000"), connecting=True)) == rule
            else:
                assert rule_of(classify(server_error(cls + "000"))) == rule, (source, cls)
        for _quote, text in _DOC_AT_CONNECT.findall(source):
            exc = psycopg.OperationalError(f"connection failed: FATAL:  {text}")
            assert rule_of(classify(exc, connecting=True)) == rule, (source, text)
        for module, name in _DOC_DRIVER_CLASS.findall(source):
            drivers.add(name)
            exc = getattr(psycopg_pool if module == "psycopg_pool" else pgerrors, name)("x")
            assert rule_of(classify(exc)) == rule, source
    # ... and nothing in the table of errors.py is left out of the docs.
    assert set(SQLSTATE_CODES) <= states, set(SQLSTATE_CODES) - states
    assert set(SQLSTATE_CLASSES) <= classes, set(SQLSTATE_CLASSES) - classes
    assert {"PoolTimeout", "TooManyRequests", "PoolClosed", "ConnectionTimeout"} <= drivers


def test_every_rule_is_a_core_error_rule_and_builds_the_most_specific_class():
    from dictamesh_connectors.errors import ErrorRule, error_class_for
    from dictamesh_connectors.postgresql import errors as module

    rules = [*SQLSTATE_CODES.values(), *SQLSTATE_CLASSES.values()]
    rules += [rule for _pattern, rule in module._CONNECT_MESSAGES]
    assert all(type(rule) is ErrorRule for rule in rules)
    assert not hasattr(module, "_build")
    err = classify(psycopg_pool.PoolTimeout("no connection in 1s"), target=TARGET)
    assert type(err) is error_class_for(ErrorCode.TIMEOUT) and isinstance(
        err, ConnectorTimeoutError
    )


@pytest.mark.parametrize(
    ("fatal", "code"),
    [
        ('invalid value for parameter "work_mem": "bogus"', ErrorCode.INVALID_CONFIG),
        ('unrecognized configuration parameter "nosuch"', ErrorCode.INVALID_CONFIG),
        (
            'invalid value for parameter "statement_timeout": "99999999999"\nHINT:  Value '
            "exceeds integer range.",
            ErrorCode.INVALID_CONFIG,
        ),
        (
            'parameter "shared_buffers" cannot be changed without restarting the server',
            ErrorCode.INVALID_CONFIG,
        ),
        ("some brand new FATAL nobody has seen", ErrorCode.CONNECTION_FAILED),
    ],
)
def test_unknown_or_config_fatals_at_connect_are_permanent(fatal, code):
    exc = psycopg.OperationalError(
        f'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  {fatal}'
    )
    err = classify(exc, connecting=True)
    assert err.code is code and err.transient is False and err.retry_hint is RetryHint.NONE


def test_a_network_failure_at_connect_stays_transient():
    exc = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused'
    )
    err = classify(exc, connecting=True)
    assert err.code is ErrorCode.CONNECTION_FAILED and err.transient is True


def _pool_failed(cause: psycopg.Error) -> PoolConnectFailed:
    try:
        raise PoolConnectFailed("couldn't get a connection after 3.00 sec") from cause
    except PoolConnectFailed as exc:
        return exc


def test_a_pool_timeout_after_a_refused_connect_is_connection_failed():
    refused = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 1 failed:'
        " Connection refused\n\tIs the server running on that host?"
    )
    err = classify(_pool_failed(refused), operation="query", target=TARGET)
    assert err.code is ErrorCode.CONNECTION_FAILED
    assert err.transient and err.retry_hint is RetryHint.RETRY
    assert not err.maybe_applied
    assert err.details["pool"] == "connect_failed"
    assert "Connection refused" in err.message
    # a bare PoolTimeout (a busy pool) stays TIMEOUT
    assert classify(psycopg_pool.PoolTimeout("x")).code is ErrorCode.TIMEOUT


def test_a_pool_timeout_after_a_refused_password_is_auth_failed():
    bad = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 5432 failed:'
        ' FATAL:  password authentication failed for user "app"'
    )
    err = classify(_pool_failed(bad), operation="execute", target=TARGET, write=True)
    assert err.code is ErrorCode.AUTH_FAILED and not err.transient
    assert not err.maybe_applied
