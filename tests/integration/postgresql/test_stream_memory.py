"""stream() keeps memory flat: 5 million rows through a server-side cursor."""

import tracemalloc

import pytest

pytestmark = pytest.mark.integration


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.slow
def test_five_million_rows_with_flat_rss(db):
    try:
        rss_bytes()
    except OSError:
        pytest.skip("needs /proc/self/statm")
    count = total = 0
    baseline = peak = 0
    with db.stream(
        "SELECT g, g::text AS s FROM generate_series(1, 5000000) g", batch_size=5000
    ) as rows:
        for row in rows:
            count += 1
            total += row["g"]
            if count == 200_000:
                baseline = rss_bytes()
            elif count % 500_000 == 0:
                peak = max(peak, rss_bytes())
    assert count == 5_000_000 and total == 5_000_000 * 5_000_001 // 2
    # Holding 5M rows as dicts would take well over 1 GB; a flat stream grows
    # by (almost) nothing after the first batches.
    assert peak - baseline < 64 * 1024 * 1024, (baseline, peak)


def test_stream_allocations_are_bounded_by_the_batch(db):
    query = "SELECT g, g::text AS s FROM generate_series(1, 100000) g"
    tracemalloc.start()
    try:
        with db.stream(query, batch_size=1000) as rows:
            count = sum(1 for _ in rows)
        _, streamed_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        everything = db.query(query).rows
        _, materialized_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(everything) == 100_000
    # The stream never holds more than about a batch; query() holds it all.
    assert streamed_peak < 4 * 1024 * 1024, streamed_peak
    assert streamed_peak * 5 < materialized_peak, (streamed_peak, materialized_peak)
