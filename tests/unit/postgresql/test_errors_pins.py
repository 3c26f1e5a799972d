"""Pins what docs/postgresql.md promises about lost connections and DETAIL lines.

Mutating errors.py (the BAD-status check, one alternative of the
lost-connection pattern, the DETAIL rule) must turn one of these red.
"""

from __future__ import annotations

import psycopg
import pytest

from dictamesh_connectors.errors import ErrorCode, RetryHint
from dictamesh_connectors.postgresql.errors import classify

from .test_errors import server_error

LOST = (ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)


def rule(err):
    return (err.code, err.transient, err.retry_hint)


class _BadConn:
    status = psycopg.pq.ConnStatus.BAD


class _OkConn:
    status = psycopg.pq.ConnStatus.OK


def test_a_connection_in_bad_status_is_lost_whatever_the_message():
    exc = psycopg.OperationalError("an odd message no pattern knows", pgconn=_BadConn())
    assert rule(classify(exc, write=True)) == LOST
    assert classify(exc, write=True).maybe_applied
    ok = psycopg.OperationalError("an odd message no pattern knows", pgconn=_OkConn())
    assert classify(ok).code is ErrorCode.QUERY_FAILED and not classify(ok).transient


@pytest.mark.parametrize(
    "message",
    [
        "connection is closed",
        "connection socket closed",
        "consuming input failed: server closed the connection unexpectedly",
        "sending query failed: another command is already in progress",
        "flushing failed",
        "connection is bad",
        "server closed the connection unexpectedly",
        "terminating connection due to idle-session timeout",
        "SSL connection has been closed unexpectedly",
        'lost synchronization with server: got message type "x"',
        "connection not open",
        "no connection to the server",
        "could not receive data from server: Connection reset by peer",
        "could not send data to server: Broken pipe",
        "connection reset",
        "broken pipe",
        "SSL SYSCALL error: EOF detected",
    ],
)
def test_each_lost_connection_message(message):
    assert rule(classify(psycopg.OperationalError(message))) == LOST


def test_detail_lines_never_reach_our_messages():
    exc = server_error(
        "23505",
        'duplicate key value violates unique constraint "users_email_key"',
        constraint="users_email_key",
        detail="Key (email)=(DETAIL-VALUE@example.org) already exists.",
    )
    err = classify(exc, write=True)
    assert "DETAIL-VALUE" not in err.message and "DETAIL-VALUE" not in repr(err)
    assert all("DETAIL-VALUE" not in str(v) for v in err.details.values())
    assert err.details["constraint"] == "users_email_key"
    # Even when psycopg's str() carries the DETAIL line (no diagnostics parsed).
    plain = psycopg.errors.UniqueViolation("dup\nDETAIL:  Key (id)=(DETAIL-VALUE) exists.")
    assert "DETAIL-VALUE" not in classify(plain, write=True).message
