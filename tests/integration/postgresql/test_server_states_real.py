"""Server states only a cluster we control can produce: 57P03 and 57P02, for real.

* 57P03 cannot_connect_now: ``pg_ctl stop -m smart`` while a session stays
  open. A smart shutdown waits for the last session to end and meanwhile
  refuses every new one with FATAL 57P03 "the database system is shutting
  down".
* 57P02 crash_shutdown: SIGKILL one backend. The postmaster then SIGQUITs
  every other backend (each tells its client 57P02 "terminating connection
  because of crash of another server process" and exits) and runs crash
  recovery.

Both need the local ``scripts/services.sh`` cluster (127.0.0.1:55432, data
dir under ``DICTAMESH_SERVICES_DIR``); each test leaves it started and
serving, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import struct
import subprocess
from pathlib import Path

import psycopg
import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, RetryHint
from dictamesh_connectors.postgresql import PostgreSQLConfig
from dictamesh_connectors.postgresql.errors import SQLSTATE_CODES

from .conftest import PG_STATE_DIR, backend_pids, wait_for

pytestmark = pytest.mark.integration

DATA_DIR = PG_STATE_DIR / "data"
LOG_FILE = PG_STATE_DIR / "postgres.log"
# Where scripts/services/postgres.sh records the postmaster's pid (its
# status/restart/down go by it): kept right when this module restarts it.
PID_FILE = PG_STATE_DIR / "postgres.pid"


def check(err, code, transient, hint):
    assert err.code is code, err
    assert err.transient is transient, err
    assert err.retry_hint is hint, err
    assert err.connector == "postgresql"
    assert isinstance(err.__cause__, psycopg.Error)


# ------------------------------------------------------------ the cluster


def _pg_bin() -> Path | None:
    """The bin directory of the cluster's server (postmaster.opts names it)."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        postgres = Path(shlex.split((DATA_DIR / "postmaster.opts").read_text())[0])
        if (postgres.parent / "pg_ctl").exists():
            return postgres.parent
    return None


def _pg_ctl(*args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
    """pg_ctl on the cluster, as the OS user that runs it (like postgres.sh)."""
    pg_bin = _pg_bin() or sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    command = [str(pg_bin / "pg_ctl"), "-D", str(DATA_DIR), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, check=False, cwd="/"
    )


def _postmaster_pid() -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((DATA_DIR / "postmaster.pid").read_text().splitlines()[0])
    return None


def _running() -> bool:
    return _pg_ctl("status", timeout=30).returncode == 0


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _wait_until_serving(dsn: str) -> None:
    if not wait_for(lambda: _answers(dsn), timeout=120, interval=0.2):
        raise RuntimeError(f"PostgreSQL does not answer; see {LOG_FILE}")


def _serve_again(dsn: str) -> None:
    """Undo a smart shutdown: let it finish, start the cluster, wait until it serves.

    Safe whatever state the test left: if the stop never took effect the
    server still answers and nothing is done.
    """
    if _answers(dsn):
        return
    # A smart shutdown completes as soon as the last session is gone.
    if not wait_for(lambda: not _running(), timeout=30, interval=0.1):
        # Some other session keeps it waiting: end them (and it) now.
        _pg_ctl("stop", "-m", "fast", "-w", "-t", "60")
        if _running():
            _pg_ctl("stop", "-m", "immediate", "-w", "-t", "60")
    started = _pg_ctl("start", "-w", "-t", "120", "-l", str(LOG_FILE))
    if started.returncode != 0 and not _running():
        raise RuntimeError(f"pg_ctl start failed: {started.stdout}{started.stderr}")
    pid = _postmaster_pid()
    if pid is not None and PID_FILE.parent.is_dir():
        PID_FILE.write_text(f"{pid}\n")
    _wait_until_serving(dsn)


def _pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.fixture
def cluster(postgres_dsn: str, can_restart: None) -> None:
    """Skip unless this process can drive the local cluster with pg_ctl and signals."""
    if _pg_bin() is None or _postmaster_pid() is None:
        pytest.skip(f"the local PostgreSQL cluster in {DATA_DIR} is not readable from here")
    if os.geteuid() != 0 and DATA_DIR.stat().st_uid != os.geteuid():
        pytest.skip("pg_ctl and kill need root or the OS user that runs PostgreSQL")
    if not _running() or not _answers(postgres_dsn):
        pytest.skip("the local PostgreSQL cluster is not running")


# ------------------------------------------------- the server's own words


def _startup_error(dsn: str) -> dict[str, str] | None:
    """Send a bare StartupMessage; return the fields of an ErrorResponse reply.

    libpq exposes no SQLSTATE for a failed connection attempt (psycopg's
    exception has ``sqlstate=None``), so read the server's reply ourselves.
    ``None`` when the server answers anything else (it asks for a password).
    """
    config = PostgreSQLConfig.from_url(dsn)
    params = b"".join(
        key + b"\0" + value.encode() + b"\0"
        for key, value in ((b"user", config.username or ""), (b"database", config.database or ""))
    )
    body = struct.pack("!I", 196608) + params + b"\0"  # protocol 3.0
    with socket.create_connection((config.host, config.port), timeout=10) as sock:
        sock.sendall(struct.pack("!I", len(body) + 4) + body)
        header = sock.recv(5, socket.MSG_WAITALL)
        if header[:1] != b"E":
            return None
        (length,) = struct.unpack("!I", header[1:5])
        payload = sock.recv(length - 4, socket.MSG_WAITALL)
    fields = {}
    for field in payload.split(b"\0"):
        if field:
            fields[field[:1].decode()] = field[1:].decode()
    return fields


# ------------------------------------------------------------------ 57P03


def test_smart_shutdown_refuses_new_sessions_with_57p03(make_db, postgres_dsn, cluster):
    holder = make_db(max_open_conns=1, min_open_conns=1)  # the session the shutdown waits for
    late = make_db(connect=False)
    postmaster = _postmaster_pid()
    assert _startup_error(postgres_dsn) is None  # up: the server asks for the password
    try:
        stop = _pg_ctl("stop", "-m", "smart", "--no-wait")
        assert stop.returncode == 0, stop.stdout + stop.stderr
        # The postmaster takes the signal asynchronously.
        assert wait_for(lambda: _startup_error(postgres_dsn) is not None, timeout=30)

        # What the server really sends: FATAL 57P03.
        fields = _startup_error(postgres_dsn)
        assert fields is not None
        assert (fields["V"], fields["C"], fields["M"]) == (
            "FATAL",
            "57P03",
            "the database system is shutting down",
        )

        # What the connector makes of it.
        with pytest.raises(ConnectorError) as info:
            late.connect()
        err = info.value
        # libpq hands over the message only, no SQLSTATE: errors.py classifies
        # connect-time failures by that message. Same code and transient flag
        # as the 57P03 rule; the hint is RETRY, not RECONNECT (there is no
        # connection to drop), as for every connect-time failure.
        check(err, ErrorCode.UNAVAILABLE, True, RetryHint.RETRY)
        assert SQLSTATE_CODES["57P03"][:2] == (ErrorCode.UNAVAILABLE, True)
        assert err.__cause__.sqlstate is None
        assert "sqlstate" not in err.details
        assert not err.maybe_applied
        assert err.message == (
            f"postgresql: connect on {late.config.target}: the database system is shutting down"
        )
        assert not late.is_connected

        # "smart": the open session is left alone and keeps working.
        assert holder.query("SELECT 1").scalar() == 1
        assert holder.execute("SELECT 1").rows_affected == 1
        assert _postmaster_pid() == postmaster
    finally:
        holder.disconnect(timeout=10)  # the last session: the shutdown completes
        _serve_again(postgres_dsn)
    assert _postmaster_pid() != postmaster  # it did stop, and was started again
    # The connector that was refused connects now (connect() may be called again).
    late.connect()
    assert late.query("SELECT 1").scalar() == 1


# ------------------------------------------------------------------ 57P02


def test_crash_of_another_backend_ends_the_pooled_connections(make_db, postgres_dsn, cluster):
    db = make_db(max_open_conns=3, min_open_conns=2, pool_timeout=60)
    app = db.config.application_name
    notices: list[tuple[str | None, str | None, str | None]] = []
    observer = psycopg.connect(postgres_dsn, autocommit=True, application_name="dmtest-observer")
    observer.add_notice_handler(
        lambda d: notices.append((d.severity_nonlocalized, d.sqlstate, d.message_primary))
    )
    victim = psycopg.connect(postgres_dsn, autocommit=True, application_name="dmtest-victim")
    server_version = observer.info.server_version
    victim_pid = victim.info.backend_pid
    crash_message = "terminating connection because of crash of another server process"
    try:
        before = set(backend_pids(observer, app))
        assert len(before) == 2  # the pool's idle connections
        assert Path(f"/proc/{victim_pid}/cmdline").read_bytes().startswith(b"postgres")

        with pytest.raises(ConnectorError) as info, db.transaction() as tx:
            tx_pid = tx.query("SELECT pg_backend_pid()").scalar()
            assert tx_pid in before  # a connection the pool already held
            os.kill(victim_pid, signal.SIGKILL)
            # The postmaster SIGQUITs every other backend; ours has exited.
            assert wait_for(lambda: not _pid_alive(tx_pid), timeout=30)
            tx.query("SELECT 1")
        err = info.value

        # What the server really sent (the observer's session got the same).
        with pytest.raises(psycopg.OperationalError) as observed:
            observer.execute("SELECT 1")
        if server_version >= 140000:
            # Since PostgreSQL 14 a backend killed for a crash tells its client
            # 57P02 as a WARNING (WARNING_CLIENT_ONLY), then closes the socket:
            # no ErrorResponse carries the SQLSTATE, and the client sees only
            # the EOF. Deterministic, not a race.
            assert notices == [("WARNING", "57P02", crash_message)]
            assert observed.value.sqlstate is None
            check(err, ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)
            assert err.__cause__.sqlstate is None
            assert "sqlstate" not in err.details
        else:  # pragma: no cover - the local test server is newer
            # Up to 13 it was a FATAL error: the 57P02 rule applies.
            assert observed.value.sqlstate == "57P02"
            check(err, ErrorCode.UNAVAILABLE, True, RetryHint.RECONNECT)
            assert err.details["sqlstate"] == "57P02"
        assert not err.maybe_applied  # a read inside a transaction: nothing applied

        # After crash recovery the same connector works again: no connect(),
        # no rebuild. The pool's idle connection died too; the checkout check
        # sees its 57P02 notice and discards it (see the test below).
        _wait_until_serving(postgres_dsn)
        assert db.is_connected
        assert db.query("SELECT 2").scalar() == 2
        assert db.execute("SELECT 1").rows_affected == 1
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            assert not before & set(backend_pids(admin, app))  # all new server processes
    finally:
        observer.close()
        victim.close()
        _wait_until_serving(postgres_dsn)


def test_checkout_check_discards_idle_connections_a_crash_ended(make_db, postgres_dsn, cluster):
    db = make_db(max_open_conns=2, min_open_conns=1, pool_timeout=60)
    app = db.config.application_name
    victim = psycopg.connect(postgres_dsn, autocommit=True, application_name="dmtest-victim")
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            (idle_pid,) = backend_pids(admin, app)
        os.kill(victim.info.backend_pid, signal.SIGKILL)
        assert wait_for(lambda: not _pid_alive(idle_pid), timeout=30)
        _wait_until_serving(postgres_dsn)
        # The idle connection received "WARNING 57P02" and then EOF while it
        # sat in the pool. A write is never retried: it succeeds only if the
        # checkout check discarded that connection.
        assert db.execute("SELECT 1").rows_affected == 1
    finally:
        victim.close()
        _wait_until_serving(postgres_dsn)
