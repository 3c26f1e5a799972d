"""``with connector:`` exited by a thread that still holds a stream or transaction open.

The exiting thread's own operations cannot finish before ``disconnect()``
returns, so waiting for them would hang forever: they are not waited for,
and each ends normally on the pooled connection it already holds, which is
closed when given back (docs/lifecycle.md, "Disconnecting from inside an
operation"). Nothing hangs, nothing is lost, nothing is left on the server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from dictamesh_connectors.base import State
from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.postgresql import PostgreSQLConnector

from .conftest import backend_pids, wait_for

pytestmark = pytest.mark.integration


def _finishes(fn: Callable[[], None], seconds: float = 30.0) -> bool:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    t.join(seconds)
    return not t.is_alive()


def test_with_block_left_holding_an_open_stream(make_db, admin) -> None:
    db: PostgreSQLConnector = make_db(connect=False)
    seen: list[object] = []

    def body() -> None:
        with db:
            rows = iter(db.stream("SELECT g FROM generate_series(1, 10000) g", batch_size=10))
            seen.append(next(rows))  # the stream is open: one in-flight operation
        seen.append(db.state)
        seen.append(sum(1 for _ in rows))  # it reads to its end on the connection it holds

    assert _finishes(body)
    assert seen == [{"g": 1}, State.DISCONNECTED, 9999]
    with pytest.raises(ConnectorError):
        db.query("SELECT 1")  # new operations are refused
    name = db.config.application_name
    assert wait_for(lambda: not backend_pids(admin, name))  # nothing left on the server


def test_with_block_left_from_inside_a_transaction(make_db, admin, table) -> None:
    db: PostgreSQLConnector = make_db(connect=False)

    def body() -> None:
        with db:
            db.execute(f"CREATE TABLE {table} (id int)")
            with db.transaction() as tx:
                tx.execute(f"INSERT INTO {table} VALUES (1)")
                db.disconnect()  # what leaving an enclosing `with db:` does

    assert _finishes(body) and db.state is State.DISCONNECTED
    # The block ended normally, so its transaction committed: nothing lost.
    assert admin.execute(f"SELECT count(*) FROM {table}").fetchone() == (1,)
    name = db.config.application_name
    assert wait_for(lambda: not backend_pids(admin, name))
