"""The SQL text of postgresql/statements.py: BEGIN options, timeouts, COPY, savepoints."""

import psycopg
import pytest
from psycopg import sql

from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.postgresql.statements import (
    as_composable,
    begin_statement,
    copy_in_statement,
    copy_out_statement,
    operation_name,
    savepoint_statements,
    timeout_ms,
)


def text(composable):
    # Rendering an Identifier needs a connection's encoding; psycopg accepts None
    # for the default quoting rules.
    return composable.as_string(None)


@pytest.mark.parametrize(
    "level, read_only, deferrable, expected",
    [
        (None, False, False, "BEGIN"),
        ("serializable", False, False, "BEGIN ISOLATION LEVEL SERIALIZABLE"),
        ("repeatable_read", True, False, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        ("Read Committed", False, True, "BEGIN ISOLATION LEVEL READ COMMITTED DEFERRABLE"),
    ],
)
def test_begin_statement(level, read_only, deferrable, expected):
    assert begin_statement(level, read_only, deferrable) == expected


def test_begin_statement_accepts_psycopg_isolation_levels_and_rejects_the_rest():
    assert begin_statement(psycopg.IsolationLevel.SERIALIZABLE, False, False).endswith(
        "SERIALIZABLE"
    )
    for bad in ("serializable; DROP TABLE x", "chaos", 3):
        with pytest.raises(InvalidConfigError):
            begin_statement(bad, False, False)


def test_timeouts_become_whole_milliseconds_and_must_be_positive():
    assert timeout_ms(1.5) == "1500"
    assert timeout_ms(0.0001) == "1"
    assert timeout_ms(float("inf")) == "0"  # no limit for this statement
    for bad in (0, -1, float("nan"), 1e306, 10**400, 7 * 24 * 3600 + 1):
        with pytest.raises(InvalidConfigError):
            timeout_ms(bad)
    for wrong_type in (True, "1", b"1"):
        with pytest.raises(TypeError):  # a programming error, documented
            timeout_ms(wrong_type)


def test_copy_in_quotes_every_name():
    assert text(copy_in_statement("t", ["a", 'b"c'])) == 'COPY "t" ("a", "b""c") FROM STDIN'
    assert text(copy_in_statement(("s", "t"), "a")) == 'COPY "s"."t" ("a") FROM STDIN'
    with pytest.raises(InvalidConfigError):
        copy_in_statement("t", [])


def test_copy_out_formats_and_header():
    assert text(copy_out_statement("SELECT 1", "csv", True)) == (
        "COPY (SELECT 1) TO STDOUT (FORMAT csv, HEADER true)"
    )
    assert text(copy_out_statement(b"TABLE t", "binary", False)) == (
        "COPY (TABLE t) TO STDOUT (FORMAT binary)"
    )
    for fmt, header in (("xml", False), ("text", True), ("csv; DROP TABLE t", False)):
        with pytest.raises(InvalidConfigError):
            copy_out_statement("SELECT 1", fmt, header)


def test_as_composable_keeps_psycopg_objects_and_wraps_text():
    composed = sql.SQL("SELECT {}").format(sql.Literal(1))
    assert as_composable(composed) is composed
    assert text(as_composable("SELECT 2")) == "SELECT 2"
    assert text(as_composable(b"SELECT 3")) == "SELECT 3"


def test_savepoint_statements_name_the_same_quoted_savepoint():
    create, rollback_to, release = (text(s) for s in savepoint_statements(3))
    assert create == 'SAVEPOINT "dictamesh_sp_3"'
    assert rollback_to == 'ROLLBACK TO SAVEPOINT "dictamesh_sp_3"'
    assert release == 'RELEASE SAVEPOINT "dictamesh_sp_3"'


@pytest.mark.parametrize(
    ("statement", "verb"),
    [
        ("SELECT 1", "SELECT"),
        ("  select * from t;  ", "SELECT"),
        (b"update t set a = 1", "UPDATE"),
        ("-- note\n/* block */ INSERT INTO t VALUES (%s)", "INSERT"),
        ("copy t to stdout", "COPY"),
        ("SELECT 1; DELETE FROM t", None),  # maybe several statements: no name
        ("/* a; b */ SELECT 1", None),  # a ';' anywhere: not guessed
        ("WITH a AS (SELECT 1) SELECT * FROM a", None),
        ("s3cr3t-value SELECT", None),  # only a keyword of the closed set comes out
        ("SELECTED 1", None),
        ("", None),
        (sql.SQL("SELECT 1"), None),  # composed objects are not rendered
        (None, None),
    ],
)
def test_operation_name_is_a_known_keyword_of_one_statement_or_none(statement, verb):
    assert operation_name(statement) == verb
