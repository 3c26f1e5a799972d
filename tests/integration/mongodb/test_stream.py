"""stream(): a server cursor read batch by batch, flat memory, cursors released when abandoned.

The default suite streams DICTAMESH_MONGO_STREAM_DOCS documents (20,000);
``make test-mongodb-stream`` runs the same tests with 1,000,000.
"""

import gc
import os
import tracemalloc

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode

pytestmark = pytest.mark.integration

DOCS = int(os.environ.get("DICTAMESH_MONGO_STREAM_DOCS", "20000"))
CHUNK = 10_000


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def fill(db, n=DOCS):
    for start in range(0, n, CHUNK):
        db.insert_many(
            "s", [{"i": i, "s": f"doc {i:09d}"} for i in range(start, min(n, start + CHUNK))]
        )


def test_stream_keeps_rss_flat(db):
    fill(db)
    count = total = 0
    baseline = peak = 0
    with db.stream("s", {}, projection={"_id": 0}, batch_size=1000) as docs:
        for doc in docs:
            count += 1
            total += doc["i"]
            if count == DOCS // 10:
                gc.collect()
                baseline = rss_bytes()
            elif count % (DOCS // 10) == 0:
                peak = max(peak, rss_bytes())
    assert count == DOCS and total == DOCS * (DOCS - 1) // 2
    # Holding a million documents as dicts takes hundreds of MB; a stream
    # grows by (almost) nothing after its first batches.
    assert peak - baseline < 48 * 1024 * 1024, (baseline, peak)


def test_stream_allocations_are_bounded_by_the_batch(db):
    n = min(DOCS, 20_000)
    fill(db, n)
    tracemalloc.start()
    try:
        with db.stream("s", batch_size=500) as docs:
            count = sum(1 for _ in docs)
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        everything = db.query("s")
        _, materialized_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(everything) == n
    assert streamed_peak * 4 < materialized_peak, (streamed_peak, materialized_peak)


def test_stream_options_and_timeout(db):
    fill(db, 50)
    docs = list(db.stream("s", {"i": {"$gte": 10}}, sort=[("i", -1)], skip=5, limit=7,
                          projection=["i"], batch_size=2, timeout=10))  # fmt: skip
    assert [d["i"] for d in docs] == list(range(44, 37, -1))


def test_stream_errors_are_translated(db):
    fill(db, 5)
    with pytest.raises(ConnectorError) as info:
        list(db.stream("s", {"$bogus": 1}))
    assert info.value.code in (ErrorCode.INVALID_REQUEST, ErrorCode.QUERY_FAILED)


def open_cursors(server):
    raw = server.raw()
    try:
        return raw.admin.command("serverStatus")["metrics"]["cursor"]["open"]["total"]
    finally:
        raw.close()


@pytest.mark.parametrize("how", ["del", "close", "with", "break"])
def test_an_abandoned_stream_releases_its_server_cursor(secantus, sdb, how):
    # SecantusDB reports open cursors (serverStatus metrics.cursor.open.total);
    # FerretDB 1.24 has no such metric.
    fill(sdb, 100)
    before = open_cursors(secantus)
    stream = sdb.stream("s", batch_size=10)
    assert next(stream)["i"] == 0
    assert open_cursors(secantus) == before + 1
    if how == "del":
        del stream  # reference counting alone: no gc.collect()
    elif how == "close":
        stream.close()
    elif how == "with":
        with sdb.stream("s", batch_size=10) as inner:
            next(inner)
            assert open_cursors(secantus) == before + 2
        stream.close()
    else:
        for doc in sdb.stream("s", batch_size=10):
            if doc["i"] == 3:
                break
        stream.close()
    assert open_cursors(secantus) == before
    assert sdb.count("s") == 100  # the connector is fine afterwards
