"""The secret scan every secret test uses; it lives in the conformance suite now.

Re-exported so ``from tests.secretscan import SecretScan`` keeps working;
see ``dictamesh_connectors.testing.conformance.secretscan``.
"""

from __future__ import annotations

from dictamesh_connectors.testing.conformance.secretscan import (
    SecretScan,
    exception_chain,
    observable_texts,
)

__all__ = ["SecretScan", "exception_chain", "observable_texts"]
