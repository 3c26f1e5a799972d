"""Public API surface, logging setup and optional-dependency behaviour."""

import logging
import subprocess
import sys
import textwrap

import dictamesh_connectors
from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import MissingDependencyError

EXPECTED_ALL = [
    "AuthenticationError",
    "BaseConfig",
    "Connector",
    "ConnectorError",
    "ConnectorTimeoutError",
    "ErrorCode",
    "InvalidConfigError",
    "MissingDependencyError",
    "NotConnectedError",
    "RetryHint",
    "RetryPolicy",
    "Secret",
    "State",
    "__version__",
    "connect",
    "known_schemes",
    "register",
    "retry_call",
]


def test_all_is_sorted_and_complete():
    assert dictamesh_connectors.__all__ == sorted(dictamesh_connectors.__all__)
    assert dictamesh_connectors.__all__ == EXPECTED_ALL
    for name in dictamesh_connectors.__all__:
        assert hasattr(dictamesh_connectors, name)


def test_every_public_name_has_a_docstring():
    for name in dictamesh_connectors.__all__:
        obj = getattr(dictamesh_connectors, name)
        if name == "__version__":
            continue
        assert (obj.__doc__ or "").strip(), name


def test_package_logger_has_a_null_handler():
    handlers = logging.getLogger("dictamesh_connectors").handlers
    assert any(isinstance(h, logging.NullHandler) for h in handlers)


def test_missing_extra_names_the_extra():
    try:
        require("surely_not_installed_pkg", extra="postgresql", connector="postgresql")
    except MissingDependencyError as err:
        assert "pip install 'dictamesh-connectors[postgresql]'" in str(err)
        assert err.connector == "postgresql"
    else:
        raise AssertionError("expected MissingDependencyError")


BLOCK_DRIVERS = textwrap.dedent(
    """
    import sys, importlib.abc
    BLOCKED = {"psycopg", "psycopg_pool", "pymongo", "bson", "confluent_kafka", "zeep"}
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked)")
    sys.meta_path.insert(0, Block())
    """
)


def test_core_imports_without_any_driver():
    code = BLOCK_DRIVERS + textwrap.dedent(
        """
        import dictamesh_connectors
        from dictamesh_connectors import registry
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        for scheme in registry.known_schemes():
            try:
                registry.connector_class(scheme)
            except dictamesh_connectors.MissingDependencyError as err:
                assert "pip install 'dictamesh-connectors[" in str(err), err
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
