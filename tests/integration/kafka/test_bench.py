"""benchmarks/kafka_bench.py, run tiny against the shared broker: it deletes every topic it made."""

from __future__ import annotations

import sys

import pytest

from benchmarks import kafka_bench

from .conftest import wait_for

pytestmark = pytest.mark.integration


def test_the_benchmark_leaves_no_topic_behind(kafka, kafka_bootstrap, monkeypatch, capsys):
    made: list[str] = []
    fresh_topic = kafka_bench.fresh_topic

    def spy(admin, partitions=3):
        name = fresh_topic(admin, partitions)
        made.append(name)
        return name

    monkeypatch.setattr(kafka_bench, "fresh_topic", spy)
    monkeypatch.setattr(kafka_bench, "BOOTSTRAP", kafka_bootstrap)
    args = ["--messages", "300", "--rounds", "1", "--cpu-messages", "300", "--threads", "1,3"]
    monkeypatch.setattr(sys, "argv", ["kafka_bench", *args, "--own-path-records", "100"])
    kafka_bench.main()
    out = capsys.readouterr().out
    assert "ratio produce raw+callback/raw" in out and "   connector/raw" in out
    assert "own path" in out and "produce_many()" in out
    assert "us/record over the bare stub loop" in out and "us client CPU/record" in out
    assert len(made) == 6  # four for throughput, one per thread count
    assert wait_for(lambda: not set(made) & set(kafka.list_topics()), 60), sorted(
        set(made) & set(kafka.list_topics())
    )
