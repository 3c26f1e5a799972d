"""The connector's own client cost per MongoDB operation, in instructions (callgrind).

Timing the client's CPU per operation against a real server is noisy: a
``find_one`` costs the client about 250 µs of CPU (pymongo's path and the
kernel's), and on a shared 2-core box paired timings of raw pymongo and the
connector stray by +-25 µs, more than the 10 µs target they are meant to
judge. Instructions do not stray. This script runs each contender under
``valgrind --tool=callgrind`` twice, with ``--small`` and ``--large``
operations, against the same server, and prints the instructions per
operation, ``(large run - small run) / (large - small)``: start-up, imports
and connecting cancel out. Both contenders use the same ``MongoClient``
options (the connector's own) and reuse their ``Collection`` objects.

Every thread of the client process is counted (pymongo's monitor threads
too, which do the same work on both sides).

Usage: python benchmarks/mongodb_instructions.py [--small 100] [--large 1100]
Needs valgrind. Reads the server from DICTAMESH_TEST_MONGODB_URI (default:
the local FerretDB, whose replies take about 1 ms; SecantusDB's inserts take
about 18 ms each).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from typing import Any

URI = os.environ.get(
    "DICTAMESH_TEST_MONGODB_URI",
    "mongodb://dictamesh:dictamesh-test-pw@127.0.0.1:57027/?authSource=admin&directConnection=true",
)
DATABASE = "bench_instructions"


def child(side: str, verb: str, count: int) -> None:
    """Run ``count`` operations (after 50 to warm up) on one side; nothing printed."""
    import pymongo

    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    db = MongoDBConnector(MongoDBConfig.from_url(URI, database=DATABASE))
    db.connect()
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(**db._client_kwargs())
    items, writes = client[DATABASE]["items"], client[DATABASE]["writes"]
    ids = [doc["_id"] for doc in items.find({}, {"_id": 1}).limit(10)]
    if len(ids) < 10:
        ids = items.insert_many([{"n": i} for i in range(10)]).inserted_ids

    def ours(i: int) -> None:
        if verb == "insert_one":
            db.insert_one("writes", {"n": i, "name": "x"})
        else:
            db.find_one("items", {"_id": ids[i % 10]})

    def raw(i: int) -> None:
        if verb == "insert_one":
            writes.insert_one({"n": i, "name": "x"})
        else:
            items.find_one({"_id": ids[i % 10]})

    op = ours if side == "connector" else raw
    for i in range(50):
        op(i)
    for i in range(count):
        op(i)
    client.close()
    db.disconnect()


def instructions(side: str, verb: str, count: int) -> int:
    """Instructions the whole client process ran for ``count`` operations (and start-up)."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={scratch}/out",
                sys.executable,
                __file__,
                "--child",
                side,
                verb,
                str(count),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"no instruction count from valgrind:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=1100)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        side, verb, count = args.child
        child(side, verb, int(count))
        return
    span = args.large - args.small
    print(f"client instructions per operation (callgrind, ({args.large} - {args.small}) ops):")
    for verb in ("find_one", "insert_one"):
        per: dict[str, float] = {}
        for side in ("pymongo", "connector"):
            large = instructions(side, verb, args.large)
            small = instructions(side, verb, args.small)
            per[side] = (large - small) / span
        print(
            f"  {verb:<11} pymongo {per['pymongo']:>9,.0f}   connector {per['connector']:>9,.0f}"
            f"   the connector's own {per['connector'] - per['pymongo']:>+8,.0f}"
        )
    import pymongo

    pymongo.MongoClient(URI).drop_database(DATABASE)


if __name__ == "__main__":
    main()
