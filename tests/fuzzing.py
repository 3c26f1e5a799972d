"""Hostile arguments for every public method; the helpers live in the conformance suite now.

Re-exported so ``from tests.fuzzing import check_call`` keeps working; see
``dictamesh_connectors.testing.conformance.fuzzing``.
"""

from __future__ import annotations

from dictamesh_connectors.testing.conformance.fuzzing import (
    BASE_CALLS,
    Call,
    check_call,
    check_covers,
    consume,
    hostile_text,
    nested,
    numbers,
    public_methods,
)

__all__ = [
    "BASE_CALLS",
    "Call",
    "check_call",
    "check_covers",
    "consume",
    "hostile_text",
    "nested",
    "numbers",
    "public_methods",
]
