"""Private servers for the fault campaign: the campaign may kill every one of them.

The shared test services (PostgreSQL 55432, Kafka 59092, SecantusDB 57017,
FerretDB 57027, Redis 56379) are used by everyone at once and are never
touched here. The campaign starts its own instances on free ports, in a
temporary directory, and SIGKILLs and restarts them at will:

* ``PrivatePostgres``: ``initdb`` + ``postgres`` from the Debian binaries
  (as ``scripts/services/postgres.sh`` finds them), trust auth on 127.0.0.1;
* ``PrivateSecantus``: ``secantusd-py`` with test commands (fail points), as
  ``scripts/services/mongodb.sh`` starts it;
* ``ChaosBroker``: the private KRaft broker of the Kafka integration tests
  (``tests/integration/kafka/broker.py``), optionally advertising a proxy
  port so that every client connection goes through the fault proxy;
* ``WriteServer``: an in-process threaded WSGI server that applies POSTed
  writes once per idempotency key and records every application.

Every server process runs in its own process group, registered with the
``Reaper``: a watchdog process that SIGKILLs every registered group as soon
as this process goes away, however it goes (exit, Ctrl-C, SIGKILL), so no
broker or postmaster outlives an interrupted run. ``atexit`` kills them too.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from tests.integration.kafka.broker import PrivateBroker

READY_TIMEOUT = 120.0

_REAPER_CODE = r"""
import os, signal, sys
groups = set()
for line in sys.stdin:
    line = line.strip()
    if line.startswith("+"):
        groups.add(int(line[1:]))
    elif line.startswith("-"):
        groups.discard(int(line[1:]))
for pgid in groups:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Reaper:
    """Kills every registered process group when this process ends, however it ends.

    A child Python process reads ``+pgid``/``-pgid`` lines on a pipe; when
    the pipe closes (this process exited or was killed: the kernel closes
    the write end either way) it SIGKILLs every group still registered. It
    runs in its own session, so a Ctrl-C to the terminal does not kill it
    before it has done its job.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._groups: set[int] = set()
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _REAPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        atexit.register(self.kill_all)

    def _send(self, line: str) -> None:
        stdin = self._proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.write(line.encode() + b"\n")
                stdin.flush()

    def watch(self, pgid: int) -> None:
        with self._lock:
            self._groups.add(pgid)
            self._send(f"+{pgid}")

    def forget(self, pgid: int) -> None:
        with self._lock:
            self._groups.discard(pgid)
            self._send(f"-{pgid}")

    def kill_all(self) -> None:
        """SIGKILL every group still registered, then let the watchdog go."""
        with self._lock:
            groups, self._groups = set(self._groups), set()
        for pgid in groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(10)


def _wait(predicate: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"chaos: {what} did not happen within {timeout:.0f}s")
        time.sleep(0.1)


def _kill_group(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGKILL) -> None:
    if proc is None:
        return
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# ------------------------------------------------------------------ PostgreSQL


def find_pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin with initdb and postgres (as postgres.sh)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.name.split(".")],
        reverse=True,
    )
    for d in candidates:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


class PrivatePostgres:
    """A throwaway cluster; ``kill()`` is a real crash (SIGKILL to every server process).

    ``fsync = off`` is safe here (only the process dies, never the kernel),
    but ``synchronous_commit`` stays on: with it off, a commit is
    acknowledged before its WAL leaves shared memory, and a SIGKILL would
    lose acknowledged writes by design.
    """

    def __init__(self, workdir: Path, reaper: Reaper) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
        self.bin = bin_dir
        self.reaper = reaper
        self.workdir = workdir
        self.data = workdir / "pgdata"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        # initdb and postgres refuse to run as root: use the Debian package's user.
        self.user = "postgres" if os.geteuid() == 0 else None
        self.log_path = workdir / "postgres.log"

    def dsn(self, port: int | None = None, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def _run_as(self) -> dict[str, Any]:
        return {"user": self.user, "cwd": "/"} if self.user else {"cwd": "/"}

    def init(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.user:
            entry = pwd.getpwnam(self.user)
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            # The server's user must be able to reach its directory.
            os.chmod(self.workdir.parent, 0o755)
        result = subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
             "--locale=C", "--auth-local=trust", "--auth-host=trust", "--no-sync"],
            capture_output=True, timeout=300, **self._run_as(),
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.decode(errors='replace')}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# dictamesh-connectors fault campaign (tests/chaos)\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "max_connections = 120\n"
                "fsync = off\n"
                "synchronous_commit = on\n"
                "full_page_writes = off\n"
                "shared_buffers = 16MB\n"
                "log_min_messages = fatal\n"
                "logging_collector = off\n"
            )
        (self.data / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        with contextlib.suppress(FileNotFoundError):
            (self.data / "postmaster.pid").unlink()  # every server process is dead
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, **self._run_as(),
        )  # fmt: skip
        log.close()
        self.reaper.watch(self.process.pid)
        _wait(self._answers, f"PostgreSQL on port {self.port} answering")

    def _answers(self) -> bool:
        import psycopg

        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the private PostgreSQL exited; see {self.log_path}")
        try:
            with psycopg.connect(self.dsn(), connect_timeout=2, autocommit=True) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once; wait until all are gone."""
        assert self.process is not None
        pgid = self.process.pid
        _kill_group(self.process)
        _wait(lambda: _group_gone(pgid), "every PostgreSQL process exiting", 60)
        self.reaper.forget(pgid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            pgid = self.process.pid
            _kill_group(self.process, signal.SIGINT)  # fast shutdown
            _wait(lambda: _group_gone(pgid), "every PostgreSQL process exiting", 60)
            self.reaper.forget(pgid)


# -------------------------------------------------------------------- MongoDB


def find_secantusd() -> Path | None:
    candidate = Path(sys.executable).parent / "secantusd-py"
    return candidate if candidate.is_file() else None


class PrivateSecantus:
    """A SecantusDB daemon with fail points on, as scripts/services/mongodb.sh starts it.

    ``--sync-on-commit`` is off (the daemon's default, as mongod's w:1 j:false):
    the campaign finds out whether an acknowledged write survives a SIGKILL.
    """

    def __init__(self, workdir: Path, reaper: Reaper, *, sync_on_commit: bool = False) -> None:
        daemon = find_secantusd()
        if daemon is None:
            raise RuntimeError(f"no secantusd-py next to {sys.executable}")
        self.daemon = daemon
        self.reaper = reaper
        self.workdir = workdir
        self.port = free_port()
        self.sync_on_commit = sync_on_commit
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "secantusd.log"
        workdir.mkdir(parents=True, exist_ok=True)
        # An explicit empty config file turns secantusd's auto-discovery off.
        (workdir / "secantusd.toml").write_text("# tests/chaos: settings are flags\n")

    def uri(self, port: int | None = None) -> str:
        return f"mongodb://127.0.0.1:{port or self.port}/?directConnection=true"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        argv = [str(self.daemon), "--config", str(self.workdir / "secantusd.toml"),
                "--host", "127.0.0.1", "--port", str(self.port),
                "--storage-path", str(self.workdir / "data"), "--cache-size", "128M",
                "--log-level", "ERROR", "--enable-test-commands"]  # fmt: skip
        if self.sync_on_commit:
            argv.append("--sync-on-commit")
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        self.reaper.watch(self.process.pid)
        _wait(self._answers, f"SecantusDB on port {self.port} answering")

    def _answers(self) -> bool:
        import pymongo
        import pymongo.errors

        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the private SecantusDB exited; see {self.log_path}")
        client: pymongo.MongoClient[Any] = pymongo.MongoClient(
            self.uri(), serverSelectionTimeoutMS=1000, connectTimeoutMS=1000
        )
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        assert self.process is not None
        pgid = self.process.pid
        _kill_group(self.process)
        _wait(lambda: _group_gone(pgid), "SecantusDB exiting", 60)
        self.reaper.forget(pgid)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            pgid = self.process.pid
            _kill_group(self.process, signal.SIGTERM)
            self.reaper.forget(pgid)


# ---------------------------------------------------------------------- Kafka


class ChaosBroker(PrivateBroker):
    """The Kafka tests' private broker, registered with the reaper.

    With ``advertised_port`` the broker tells clients to connect to that
    port (a fault proxy in front of ``port``), so that not only the
    bootstrap connection but every produce request crosses the proxy.
    """

    def __init__(
        self,
        workdir: Path,
        reaper: Reaper,
        *,
        port: int | None = None,
        advertised_port: int | None = None,
    ) -> None:
        self.reaper = reaper
        self._forced_port = port
        self.advertised_port = advertised_port
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir)

    def _write_config(self) -> None:
        if self._forced_port is not None:  # chosen before the proxy in front of it
            self.port = self._forced_port
            self.bootstrap = f"127.0.0.1:{self.port}"
        super()._write_config()
        if self.advertised_port is None:
            return
        path = self.workdir / "server.properties"
        lines = [
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.advertised_port},"
            f"SASL_PLAINTEXT://127.0.0.1:{self.sasl_port}"
            if line.startswith("advertised.listeners=")
            else line
            for line in path.read_text().splitlines()
        ]
        path.write_text("\n".join(lines) + "\n")

    def start(self) -> None:
        """As ``PrivateBroker.start``, but the reaper knows the broker before it is ready."""
        assert self.process is None or self.process.poll() is not None
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [*self._java(), "kafka.Kafka", str(self.workdir / "server.properties")],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        out.close()
        self.reaper.watch(self.process.pid)
        self.wait_ready()

    def kill(self) -> None:
        assert self.process is not None
        pgid = self.process.pid
        super().kill()
        self.reaper.forget(pgid)

    def stop(self) -> None:
        if self.process is not None:
            pgid = self.process.pid
            super().stop()
            self.reaper.forget(pgid)


# ----------------------------------------------------------------------- HTTP


class _Discard(io.StringIO):
    def write(self, s: str) -> int:
        return len(s)


class _Handler(WSGIRequestHandler):
    timeout = 30  # a client that went silent does not hold a server thread forever

    def get_stderr(self) -> Any:
        return _Discard()  # wsgiref prints the traceback of a dropped connection there

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ["chaos.socket"] = self.connection  # lets the app drop the connection
        return environ

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = False
    block_on_close = True  # server_close() joins the request threads (thread-leak check)
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the app dropped on purpose, or a client that went away


class _Dropped(Exception):
    """The app closed the connection on purpose: no response at all."""


class WriteServer:
    """``POST /writes`` applies ``{"id": ...}`` once per ``Idempotency-Key`` and records it.

    A request whose key was already applied gets the stored answer and is
    not applied again (as payment APIs do). Every application is recorded
    (``applied``: id -> number of times), so the checker can tell a lost
    write (acknowledged, never applied) from a duplicate (applied twice:
    the client sent the same write under two keys). Faults are armed per
    request with ``arm(kind)``:

    * ``"503"``: answer 503 with ``Retry-After: 0`` before applying;
    * ``"500_after_apply"``: apply, then answer 500;
    * ``"drop_before_apply"``: close the connection without an answer;
    * ``"drop_after_apply"``: apply, then close the connection without an
      answer (the client cannot know it happened).
    """

    def __init__(self) -> None:
        self.port = free_port()
        self._lock = threading.Lock()
        self._answers: dict[str, bytes] = {}  # guarded by _lock: idempotency key -> answer
        self.applied: dict[str, int] = {}  # guarded by _lock: write id -> applications
        self.requests = 0  # guarded by _lock
        self.replays = 0  # guarded by _lock
        self._armed: list[str] = []  # guarded by _lock
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def arm(self, kinds: Iterable[str]) -> None:
        with self._lock:
            self._armed.extend(kinds)

    def disarm(self) -> None:
        with self._lock:
            self._armed.clear()

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.applied)

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if method in ("HEAD", "GET"):
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
            return [b"ok"] if method == "GET" else []
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        key = environ.get("HTTP_IDEMPOTENCY_KEY")
        with self._lock:
            self.requests += 1
            fault = self._armed.pop(0) if self._armed else None
        if fault == "503":
            start_response("503 Service Unavailable", [("Retry-After", "0"),
                                                       ("Content-Length", "0")])  # fmt: skip
            return []
        if fault == "drop_before_apply":
            self._drop(environ)
        try:
            write_id = str(json.loads(body)["id"])
        except (ValueError, KeyError, TypeError):
            start_response("400 Bad Request", [("Content-Length", "0")])
            return []
        if key is None:
            start_response("428 Precondition Required", [("Content-Length", "0")])
            return []
        with self._lock:
            answer = self._answers.get(key)
            if answer is None:
                answer = json.dumps({"id": write_id, "key": key}).encode()
                self._answers[key] = answer
                self.applied[write_id] = self.applied.get(write_id, 0) + 1
            else:
                self.replays += 1
        if fault == "drop_after_apply":
            self._drop(environ)
        if fault == "500_after_apply":
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []
        start_response("201 Created", [("Content-Type", "application/json"),
                                       ("Content-Length", str(len(answer)))])  # fmt: skip
        return [answer]

    @staticmethod
    def _drop(environ: dict[str, Any]) -> None:
        sock: socket.socket = environ["chaos.socket"]
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        raise _Dropped()

    def start(self) -> None:
        server = make_server(
            "127.0.0.1", self.port, self.app, server_class=_Server, handler_class=_Handler
        )
        assert isinstance(server, _Server)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="chaos-http"
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (the applied writes are kept; ``start()`` serves them again)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
