"""One NullHandler, on the top package's logger; no subpackage repeats it (issue #7)."""

import importlib
import logging

import pytest


@pytest.mark.parametrize(
    "package", ["http", "graphql", "postgresql", "mongodb", "kafka", "file", "soap"]
)
def test_no_subpackage_adds_its_own_null_handler(package):
    try:
        importlib.import_module(f"dictamesh_connectors.{package}")
    except ImportError:
        pytest.skip(f"{package} is not importable here")
    handlers = logging.getLogger(f"dictamesh_connectors.{package}").handlers
    assert not any(isinstance(h, logging.NullHandler) for h in handlers)
