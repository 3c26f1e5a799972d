"""FaultProxy against a local echo server: every fault kind observable, clean shutdown.

These open real sockets on 127.0.0.1 only (the proxy and a tiny echo server
in this process) and need no test service. Elapsed-time checks are lower
bounds only: a delay the proxy imposes cannot be shorter than asked, however
busy the machine is.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from dictamesh_connectors.testing.faultproxy import FaultProxy, FaultProxyError, FaultProxyStats
from tests.forking import run_in_child

WAIT = 10.0  # bound on every wait: a broken proxy fails the test, never hangs it


class EchoServer:
    """A threaded TCP server on 127.0.0.1 that echoes and records what it got.

    ``echo=False`` records without answering. Each connection's record says
    what arrived, whether it ended by EOF or by a reset, and when.
    """

    def __init__(self, *, echo: bool = True) -> None:
        self.echo = echo
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # so close() need not wake a blocked accept()
        self.port = self.listener.getsockname()[1]
        self.address = ("127.0.0.1", self.port)
        self.records: list[dict[str, object]] = []
        self.changed = threading.Condition()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.stopping = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            record: dict[str, object] = {"data": b"", "end": None, "ended_at": None}
            with self.changed:
                self.records.append(record)
                self.conns.append(conn)
                self.changed.notify_all()
            thread = threading.Thread(target=self._serve, args=(conn, record), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, record: dict[str, object]) -> None:
        end = "eof"
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                with self.changed:
                    record["data"] = record["data"] + data  # type: ignore[operator]
                    self.changed.notify_all()
                if self.echo:
                    conn.sendall(data)
        except ConnectionResetError:
            end = "reset"
        except OSError:
            end = "closed"
        conn.close()  # before the record says so: tests count open fds
        with self.changed:
            record["end"], record["ended_at"] = end, time.monotonic()
            self.changed.notify_all()

    def wait(self, predicate, timeout: float = WAIT) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.records), timeout)

    def close(self) -> None:
        self.stopping = True
        self.acceptor.join(WAIT)
        self.listener.close()
        with self.changed:
            conns = list(self.conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(WAIT)
        for thread in self.threads:
            thread.join(WAIT)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=echo.address, seed=14) as proxy:
        yield proxy


def client(proxy: FaultProxy, timeout: float = WAIT) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError(f"EOF after {len(data)} of {n} bytes")
        data += chunk
    return data


def round_trip(proxy: FaultProxy, payload: bytes) -> bytes:
    with client(proxy) as sock:
        sock.sendall(payload)
        return recv_exactly(sock, len(payload))


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def test_forwards_both_ways_and_counts(proxy: FaultProxy) -> None:
    payload = os.urandom(300_000)
    assert round_trip(proxy, payload) == payload
    stats = proxy.stats
    assert isinstance(stats, FaultProxyStats)
    assert stats.accepted == 1
    assert stats.bytes_upstream == stats.bytes_downstream == len(payload)
    assert all(count == 0 for count in stats.faults.values())
    assert proxy.host == "127.0.0.1" and proxy.address == ("127.0.0.1", proxy.port)


def test_the_counters_are_never_behind_what_was_received(proxy: FaultProxy) -> None:
    """Once bytes reached their receiver they are counted (counted before each send).

    Counted after the send returned, a client that got its answer at once saw
    ``bytes_downstream == 0`` now and then (a test asserting "bytes went both
    ways" right after its call was flaky)."""
    with client(proxy) as sock:
        for n in range(1, 201):
            sock.sendall(b"x")
            assert recv_exactly(sock, 1) == b"x"
            stats = proxy.stats
            assert (stats.bytes_upstream, stats.bytes_downstream) == (n, n)


def test_listens_on_loopback_only(proxy: FaultProxy) -> None:
    assert proxy._loop._listener is not None
    assert proxy._loop._listener.getsockname()[0] == "127.0.0.1"


def test_latency_delays_each_direction(proxy: FaultProxy) -> None:
    proxy.set_latency(0.15, direction="upstream")
    with client(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        # a lower bound: the proxy never forwards a chunk early
        assert time.monotonic() - started >= 0.15
    assert proxy.stats.faults["latency"] >= 1
    proxy.set_latency(0)
    before = proxy.stats.faults["latency"]
    assert round_trip(proxy, b"fast") == b"fast"
    assert proxy.stats.faults["latency"] == before


def test_jitter_keeps_order(proxy: FaultProxy) -> None:
    proxy.set_latency(0.01, jitter=0.01)
    with client(proxy) as sock:
        expected = b""
        for number in range(200):
            piece = b"%04d," % number
            sock.sendall(piece)
            expected += piece
        assert recv_exactly(sock, len(expected)) == expected
    assert proxy.stats.faults["latency"] >= 2


def test_bandwidth_paces_the_stream(proxy: FaultProxy) -> None:
    proxy.set_bandwidth(40_000, direction="downstream")
    payload = os.urandom(20_000)
    started = time.monotonic()
    assert round_trip(proxy, payload) == payload
    # 20 kB at 40 kB/s, first 800-byte quantum free: at least 0.48 s
    assert time.monotonic() - started >= 0.45
    assert proxy.stats.faults["bandwidth"] >= 20
    proxy.set_bandwidth(None)


def test_blackhole_holds_then_releases(proxy: FaultProxy, echo: EchoServer) -> None:
    with client(proxy, timeout=0.3) as sock:
        assert round_trip(proxy, b"warm") == b"warm"
        proxy.blackhole(True)
        sock.sendall(b"held")
        with pytest.raises(socket.timeout):
            sock.recv(10)
        assert echo.records[0]["data"] == b""  # the server never saw it
        proxy.blackhole(False)
        sock.settimeout(WAIT)
        assert recv_exactly(sock, 4) == b"held"  # nothing lost, nothing reordered
    assert proxy.stats.faults["blackhole"] >= 2  # both directions of that connection


def test_blackhole_accepts_new_connections(proxy: FaultProxy) -> None:
    proxy.blackhole(True)
    with client(proxy, timeout=0.3) as sock:  # accepted: connect succeeds
        sock.sendall(b"x")
        with pytest.raises(socket.timeout):
            sock.recv(1)
    assert proxy.stats.accepted == 1


def test_downstream_blackhole_lets_requests_through(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.blackhole(True, direction="downstream")
    with client(proxy, timeout=0.3) as sock:
        sock.sendall(b"applied")
        assert echo.wait(lambda records: records and records[-1]["data"] == b"applied")
        with pytest.raises(socket.timeout):
            sock.recv(10)


def test_reset_connections_resets_both_ends(proxy: FaultProxy, echo: EchoServer) -> None:
    with client(proxy) as first, client(proxy) as second:
        for sock in (first, second):
            sock.sendall(b"hi")
            assert recv_exactly(sock, 2) == b"hi"
        assert proxy.reset_connections() == 2
        for sock in (first, second):
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
                sock.recv(10)
    assert echo.wait(lambda records: [r["end"] for r in records] == ["reset", "reset"])
    assert proxy.stats.faults["reset"] == 2
    assert proxy.stats.active == 0
    assert round_trip(proxy, b"again") == b"again"  # new connections work at once


def test_reset_next_after_bytes(proxy: FaultProxy, echo: EchoServer) -> None:
    with client(proxy) as sock:
        proxy.reset_next(after_bytes=5)
        sock.sendall(b"01234567890")
        with pytest.raises((ConnectionResetError, EOFError)):
            recv_exactly(sock, 11)
    assert echo.wait(lambda records: bool(records) and records[-1]["end"] == "reset")
    assert echo.records[-1]["data"] == b"01234"  # exactly after_bytes got through
    assert proxy.stats.faults["reset"] == 1
    assert round_trip(proxy, b"next") == b"next"  # disarmed after one


def test_reset_next_downstream_after_the_server_answered(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    proxy.reset_next(count=2, direction="downstream")
    for _ in range(2):
        with client(proxy) as sock:
            sock.sendall(b"write")
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
    assert [r["data"] for r in echo.records] == [b"write", b"write"]
    assert round_trip(proxy, b"ok") == b"ok"
    assert proxy.stats.faults["reset"] == 2


def test_half_open_cuts_the_server_end_only(proxy: FaultProxy, echo: EchoServer) -> None:
    with client(proxy, timeout=0.3) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        proxy.half_open(True)
        assert echo.wait(lambda records: bool(records) and records[0]["end"] == "reset")
        sock.sendall(b"into the void")  # still accepted: no RST, no FIN to the client
        with pytest.raises(socket.timeout):
            sock.recv(10)
        proxy.half_open(False)
        with pytest.raises(socket.timeout):  # that connection stays dead
            sock.recv(10)
    assert round_trip(proxy, b"new") == b"new"
    assert proxy.stats.faults["half_open"] == 1


def test_half_open_new_connections_never_reach_the_server(
    proxy: FaultProxy, echo: EchoServer
) -> None:
    proxy.half_open(True)
    with client(proxy, timeout=0.3) as sock:
        sock.sendall(b"hello")
        with pytest.raises(socket.timeout):
            sock.recv(10)
    assert echo.records == []
    assert proxy.stats.faults["half_open"] == 1


def test_slow_close_delays_the_fin(proxy: FaultProxy, echo: EchoServer) -> None:
    proxy.slow_close(0.3)
    with client(proxy) as sock:
        sock.sendall(b"bye")
        assert recv_exactly(sock, 3) == b"bye"
        closed_at = time.monotonic()
        sock.shutdown(socket.SHUT_WR)
        assert echo.wait(lambda records: bool(records) and records[0]["end"] == "eof")
        assert echo.records[0]["ended_at"] >= closed_at + 0.3  # lower bound
        assert sock.recv(10) == b""  # the server's FIN comes back (delayed too)
    assert proxy.stats.faults["slow_close"] == 2


def test_refuse_then_accept_again(proxy: FaultProxy) -> None:
    with client(proxy) as open_one:
        proxy.refuse(True)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(proxy.address, timeout=WAIT)
        open_one.sendall(b"still")  # open connections carry on
        assert recv_exactly(open_one, 5) == b"still"
        proxy.refuse(True)  # idempotent
        proxy.refuse(False)
        assert round_trip(proxy, b"back") == b"back"
    assert proxy.stats.faults["refuse"] == 1


def test_clear_switches_everything_off(proxy: FaultProxy) -> None:
    proxy.set_latency(5)
    proxy.set_bandwidth(1)
    proxy.blackhole(True)
    proxy.slow_close(5)
    proxy.reset_next()
    proxy.refuse(True)
    proxy.clear()
    payload = os.urandom(10_000)
    assert round_trip(proxy, payload) == payload
    assert proxy.stats.faults["reset"] == 0


def test_upstream_down_resets_the_client() -> None:
    spare = socket.create_server(("127.0.0.1", 0))
    address = spare.getsockname()
    spare.close()  # nothing listens there now
    with FaultProxy(upstream=address) as proxy:
        # the reset may come before connect() returns, or on the first read
        with pytest.raises((ConnectionResetError, EOFError)), client(proxy) as sock:
            sock.sendall(b"x")
            recv_exactly(sock, 1)
        assert wait_until(lambda: proxy.stats.upstream_failures == 1)


def wait_until(predicate, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_32_threads_with_faults_switching(proxy: FaultProxy) -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def worker(number: int) -> None:
        try:
            with client(proxy) as sock:
                for round_number in range(40):
                    payload = b"%d-%d;" % (number, round_number) * 50
                    sock.sendall(payload)
                    assert recv_exactly(sock, len(payload)) == payload
        except BaseException as exc:
            errors.append(exc)

    def switcher() -> None:
        while not done.is_set():
            proxy.set_latency(0.002, jitter=0.002)
            proxy.set_bandwidth(5_000_000, direction="upstream")
            proxy.slow_close(0.01)
            _ = proxy.stats
            proxy.clear()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    toggler = threading.Thread(target=switcher)
    toggler.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    done.set()
    toggler.join(WAIT)
    assert not errors, errors[:3]
    assert proxy.stats.accepted == 32
    assert wait_until(lambda: proxy.stats.bytes_upstream == proxy.stats.bytes_downstream)


def test_resets_under_load_leave_the_proxy_serving(proxy: FaultProxy) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            try:
                assert round_trip(proxy, b"x" * 1000) == b"x" * 1000
                result = "ok"
            except (ConnectionResetError, EOFError, BrokenPipeError):
                result = "reset"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        proxy.reset_connections()
        time.sleep(0.005)
    for thread in threads:
        thread.join(WAIT)
    assert len(outcomes) == 640 and "ok" in outcomes
    assert round_trip(proxy, b"fine") == b"fine"
    assert not proxy.closed


def test_close_joins_and_leaks_nothing(echo: EchoServer) -> None:
    fds_before = open_fds()
    proxy = FaultProxy(upstream=echo.address)
    sockets = [client(proxy) for _ in range(5)]
    for sock in sockets:
        sock.sendall(b"x")
        assert recv_exactly(sock, 1) == b"x"
    proxy.blackhole(True)
    proxy.close(timeout=WAIT)
    proxy.close()  # idempotent
    for sock in sockets:
        assert sock.recv(1) == b""  # closed by the proxy
        sock.close()
    assert not proxy._loop._thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name.startswith("faultproxy")]
    assert echo.wait(lambda records: all(r["end"] for r in records))
    echo.close()  # its connections' sockets are in the count too
    assert open_fds() - fds_before == set()
    assert proxy.closed
    with pytest.raises(FaultProxyError):
        proxy.set_latency(1)
    with pytest.raises(FaultProxyError):
        proxy.reset_connections()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(proxy.address, timeout=WAIT)


def test_many_proxies_leak_nothing(echo: EchoServer) -> None:
    fds_before = open_fds()
    for _ in range(20):
        with FaultProxy(upstream=echo.address) as proxy:
            assert round_trip(proxy, b"x") == b"x"
            proxy.refuse(True)
    assert echo.wait(lambda records: len(records) == 20 and all(r["end"] for r in records))
    assert open_fds() - fds_before == set()


def test_a_loop_failure_is_reported(echo: EchoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = FaultProxy(upstream=echo.address)

    def broken(*args: object) -> None:
        raise RuntimeError("bug in the loop")

    monkeypatch.setattr(proxy._loop, "_pump_link", broken)
    with client(proxy, timeout=1.0) as sock:
        sock.sendall(b"x")
        assert wait_until(lambda: proxy.closed)
    with pytest.raises(FaultProxyError):
        proxy.blackhole(True)
    with pytest.raises(FaultProxyError) as info:
        proxy.close()
    assert isinstance(info.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.set_latency(-1), ValueError),
        (lambda p: p.set_latency(float("nan")), ValueError),
        (lambda p: p.set_latency(0.1, jitter=float("inf")), ValueError),
        (lambda p: p.set_latency("1"), TypeError),
        (lambda p: p.set_bandwidth(0), ValueError),
        (lambda p: p.set_bandwidth(float("inf")), ValueError),
        (lambda p: p.blackhole(True, direction="sideways"), ValueError),
        (lambda p: p.blackhole(True, direction=1), TypeError),
        (lambda p: p.reset_next(0), ValueError),
        (lambda p: p.reset_next(1, after_bytes=-1), ValueError),
        (lambda p: p.reset_next(True), TypeError),
        (lambda p: p.slow_close(-0.1), ValueError),
    ],
)
def test_bad_arguments(proxy: FaultProxy, call, error) -> None:
    with pytest.raises(error):
        call(proxy)
    assert round_trip(proxy, b"ok") == b"ok"


def test_bad_upstream() -> None:
    with pytest.raises(FaultProxyError):
        FaultProxy(upstream=("no-such-host.invalid", 1))


def test_listen_port_in_use(proxy: FaultProxy, echo: EchoServer) -> None:
    with pytest.raises(FaultProxyError):
        FaultProxy(upstream=echo.address, listen_port=echo.port)


def test_unusable_in_a_forked_child(proxy: FaultProxy) -> None:
    def child() -> bool:
        try:
            proxy.set_latency(0.1)
        except FaultProxyError:
            proxy.close()  # a no-op in the child: the sockets are the parent's
            return True
        return False

    assert run_in_child(child) == 0
    assert round_trip(proxy, b"parent") == b"parent"  # the parent's proxy is untouched


def test_repr(proxy: FaultProxy, echo: EchoServer) -> None:
    assert repr(proxy) == f"<FaultProxy 127.0.0.1:{proxy.port} -> 127.0.0.1:{echo.port} open>"


class OwnedLock:
    """A lock that knows which thread holds it (for the I/O-under-lock check)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> OwnedLock:
        self._lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.owner = None
        self._lock.release()


# The C-level socket and selector calls the proxy makes.
SOCKET_CALLS = frozenset(
    {"accept", "close", "connect_ex", "getsockopt", "poll", "recv", "send", "sendall", "setsockopt",
     "shutdown", "select", "_accept"}
)  # fmt: skip


def test_no_lock_is_held_across_socket_io(
    echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dictamesh_connectors.testing.faultproxy import _state

    locks: list[OwnedLock] = []

    def make_lock() -> OwnedLock:
        locks.append(OwnedLock())
        return locks[-1]

    monkeypatch.setattr(_state, "create_lock", make_lock)
    seen: list[str] = []
    violations: list[str] = []

    def profile(frame: object, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in SOCKET_CALLS:
            seen.append(arg.__name__)  # type: ignore[attr-defined]
            if any(lock.owner == threading.get_ident() for lock in locks):
                violations.append(arg.__name__)  # type: ignore[attr-defined]

    threading.setprofile(profile)  # the proxy's loop thread starts with it
    try:
        proxy = FaultProxy(upstream=echo.address)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    try:
        sys.setprofile(profile)  # and this thread, which calls the API
        try:
            assert round_trip(proxy, b"plain") == b"plain"
            proxy.set_latency(0.01, jitter=0.01)
            proxy.set_bandwidth(100_000)
            proxy.slow_close(0.05)
            assert round_trip(proxy, b"shaped" * 100) == b"shaped" * 100
            with client(proxy) as sock:
                sock.sendall(b"x")
                recv_exactly(sock, 1)
                proxy.reset_connections()
            proxy.reset_next(after_bytes=1)
            with contextlib.suppress(OSError, EOFError):
                round_trip(proxy, b"cut")
            proxy.half_open(True)
            with client(proxy, timeout=0.2) as sock, contextlib.suppress(OSError):
                sock.sendall(b"void")
                sock.recv(1)
            proxy.refuse(True)
            proxy.clear()
            assert round_trip(proxy, b"again") == b"again"
            _ = proxy.stats
        finally:
            sys.setprofile(None)
    finally:
        proxy.close()
    assert locks and len(seen) > 50  # the check saw the proxy's I/O
    assert violations == []
    assert proxy.stats.faults["reset"] >= 2 and proxy.stats.faults["half_open"] >= 1


def test_close_raises_when_the_loop_does_not_stop_in_time(
    echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = FaultProxy(upstream=echo.address)
    release = threading.Event()
    stuck = threading.Event()
    real_turn = proxy._loop._turn

    def slow_turn() -> bool:
        stuck.set()
        release.wait(WAIT)
        return real_turn()

    monkeypatch.setattr(proxy._loop, "_turn", slow_turn)
    proxy._loop.wake()
    assert stuck.wait(WAIT)
    with pytest.raises(FaultProxyError, match="did not stop"):
        proxy.close(timeout=0.2)
    release.set()
    assert proxy._loop.join(WAIT)  # it does stop once unblocked, and closes everything
    proxy.close()  # then close() is a no-op
