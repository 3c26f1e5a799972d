"""query / execute / executemany / COPY / stream / transactions against the real server."""

import gc
import io

import psycopg
import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, NotConnectedError
from dictamesh_connectors.postgresql import ExecResult, QueryResult

from .conftest import backend_pids, unique, wait_for

pytestmark = pytest.mark.integration


def create(db, table, columns="id int PRIMARY KEY, name text"):
    db.execute(f'CREATE TABLE "{table}" ({columns})')


def test_query_result_shape(db):
    r = db.query("SELECT %s::int AS a, %s::text AS b UNION ALL SELECT 2, NULL ORDER BY 1", [1, "x"])
    assert isinstance(r, QueryResult)
    assert r.columns == ["a", "b"] and r.rowcount == 2 and len(r) == 2
    assert r.rows == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]
    assert list(r) == r.rows and r.tuples == [(1, "x"), (2, None)]
    assert r.first() == {"a": 1, "b": "x"} and r.scalar() == 1
    empty = db.query("SELECT 1 AS a WHERE false")
    assert empty.first() is None and empty.scalar() is None and empty.columns == ["a"]
    assert db.query("SELECT %(n)s::int * 2", {"n": 21}).scalar() == 42


def test_execute_rows_affected_and_returning(db, table):
    create(db, table)
    result = db.execute(
        f'INSERT INTO "{table}" VALUES (%s, %s), (%s, %s) RETURNING id', [1, "a", 2, "b"]
    )
    assert isinstance(result, ExecResult)
    assert result.rows_affected == 2 and [r["id"] for r in result] == [1, 2]
    assert db.execute(f'UPDATE "{table}" SET name = %s', ["z"]).rows_affected == 2
    assert db.execute(f'DELETE FROM "{table}" WHERE id = %s', [1]).rows_affected == 1


def test_executemany_is_pipelined_and_atomic(db, table, monkeypatch):
    create(db, table)
    insert = f'INSERT INTO "{table}" VALUES (%s, %s)'
    pipelines = []
    original = psycopg.Connection.pipeline

    def spy(self):
        pipelines.append(self)
        return original(self)

    monkeypatch.setattr(psycopg.Connection, "pipeline", spy)
    assert db.executemany(insert, [(i, f"n{i}") for i in range(500)]).rows_affected == 500
    with db.transaction() as tx:
        assert tx.executemany(insert, [(600, "a"), (601, "b")]).rows_affected == 2
        tx.execute(f'DELETE FROM "{table}" WHERE id >= 600')
    assert len(pipelines) == 2  # both ran in psycopg's pipeline mode
    with pytest.raises(ConnectorError) as info:
        db.executemany(insert, [(1000, "ok"), (1001, "ok"), (1, "duplicate")])
    assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
    assert db.query(f'SELECT count(*) FROM "{table}"').scalar() == 500  # none of the batch


def test_copy_in_and_copy_out_round_trip_with_hostile_names(db):
    table = unique('t"; DROP TABLE x; --')
    db.execute(
        psycopg.sql.SQL("CREATE TABLE {} ({} int, {} text)").format(
            psycopg.sql.Identifier(table),
            psycopg.sql.Identifier("i d"),
            psycopg.sql.Identifier('na"me'),
        )
    )
    try:
        rows = [(i, f'line {i}, with "quotes"\tand\ttabs\nnewline') for i in range(1000)]
        rows.append((1000, None))
        assert db.copy_in(table, ["i d", 'na"me'], iter(rows)) == 1001
        out = io.BytesIO()
        query = psycopg.sql.SQL("SELECT * FROM {} WHERE {} < %s ORDER BY 1").format(
            psycopg.sql.Identifier(table), psycopg.sql.Identifier("i d")
        )
        assert db.copy_out(query, [3], out=out, format="csv", header=True) == 3
        lines = out.getvalue().decode().splitlines()
        assert lines[0] == 'i d,"na""me"' and lines[1].startswith('0,"line 0, with ""quotes""')
        text = db.copy_out(query, [2], format="text")  # no out=: the data itself
        assert text.splitlines() == [
            b'0\tline 0, with "quotes"\\tand\\ttabs\\nnewline',
            b'1\tline 1, with "quotes"\\tand\\ttabs\\nnewline',
        ]
        back = db.query(
            psycopg.sql.SQL("SELECT * FROM {} ORDER BY 1").format(psycopg.sql.Identifier(table))
        )
        assert back.tuples == rows
    finally:
        db.execute(psycopg.sql.SQL("DROP TABLE {}").format(psycopg.sql.Identifier(table)))


def test_stream_batches_and_returns_the_connection_clean(make_db, admin):
    db = make_db(max_open_conns=1, min_open_conns=1)
    rows = db.stream(
        "SELECT g, g * 2 AS double FROM generate_series(1, %s) g", [2500], batch_size=100
    )
    first = next(rows)
    assert first == {"g": 1, "double": 2} and rows.columns == ["g", "double"]
    assert sum(1 for _ in rows) == 2499
    # The only connection is back, idle and outside any transaction.
    assert db.query("SELECT 1").scalar() == 1
    states = admin.execute(
        "SELECT state FROM pg_stat_activity WHERE application_name = %s",
        [db.config.application_name],
    ).fetchall()
    assert states == [("idle",)]


def test_stream_closed_early_ends_its_transaction(make_db, admin):
    db = make_db(max_open_conns=1, min_open_conns=1)
    with db.stream("SELECT * FROM generate_series(1, 100000)", batch_size=10) as rows:
        assert next(rows) == {"generate_series": 1}
    assert db.query("SELECT count(*) FROM pg_cursors").scalar() == 0
    assert db.query("SELECT now() = statement_timestamp()").scalar() is True  # not in a transaction


def test_abandoned_streams_release_their_connection_without_the_garbage_collector(make_db, admin):
    # One connection and a short pool wait: a stream that kept its connection
    # would make the next query fail with a pool timeout.
    db = make_db(max_open_conns=1, min_open_conns=1, pool_timeout=2)
    query = "SELECT * FROM generate_series(1, 100000)"
    gc.disable()  # reference counting alone must release an abandoned stream
    try:
        rows = db.stream(query, batch_size=10)
        assert next(rows) == {"generate_series": 1}
        del rows
        assert db._inflight == 0
        assert db.query("SELECT count(*) FROM pg_cursors").scalar() == 0
        for row in db.stream(query, batch_size=10):
            assert row == {"generate_series": 1}
            break
        assert db._inflight == 0
        assert db.query("SELECT now() = statement_timestamp()").scalar() is True
    finally:
        gc.enable()
    states = admin.execute(
        "SELECT state FROM pg_stat_activity WHERE application_name = %s",
        [db.config.application_name],
    ).fetchall()
    assert states == [("idle",)]
    db.disconnect(timeout=5)  # nothing in flight: returns at once
    assert backend_pids(admin, db.config.application_name) == [] or wait_for(
        lambda: backend_pids(admin, db.config.application_name) == []
    )


def test_stream_errors_are_translated(db):
    with pytest.raises(ConnectorError) as info:
        list(db.stream("SELECT * FROM no_such_table_at_all"))
    assert info.value.code is ErrorCode.NOT_FOUND


def test_transaction_commits_and_rolls_back(db, table):
    create(db, table)
    with db.transaction() as tx:
        tx.execute(f'INSERT INTO "{table}" VALUES (1, %s)', ["kept"])
        assert tx.query(f'SELECT name FROM "{table}"').scalar() == "kept"
    with pytest.raises(RuntimeError), db.transaction() as tx:
        tx.execute(f'INSERT INTO "{table}" VALUES (2, %s)', ["lost"])
        raise RuntimeError("abort")
    assert db.query(f'SELECT id FROM "{table}"').tuples == [(1,)]
    with pytest.raises(ConnectorError) as info:
        tx.query("SELECT 1")
    assert info.value.code is ErrorCode.TRANSACTION_FAILED


def test_transaction_options_reach_the_server(db):
    with db.transaction(isolation_level="serializable", read_only=True, deferrable=True) as tx:
        assert tx.query("SHOW transaction_isolation").scalar() == "serializable"
        assert tx.query("SHOW transaction_read_only").scalar() == "on"
        assert tx.query("SHOW transaction_deferrable").scalar() == "on"
        with pytest.raises(ConnectorError) as info, tx.savepoint():
            tx.execute("CREATE TEMP TABLE nope (a int)")
        assert info.value.code is ErrorCode.TRANSACTION_FAILED  # 25006 read-only transaction
    # Nothing leaks into the next transaction on the pooled connection.
    with db.transaction() as tx:
        assert tx.query("SHOW transaction_isolation").scalar() == "read committed"


def test_savepoint_recovers_from_a_failed_statement(db, table):
    create(db, table)
    with db.transaction() as tx:
        tx.execute(f'INSERT INTO "{table}" VALUES (1, %s)', ["a"])
        with pytest.raises(ConnectorError) as info, tx.savepoint():
            tx.execute(f'INSERT INTO "{table}" VALUES (2, %s)', ["b"])
            tx.execute(f'INSERT INTO "{table}" VALUES (1, %s)', ["duplicate"])
        assert info.value.code is ErrorCode.CONSTRAINT_VIOLATION
        with tx.savepoint():
            tx.execute(f'INSERT INTO "{table}" VALUES (3, %s)', ["c"])
        tx.executemany(f'INSERT INTO "{table}" VALUES (%s, %s)', [(4, "d"), (5, "e")])
        assert tx.copy_in(table, ["id", "name"], [(6, "f")]) == 1
    assert [r["id"] for r in db.query(f'SELECT id FROM "{table}" ORDER BY id')] == [1, 3, 4, 5, 6]


def test_swallowed_error_in_a_transaction_is_not_committed(db, table):
    create(db, table)
    with pytest.raises(ConnectorError) as info, db.transaction() as tx:
        tx.execute(f'INSERT INTO "{table}" VALUES (1, %s)', ["a"])
        with pytest.raises(ConnectorError):
            tx.execute("SELECT * FROM no_such_table_at_all")
        with pytest.raises(ConnectorError) as aborted:
            tx.query("SELECT 1")
        assert aborted.value.code is ErrorCode.TRANSACTION_FAILED  # 25P02
        assert aborted.value.details["sqlstate"] == "25P02"
    assert info.value.code is ErrorCode.TRANSACTION_FAILED
    assert db.query(f'SELECT count(*) FROM "{table}"').scalar() == 0


def test_per_statement_timeout_is_restored_afterwards(make_db):
    db = make_db(max_open_conns=1, min_open_conns=1, statement_timeout=42)
    assert db.query("SHOW statement_timeout").scalar() == "42s"
    assert db.query("SELECT 7", timeout=5).scalar() == 7
    assert db.query("SHOW statement_timeout").scalar() == "42s"
    with pytest.raises(ConnectorError):
        db.query("SELECT pg_sleep(5)", timeout=0.1)
    assert db.query("SHOW statement_timeout").scalar() == "42s"
    with db.transaction() as tx:
        assert tx.query("SELECT current_setting('statement_timeout')", timeout=3).scalar() == "3s"
        assert tx.query("SHOW statement_timeout").scalar() == "42s"


def test_schema_sets_the_search_path(make_db, admin):
    schema = unique("s")
    admin.execute(psycopg.sql.SQL("CREATE SCHEMA {}").format(psycopg.sql.Identifier(schema)))
    try:
        db = make_db(schema=schema)
        db.execute("CREATE TABLE inside (a int)")
        assert db.query("SELECT current_schema()").scalar() == schema
        assert admin.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchone() == (1,)
    finally:
        admin.execute(
            psycopg.sql.SQL("DROP SCHEMA {} CASCADE").format(psycopg.sql.Identifier(schema))
        )


def test_ping_connect_disconnect_lifecycle(make_db, admin):
    db = make_db(min_open_conns=3, max_open_conns=5)
    db.ping()
    app = db.config.application_name
    assert wait_for(lambda: len(backend_pids(admin, app)) == 3)
    db.disconnect()
    assert wait_for(lambda: backend_pids(admin, app) == [])
    with pytest.raises(NotConnectedError):
        db.query("SELECT 1")
    db.connect()
    assert db.query("SELECT 1").scalar() == 1


def test_fast_round_trips_skip_the_silence_watch_and_slow_ones_get_it(db, monkeypatch):
    """A statement that answers at once runs in psycopg's own wait alone; one slower
    than UNWATCHED_WAIT is resumed under the client-side deadline's watch, and answers."""
    from dictamesh_connectors.postgresql import session

    assert db.query("SELECT 1").scalar() == 1  # the pool's connections are open
    watched = []
    real = session._watched

    def spy(gen, limit, *, resumed=False):
        watched.append(resumed)
        return real(gen, limit, resumed=resumed)

    monkeypatch.setattr(session, "_watched", spy)
    for n in range(5):
        assert db.query("SELECT %s::int", [n]).scalar() == n
    with db.transaction() as tx:
        assert tx.query("SELECT 2").scalar() == 2
    if not session._BOUNDED_WAIT:  # psycopg 3.2: every wait is watched
        assert watched and not any(watched)
        return
    assert watched == []
    slow = f"SELECT 3 FROM pg_sleep({3 * session.UNWATCHED_WAIT})"
    assert db.query(slow).scalar() == 3
    assert watched == [True]
