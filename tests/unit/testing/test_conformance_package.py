"""The conformance package: documented names, sorted ``__all__``, and what imports without
pytest and hypothesis (the ``testing`` extra)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from tests.docstrings import missing_docstrings

REPO = Path(__file__).resolve().parents[3]
MODULES = [
    "dictamesh_connectors.testing.conformance",
    "dictamesh_connectors.testing.conformance._harness",
    "dictamesh_connectors.testing.conformance.forking",
    "dictamesh_connectors.testing.conformance.fuzzing",
    "dictamesh_connectors.testing.conformance.pickling",
    "dictamesh_connectors.testing.conformance.secretscan",
    "dictamesh_connectors.testing.conformance.suite",
    "examples.redis_connector",
]


@pytest.mark.parametrize("name", MODULES)
def test_public_names_are_documented_and_all_is_sorted(name: str) -> None:
    module = importlib.import_module(name)
    assert (module.__doc__ or "").strip()
    assert list(module.__all__) == sorted(module.__all__)
    assert missing_docstrings(module) == []


def test_imports_without_pytest_or_hypothesis() -> None:
    """SecretScan, run_in_child and the pickle check need only the standard library;
    the suite itself says which extra to install."""
    code = """
import sys
sys.modules["pytest"] = None
sys.modules["hypothesis"] = None
from dictamesh_connectors.testing import conformance
from dictamesh_connectors.testing.conformance import SecretScan, assert_round_trips, run_in_child
assert run_in_child(lambda: True, timeout=30) == 0
try:
    conformance.ConnectorConformance
except ImportError as err:
    assert "dictamesh-connectors[testing]" in str(err), err
else:
    raise AssertionError("ConnectorConformance imported without pytest")
print("ok")
"""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
