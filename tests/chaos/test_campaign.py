"""The randomized fault campaign against private servers (see campaign.py).

``test_short_campaign`` (about 100 faults) is part of the default suite;
``test_full_campaign`` (1,000 faults, ``make chaos``) runs only with
``-m chaos``. Both print their seed; ``DICTAMESH_CHAOS_SEED=n`` replays one.
"""

from __future__ import annotations

import os

import pytest

from tests.chaos.campaign import _seed_from_env, campaign
from tests.chaos.servers import find_pg_bin, find_secantusd
from tests.conftest import _in_ci
from tests.integration.kafka.broker import available

pytestmark = pytest.mark.integration


def _require_servers() -> None:
    reasons = []
    if find_pg_bin() is None:
        reasons.append("no PostgreSQL binaries under /usr/lib/postgresql/*/bin")
    if find_secantusd() is None:
        reasons.append("no secantusd-py in the virtualenv")
    kafka = available()
    if kafka is not None:
        reasons.append(kafka)
    if reasons:
        message = "cannot start the campaign's private servers: " + "; ".join(reasons)
        if _in_ci():
            pytest.fail(f"CI=true: {message}")
        pytest.skip(message)


def _run(faults: int, threads: int = 32) -> None:
    _require_servers()
    with campaign(faults=faults, seed=_seed_from_env(), threads=threads, pause=0.02) as run:
        print(f"chaos: seed {run.seed} (replay: DICTAMESH_CHAOS_SEED={run.seed})")
        report = run.run()
    table = report.render()
    print(table)
    assert report.total_injected >= faults, table
    assert report.failures() == [], table
    # The workload really ran on every backend while the faults were on.
    for backend in ("postgresql", "mongodb", "kafka", "http"):
        assert any(b == backend for b, _ in report.operations), table
    assert all(s.acked > 0 for s in report.stores), table


def test_short_campaign():
    _run(int(os.environ.get("DICTAMESH_CHAOS_SHORT_FAULTS", "100")))


@pytest.mark.chaos
def test_full_campaign():
    _run(int(os.environ.get("DICTAMESH_CHAOS_FAULTS", "1000")))
