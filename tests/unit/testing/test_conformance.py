"""The conformance suite itself: it passes a connector that keeps the contract and fails,
by the check's name, each connector that breaks one rule.

The broken connectors run in a pytest subprocess (their failures are the
expected outcome there); the good one runs here, as any author's would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dictamesh_connectors.testing.conformance import ConnectorConformance

from . import memory_connector as memory
from .memory_connector import MemoryConfig, MemoryConnector

REPO = Path(__file__).resolve().parents[3]
MARKER = "s3cret-MARKER-memory"


class TestMemoryConformance(ConnectorConformance):
    connector_class = MemoryConnector
    url = f"memory://:{MARKER}@store:1/"
    secret_marker = MARKER
    slow_seconds = 1.0

    def operation(self, connector: Any) -> object:
        connector.put("k", "v")
        return connector.get("k")

    def slow_operation(self, connector: Any, seconds: float) -> object:
        connector.wait(seconds)
        return None

    def failing_operation(self, connector: Any) -> object:
        return connector.get("missing")


BROKEN = {
    # connector class -> the one check that must fail on it
    "BrokenLockConnector": "test_no_lock_held_across_io",
    "BrokenReprConnector": "test_secrets_redacted",
    "BrokenForkConnector": "test_fork_with_locks_held",
    "BrokenDrainConnector": "test_disconnect_drains_under_threads",
    "BrokenPickleConnector": "test_errors_pickle",
    "BrokenConfigConnector": "test_config_fields_reject_garbage",
    "BrokenOperationLockConnector": "test_no_lock_held_across_io",
    "BrokenHelperLockConnector": "test_no_lock_held_across_io",
    "BrokenNestedForkConnector": "test_fork_with_locks_held",
    "BrokenConditionForkConnector": "test_fork_with_locks_held",
    "BrokenForkSocketConnector": "test_fork_child_uses_own_connection",
}

GOOD = {
    # connector class (keeping the contract) -> a check that once failed it wrongly, or
    # that a broken sibling above fails
    "SlowStartConnector": "test_disconnect_drains_under_threads",
    "SocketConnector": "test_fork_child_uses_own_connection",
    # The helper's lock, held across the slow operation by design and declared so.
    "AllowedHelperLockConnector": "test_no_lock_held_across_io",
}

MODULE = """
from tests.unit.testing import broken_connectors as m
from tests.unit.testing import memory_connector as memory
from tests.unit.testing.test_conformance import TestMemoryConformance as Good

def make(cls, **knobs):
    knobs = {"connector_class": cls, "fork_timeout": 5.0, **knobs}
    return type("Test" + cls.__name__, (Good,), knobs)

TestAllowedHelperLockConnector = make(
    m.BrokenHelperLockConnector, locks_held_across_io=("_session._lock",)
)
"""


def test_each_broken_connector_fails_its_check(tmp_path: Path) -> None:
    """And each good variant in GOOD passes the check named for it."""
    module = MODULE + "".join(f"Test{name} = make(m.{name})\n" for name in BROKEN)
    module += "".join(
        f"Test{name} = make(memory.{name})\n" for name in GOOD if hasattr(memory, name)
    )
    (tmp_path / "test_broken.py").write_text(module)
    checks = {**BROKEN, **GOOD}
    selection = " or ".join(f"(Test{name} and {check})" for name, check in checks.items())
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rfEp", "-p", "no:cacheprovider",
         "-p", "no:randomly", "--rootdir", str(tmp_path), "-k", selection,
         str(tmp_path / "test_broken.py")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    failed = {
        line.split("::")[1] + "::" + line.split("::")[2].split(" ")[0]
        for line in run.stdout.splitlines()
        if line.startswith("FAILED ") and "::" in line
    }
    expected = {f"Test{name}::{check}" for name, check in BROKEN.items()}
    assert failed == expected, run.stdout[-6000:]
    passed = {
        line.split("::")[1] + "::" + line.split("::")[2].split(" ")[0]
        for line in run.stdout.splitlines()
        if line.startswith("PASSED ") and "::" in line
    }
    assert passed == {f"Test{name}::{check}" for name, check in GOOD.items()}, run.stdout[-6000:]
    assert f"{len(BROKEN)} failed, {len(GOOD)} passed" in run.stdout, run.stdout[-3000:]


def test_the_good_connector_holds_its_marker() -> None:
    """The secret check has something to find (else it would prove nothing)."""
    config = MemoryConfig.from_url(TestMemoryConformance.url)
    assert MARKER in config.connection_string(redact=False)
    assert MARKER not in repr(MemoryConnector(config))


def test_without_secret_marker_the_secret_check_fails() -> None:
    class NoMarker(TestMemoryConformance):
        secret_marker = ""

    with pytest.raises(AssertionError, match="set secret_marker"):
        NoMarker().test_secrets_redacted()
