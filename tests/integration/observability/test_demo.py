"""`make demo`'s script, run as a new user would (a subprocess), on a smaller batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_the_demo_tells_the_whole_story(postgres_dsn, kafka_bootstrap, mongodb_uri):
    env = {
        **os.environ,
        "DICTAMESH_TEST_POSTGRES_DSN": postgres_dsn,
        "DICTAMESH_TEST_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DICTAMESH_TEST_MONGODB_URI": mongodb_uri,
        "DEMO_ORDERS": "60",
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "60 orders stored, 60 events delivered to Kafka" in out
    assert "retry: http GET" in out and "UNAVAILABLE (transient)" in out
    assert "code=CONSTRAINT_VIOLATION permanent" in out
    assert "RunResult(processed=60" in out
    assert "MongoDB has 60 orders" in out and "has 60 lines" in out
    summary = out.split("== 5.")[1].split("== 6.")[0]
    for name in ("http", "postgresql", "kafka", "mongodb", "file"):
        line = next(row for row in summary.splitlines() if row.strip().startswith(name + " "))
        # Kafka's broker numbers come with librdkafka's first statistics (5 s in).
        nothing_held = "waiting=0" if name == "kafka" else "in_use=0"
        assert " ok " in line and nothing_held in line, line
    assert "dictamesh-test-pw" not in out + done.stderr  # the password never shows
    assert "0 Kafka records undelivered" in out


def test_the_demo_draws_progress_bars_on_a_terminal(postgres_dsn, kafka_bootstrap, mongodb_uri):
    import pty

    env = {
        **os.environ,
        "DICTAMESH_TEST_POSTGRES_DSN": postgres_dsn,
        "DICTAMESH_TEST_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "DICTAMESH_TEST_MONGODB_URI": mongodb_uri,
        "DEMO_ORDERS": "50",
        "PYTHONPATH": str(ROOT),
    }
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
        status = process.wait(timeout=300)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
            process.wait()
    text = output.decode(errors="replace")
    assert status == 0, text[-3000:]
    full = "[" + "#" * 30 + "] 50/50"
    assert f"\r   orders stored          {full}" in text, text[-3000:]
    assert f"\r   events consumed        {full}" in text, text[-3000:]
    assert text.count("\r   orders stored ") == 50  # the bar is redrawn in place per order
    assert "orders stored          1/50" not in text  # no log lines on a terminal
    assert "== Done." in text
