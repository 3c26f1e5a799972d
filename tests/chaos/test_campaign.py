"""The randomized fault campaign against private servers (see campaign.py).

``test_short_campaign`` (about 100 faults) is part of the default suite;
``test_full_campaign`` (1,000 faults, ``make chaos``) runs only with
``-m chaos``. Both print their seed; ``DICTAMESH_CHAOS_SEED=n`` replays one.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.chaos.campaign import EXIT_INTERRUPTED, _seed_from_env, campaign
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


ROOT = Path(__file__).resolve().parents[2]


def _run(faults: int, threads: int = 32) -> None:
    # The log file goes where the campaign puts it by default (the temporary
    # directory, named by seed and pid; printed): not in tmp_path, which a
    # later pytest run on this machine may remove before anyone reads it.
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


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_sigint_stops_the_campaign_and_prints_the_partial_summary(tmp_path):
    """Ctrl-C mid-run: the schedule stops, the servers stop, a partial summary, exit 130."""
    _require_servers()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop("DICTAMESH_CHAOS_SEED", None)
    stderr = open(tmp_path / "stderr", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.campaign", "--faults", "400", "--seed", "20261202",
         "--threads", "8", "--log-file", str(tmp_path / "campaign.log")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
    )  # fmt: skip
    head: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # until the schedule is under way (or the process ends)
            head.append(line)
            if "faults injected" in line:
                break
        assert any("faults injected" in x for x in head), "".join(head)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=900)  # a bound against a hang, not a speed check
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.close()
    out = "".join(head) + rest
    err = (tmp_path / "stderr").read_text(errors="replace")
    assert proc.returncode == EXIT_INTERRUPTED, f"{out}\n--- stderr\n{err}"
    assert "chaos: interrupted: stopping the fault schedule" in out, out
    # The partial summary: the faults played so far, the checks, the verdict.
    assert "faults by kind" in out and "lost acknowledged writes" in out, out
    assert "RESULT: INTERRUPTED (partial run): interrupted (SIGINT) after" in out, out
    injected = re.search(r"total\s+(\d+)\s+\(planned 400\)", out)
    assert injected is not None and 0 < int(injected.group(1)) < 400, out
    assert "make chaos SEED=20261202 FAULTS=400 THREADS=8" in out, out
    # The private servers it started were stopped (by the campaign, before it exited).
    assert "chaos: private servers stopped" in out, out
    assert out.index("chaos: private servers stopped") < out.index("RESULT:"), out
    workdir = re.search(r"chaos: private servers in (\S+)", out)
    assert workdir is not None, out
    assert not Path(workdir.group(1)).exists(), out
    assert _processes_mentioning(workdir.group(1)) == []
    assert "KeyboardInterrupt" not in err, err
