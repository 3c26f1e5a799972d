"""Requests per second: HTTPConnector vs a shared raw requests.Session vs requests.get.

All three clients hit the same local keep-alive HTTP/1.1 server, at 1, 8 and
32 threads, in one run, and the ratios are printed. The server runs in its
own process (an asyncio protocol answering a fixed 2-byte JSON body; no
parsing beyond finding the end of each request head), so the client side is
the bottleneck and the two do not share a GIL.

Fairness: the connector and the raw Session both get a pool of exactly
``threads`` connections (``pool_maxsize``); the raw Session is shared by
every thread, as people do. ``requests.get`` opens a new connection per
call (no keep-alive): that is the baseline the pool saves you from.

Run::

    .venv/bin/python benchmarks/http_bench.py            # about 1.5 minutes
    .venv/bin/python benchmarks/http_bench.py --seconds 1 --rounds 1   # quick

Target: connector >= 0.9x the raw Session at every thread count.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import requests
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (median)")
    args = parser.parse_args()

    proc, url = start_server()
    try:
        results: dict[tuple[str, int], list[float]] = {}
        for threads in THREADS:
            connector = HTTPConnector(
                HTTPConfig(
                    base_url=url,
                    max_idle_conns_per_host=threads,
                    retry=RetryPolicy.no_retry(),
                )
            )
            connector.connect()
            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))
            # The same, without the per-request environment lookups (proxies,
            # netrc, CA bundle variables): the leanest a Session gets.
            lean = requests.Session()
            lean.trust_env = False
            lean.mount("http://", HTTPAdapter(pool_connections=1, pool_maxsize=threads))

            def via_connector(c: HTTPConnector = connector) -> None:
                c.get("/bench").body  # noqa: B018

            def via_session(s: requests.Session = session) -> None:
                r = s.get(url + "/bench")
                r.raise_for_status()
                r.content  # noqa: B018

            def via_lean(s: requests.Session = lean) -> None:
                r = s.get(url + "/bench")
                r.raise_for_status()
                r.content  # noqa: B018

            def via_get() -> None:
                r = requests.get(url + "/bench", headers={"Connection": "close"})
                r.raise_for_status()
                r.content  # noqa: B018

            clients = {
                "connector": via_connector,
                "session": via_session,
                "lean": via_lean,
                "requests.get": via_get,
            }
            for fn in clients.values():  # warm up: fill the pools, import everything
                run(fn, threads, 0.2)
            for _ in range(args.rounds):
                for name, fn in clients.items():
                    results.setdefault((name, threads), []).append(run(fn, threads, args.seconds))
            connector.disconnect()
            session.close()
            lean.close()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(5)

    names = ("connector", "session", "lean", "requests.get")
    print(f"\nrequests/s (median of {args.rounds} x {args.seconds:.1f}s), keep-alive local server")
    print("  session = shared requests.Session (defaults); lean = the same with trust_env=False")
    print(
        f"{'threads':>7} {'connector':>10} {'session':>9} {'lean':>9} {'req.get':>9}"
        f" {'conn/session':>13} {'conn/lean':>10} {'conn/get':>9}"
    )
    worst = float("inf")
    for threads in THREADS:
        med = {name: statistics.median(results[(name, threads)]) for name in names}
        ratio = med["connector"] / med["session"]
        worst = min(worst, ratio)
        print(
            f"{threads:>7} {med['connector']:>10.0f} {med['session']:>9.0f} {med['lean']:>9.0f}"
            f" {med['requests.get']:>9.0f} {ratio:>12.2f}x"
            f" {med['connector'] / med['lean']:>9.2f}x"
            f" {med['connector'] / med['requests.get']:>8.2f}x"
        )
    print(
        f"\nworst connector/session ratio: {worst:.2f}x (target >= 0.90x): "
        f"{'OK' if worst >= 0.9 else 'UNDER TARGET'}"
    )


if __name__ == "__main__":
    main()
