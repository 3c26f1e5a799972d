"""The pure readers of observability_pools on drivers' objects built without a server."""

from __future__ import annotations

import json

from urllib3.connectionpool import HTTPConnectionPool

from dictamesh_connectors.observability_pools import (
    librdkafka_pool_stats,
    parse_librdkafka_stats,
    urllib3_pool_stats,
)


def test_urllib3_counts_idle_connections_and_missing_slots():
    pool = HTTPConnectionPool("127.0.0.1", 9, maxsize=3)
    assert urllib3_pool_stats([pool]) == {
        "in_use": 0, "idle": 0, "size": 0, "max": 3, "origins": 1, "connections_made": 0
    }  # fmt: skip
    held = pool._get_conn()  # a checkout, as urlopen does (no socket is opened)
    stats = urllib3_pool_stats([pool])
    assert stats["in_use"] == 1 and stats["idle"] == 0 and stats["connections_made"] == 1
    pool._put_conn(held)
    assert urllib3_pool_stats([pool])["idle"] == 1
    pool.close()
    assert urllib3_pool_stats([pool])["origins"] == 0


def test_librdkafka_statistics_count_learned_brokers_only():
    doc = {
        "msg_max": 100000,
        "msg_size": 42,
        "brokers": {
            "127.0.0.1:9092/bootstrap": {"nodeid": -1, "state": "UP", "waitresp_cnt": 9},
            "b1": {"nodeid": 1, "state": "UP", "waitresp_cnt": 2, "outbuf_cnt": 0},
            "b2": {"nodeid": 2, "state": "UP", "waitresp_cnt": 0, "outbuf_cnt": 0},
            "b3": {"nodeid": 3, "state": "DOWN"},
        },
    }
    latest = parse_librdkafka_stats(json.dumps(doc))
    assert latest == {
        "brokers_up": 2, "brokers_busy": 1, "requests_in_flight": 2,
        "queue_max": 100000, "queue_bytes": 42,
    }  # fmt: skip
    stats = librdkafka_pool_stats(latest, queued=7)
    assert (stats["size"], stats["in_use"], stats["idle"], stats["waiting"]) == (2, 1, 1, 7)
    assert librdkafka_pool_stats(None, queued=3) == {"waiting": 3}
