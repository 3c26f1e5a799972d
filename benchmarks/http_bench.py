"""Requests per second: HTTPConnector vs raw urllib3 (the ceiling) vs requests.

Every client hits the same local keep-alive HTTP/1.1 server, at 1, 8 and 32
threads, in one run, and the ratios are printed, then the client CPU time
per request of each (``time.thread_time`` over one thread's requests) and
the connector's overhead over raw urllib3. The server runs in its
own process (an asyncio protocol answering a fixed 2-byte JSON body; no
parsing beyond finding the end of each request head), so the client side is
the bottleneck and the two do not share a GIL.

Fairness: the connector, raw urllib3 and the raw Session all get a pool of
exactly ``threads`` connections (``maxsize``) and are shared by every thread,
as people do. Raw urllib3 (one ``HTTPConnectionPool``, ``request("GET")``,
body read) sends the connector's default headers and has the connector's
connect and read timeouts, so the difference is what the connector's layer
costs: the ceiling it sits on. Every client has those timeouts (the
Sessions too, per request), as any production client must: a socket with a
timeout costs CPython one ``poll()`` before each ``send``/``recv``, a
system call that also hands the GIL to another thread, so a pool without a
timeout is a faster ceiling that nobody should run. ``requests.get``
opens a new connection per call (no keep-alive): that is the baseline the
pool saves you from.

Run::

    .venv/bin/python benchmarks/http_bench.py            # about 1.5 minutes
    .venv/bin/python benchmarks/http_bench.py --seconds 1 --rounds 1   # quick

Targets: connector >= 0.9x raw urllib3 at every thread count, and a client
CPU overhead over raw urllib3 of at most 30 us per request.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
import urllib3
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import run_threads

from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy

SERVER = r"""
import asyncio, socket, sys

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}")

class Fast(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * count)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Fast, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)   # until the parent closes stdin

asyncio.run(main())
"""

THREADS = (1, 8, 32)
# The connector's default timeouts, given to every client alike.
_DEFAULTS = HTTPConfig(base_url="http://127.0.0.1")
READ_TIMEOUT = _DEFAULTS.timeout
CONNECT_TIMEOUT = _DEFAULTS.connect_timeout
TIMEOUTS = (CONNECT_TIMEOUT, READ_TIMEOUT)


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def run(call: Callable[[], object], threads: int, seconds: float) -> float:
    """Requests per second over ``seconds`` with ``threads`` threads calling ``call``."""
    return run_threads(lambda _i: call(), threads, seconds)


def cpu_per_call(call: Callable[[], object], calls: int) -> float:
    """Client CPU microseconds per call (this thread's CPU time, so the server is not counted)."""
    started = time.thread_time()
    for _ in range(calls):
        call()
    return (time.thread_time() - started) / calls * 1e6


def layer_cost(batches: int, calls: int) -> tuple[float, float]:
    """The connector's own CPU per GET without I/O: urlopen answers a canned response.

    Returns ``(connector, floor)`` in microseconds per call (medians of
    paired batches): ``floor`` is the canned response alone (build, read,
    release), so ``connector - floor`` is what the connector's layers add.
    """
    import io
    from unittest import mock

    from urllib3 import HTTPHeaderDict, HTTPResponse

    from dictamesh_connectors.http.transport import Transport, release

    headers = HTTPHeaderDict({"Content-Type": "application/json", "Content-Length": "2"})

    def canned(*_args: object) -> HTTPResponse:
        return HTTPResponse(
            body=io.BytesIO(b"{}"),
            headers=headers,
            status=200,
            reason="OK",
            preload_content=False,
            decode_content=False,
        )

    def floor() -> None:
        raw = canned()
        raw.read()
        release(raw, complete=True)

    with mock.patch.object(Transport, "urlopen", canned):
        connector = HTTPConnector(
            HTTPConfig(base_url="http://127.0.0.1:9/api", retry=RetryPolicy.no_retry())
        )
        connector.connect()

        def via_connector() -> None:
            connector.get("/bench").body  # noqa: B018

        ours, base = [], []
        for _ in range(batches):
            ours.append(cpu_per_call(via_connector, calls))
            base.append(cpu_per_call(floor, calls))
        connector.disconnect()
    return statistics.median(ours), statistics.median(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    parser.add_argument("--cpu-calls", type=int, default=200, help="requests per CPU batch")
    parser.add_argument("--cpu-batches", type=int, default=40, help="CPU batches per client")
    args = parser.parse_args()

    proc, url = start_server()
    port = int(url.rsplit(":", 1)[1])
    cpu: dict[str, list[float]] = {}
    try:
        results: dict[tuple[str, int], list[float]] = {}
        for threads in THREADS:
            connector = HTTPConnector(
                HTTPConfig(
                    base_url=url,
                    max_idle_conns_per_host=threads,
                    retry=RetryPolicy.no_retry(),
                    timeout=READ_TIMEOUT,
                    connect_timeout=CONNECT_TIMEOUT,
                )
            )
            connector.connect()
            pool = urllib3.HTTPConnectionPool(
                "127.0.0.1",
                port,
                maxsize=threads,
                headers=dict(connector._default_headers),  # the same headers on the wire
                retries=False,
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
            )
            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))
            # The same, without the per-request environment lookups (proxies,
            # netrc, CA bundle variables): the leanest a Session gets.
            lean = requests.Session()
            lean.trust_env = False
            lean.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))

            def via_connector(c: HTTPConnector = connector) -> None:
                c.get("/bench").body  # noqa: B018

            def via_urllib3(p: urllib3.HTTPConnectionPool = pool) -> None:
                r = p.request("GET", "/bench")
                assert r.status < 400
                r.data  # noqa: B018

            def via_session(s: requests.Session = session) -> None:
                r = s.get(url + "/bench", timeout=TIMEOUTS)
                r.raise_for_status()
                r.content  # noqa: B018

            def via_lean(s: requests.Session = lean) -> None:
                r = s.get(url + "/bench", timeout=TIMEOUTS)
                r.raise_for_status()
                r.content  # noqa: B018

            def via_get() -> None:
                r = requests.get(url + "/bench", headers={"Connection": "close"}, timeout=TIMEOUTS)
                r.raise_for_status()
                r.content  # noqa: B018

            clients = {
                "connector": via_connector,
                "urllib3": via_urllib3,
                "session": via_session,
                "lean": via_lean,
                "requests.get": via_get,
            }
            for fn in clients.values():  # warm up: fill the pools, import everything
                run(fn, threads, 0.2)
            for _ in range(args.rounds):
                for name, fn in clients.items():
                    results.setdefault((name, threads), []).append(run(fn, threads, args.seconds))
            if threads == 1:
                # Paired batches, in a rotating order: a load spike hits neighbouring
                # batches alike, so the per-batch differences stay meaningful.
                order = ["connector", "urllib3", "session", "lean"]
                for batch in range(args.cpu_batches):
                    turn = order[batch % 4 :] + order[: batch % 4]
                    for name in turn:
                        sample = cpu_per_call(clients[name], args.cpu_calls)
                        cpu.setdefault(name, []).append(sample)
            connector.disconnect()
            pool.close()
            session.close()
            lean.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(5)

    names = ("connector", "urllib3", "session", "lean", "requests.get")
    print(f"\nrequests/s (median of {args.rounds} x {args.seconds:.1f}s), keep-alive local server")
    print("  urllib3 = one shared HTTPConnectionPool (the ceiling); session = shared")
    print("  requests.Session (defaults); lean = the same with trust_env=False")
    print(
        f"{'threads':>7} {'connector':>10} {'urllib3':>9} {'session':>9} {'lean':>9} {'req.get':>9}"
        f" {'conn/urllib3':>13} {'conn/session':>13} {'conn/get':>9}"
    )
    worst = float("inf")
    for threads in THREADS:
        med = {name: statistics.median(results[(name, threads)]) for name in names}
        ratio = med["connector"] / med["urllib3"]
        worst = min(worst, ratio)
        print(
            f"{threads:>7} {med['connector']:>10.0f} {med['urllib3']:>9.0f} {med['session']:>9.0f}"
            f" {med['lean']:>9.0f} {med['requests.get']:>9.0f} {ratio:>12.2f}x"
            f" {med['connector'] / med['session']:>12.2f}x"
            f" {med['connector'] / med['requests.get']:>8.2f}x"
        )
    layer, floor = layer_cost(args.cpu_batches, args.cpu_calls * 5)
    per_call = {name: statistics.median(samples) for name, samples in cpu.items()}
    overhead = statistics.median(
        c - u for c, u in zip(cpu["connector"], cpu["urllib3"], strict=True)
    )
    print(
        f"\nclient CPU per request, 1 thread (median of {len(cpu['connector'])} batches"
        f" x {args.cpu_calls}; overhead = median of the paired batch differences)"
    )
    for name in ("connector", "urllib3", "session", "lean"):
        extra = per_call[name] - per_call["urllib3"]
        print(f"  {name:<10} {per_call[name]:7.1f} us  ({extra:+.1f} us vs urllib3)")
    print(
        f"  without I/O (canned responses): connector {layer:.1f} us, the response alone"
        f" {floor:.1f} us: the connector's layers add {layer - floor:.1f} us"
    )
    print(
        f"\nworst connector/urllib3 ratio: {worst:.2f}x (target >= 0.90x): "
        f"{'OK' if worst >= 0.9 else 'UNDER TARGET'}"
    )
    print(
        f"connector CPU overhead over urllib3: {overhead:.1f} us/request (target <= 30 us): "
        f"{'OK' if overhead <= 30 else 'OVER TARGET'}"
    )


if __name__ == "__main__":
    main()
