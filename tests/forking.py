"""Run a function in a forked child process; the helper lives in the conformance suite now.

Re-exported so ``from tests.forking import run_in_child`` keeps working; see
``dictamesh_connectors.testing.conformance.forking``.
"""

from __future__ import annotations

from dictamesh_connectors.testing.conformance.forking import run_in_child

__all__ = ["run_in_child"]
