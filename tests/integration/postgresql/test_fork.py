"""A connector created before os.fork() works in the child; the parent's connections survive."""

import contextlib
import gc
import os
import subprocess
import sys
import textwrap

import pytest

from tests.forking import run_in_child

from .conftest import backend_pids, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]


def all_connections_work(db, n):
    """Hold n transactions at once, so every pooled connection runs a statement."""
    with contextlib.ExitStack() as stack:
        txs = [stack.enter_context(db.transaction()) for _ in range(n)]
        return {tx.query("SELECT pg_backend_pid()").scalar() for tx in txs}


@pytest.fixture(autouse=True)
def _no_foreign_garbage():
    # The children below run gc.collect() to collect the parent's pool. Other
    # tests' leftover cycles must not be collected there too: a librdkafka
    # handle destroyed in a forked child crashes it (SIGSEGV), which would be
    # blamed on this connector. Collect them in the parent, before forking.
    gc.collect()


def parent_setup(make_db, admin):
    # No health check and no read retry: a damaged connection would surface
    # as an error instead of being quietly replaced.
    db = make_db(max_open_conns=3, min_open_conns=3, health_check="off", retry_reads=False)
    app = db.config.application_name
    assert wait_for(lambda: len(backend_pids(admin, app)) == 3)
    return db, app, set(backend_pids(admin, app))


def test_child_uses_its_own_pool_and_parent_connections_survive(make_db, admin):
    db, app, parent_pids = parent_setup(make_db, admin)

    def child():
        assert db.is_connected
        mine = db.query("SELECT pg_backend_pid()").scalar()
        assert mine not in parent_pids
        with db.transaction() as tx:
            tx.execute("SELECT 1")
        db.disconnect()
        gc.collect()  # collect the parent's pool and connection objects here
        return True

    assert run_in_child(child) == 0
    # The child's connections are gone, the parent's are exactly the same ones...
    assert wait_for(lambda: set(backend_pids(admin, app)) == parent_pids)
    # ...and every one of them still works.
    assert all_connections_work(db, 3) == parent_pids


def test_parent_damage_would_be_detected(make_db, admin):
    """Control: closing an inherited connection in the child does break the parent."""
    db, app, _ = parent_setup(make_db, admin)
    pool = db._handle

    def child():
        pool._pool[0].close()  # what a naive child (or pool.close()) would do
        return True

    assert run_in_child(child) == 0
    assert wait_for(lambda: len(backend_pids(admin, app)) == 2)


CHILD_EXITS_NORMALLY = textwrap.dedent(
    """
    import os, sys
    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    config = PostgreSQLConfig.from_url(
        sys.argv[1], application_name=sys.argv[2], max_open_conns=2, min_open_conns=2,
        health_check="off", retry_reads=False,
    )
    db = PostgreSQLConnector(config)
    db.connect()
    before = {db.query("SELECT pg_backend_pid()").scalar() for _ in range(4)}
    pid = os.fork()
    if pid == 0:
        assert db.query("SELECT 1").scalar() == 1  # the child's own pool
        sys.exit(0)  # a normal interpreter shutdown: every object is collected
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # The parent's connections survived the child's shutdown.
    with db.transaction() as a, db.transaction() as b:
        after = {tx.query("SELECT pg_backend_pid()").scalar() for tx in (a, b)}
    assert after == before, (before, after)
    db.disconnect()
    print("ok")
    """
)


def test_child_that_exits_normally_leaves_the_parent_alone(postgres_dsn):
    app = f"dmtest-fork-{os.getpid()}"
    out = subprocess.run(
        [sys.executable, "-c", CHILD_EXITS_NORMALLY, postgres_dsn, app],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_the_child_starts_with_a_clean_checkout_while_a_thread_runs_queries(make_db):
    """Fork while a parent thread runs queries: the child forgets the parent's checkout state."""
    import threading

    db = make_db(max_open_conns=3, min_open_conns=1)
    db._checkout.note_lost()  # the parent just saw a dead connection
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            db.query("SELECT 1")

    worker = threading.Thread(target=busy)
    worker.start()
    try:

        def child():
            # The core fork hook ran the connector's reset: no inherited
            # "suspicious" window, no inherited ended-session marks, and the
            # base lock (maybe held by the busy thread at fork time) is free.
            assert db._checkout._suspicious_until == 0.0 and len(db._checkout._ended) == 0
            assert db.query("SELECT 2").scalar() == 2
            with db.transaction() as tx:
                assert tx.query("SELECT 3").scalar() == 3
            return True

        for _ in range(3):
            assert run_in_child(child) == 0
    finally:
        stop.set()
        worker.join()
    assert db.query("SELECT 4").scalar() == 4  # the parent is unharmed
