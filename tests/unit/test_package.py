"""Public API surface, logging setup and optional-dependency behaviour."""

import logging
import subprocess
import sys
import textwrap

import dictamesh_connectors
from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import MissingDependencyError

EXPECTED_ALL = [
    "ArgumentTypeError",
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


def test_ci_turns_skipped_integration_tests_into_failures(tmp_path):
    """tests/conftest.py: with CI=true a skipped integration test fails; a unit skip stays."""
    import os
    from pathlib import Path

    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.integration
            def test_integration_skips():
                pytest.skip("driver missing")

            def test_unit_skips():
                pytest.skip("fine")
            """
        )
    )
    repo = Path(__file__).resolve().parents[2]
    argv = [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider"]
    argv += ["-o", "addopts=", str(tmp_path / "test_probe.py")]
    for ci, expected in (("true", "1 failed, 1 skipped"), ("", "2 skipped")):
        env = {**os.environ, "CI": ci}
        out = subprocess.run(argv, cwd=repo, env=env, capture_output=True, text=True)
        assert expected in out.stdout, out.stdout + out.stderr


def test_every_core_module_has_its_own_logger():
    import importlib

    for name in ("base", "cli", "config", "errors", "registry", "retry", "_compat"):
        module = importlib.import_module(f"dictamesh_connectors.{name}")
        assert module.logger.name == module.__name__, name


def test_lazy_attribute_imports_on_first_use_and_refuses_unknown_names():
    import pytest

    from dictamesh_connectors import mongodb, postgresql
    from dictamesh_connectors._compat import lazy_attribute

    names = {"dumps": "json"}
    assert lazy_attribute("pkg", names, "dumps") is __import__("json").dumps
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'loads'"):
        lazy_attribute("pkg", names, "loads")
    for package in (mongodb, postgresql):
        with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
            package.Nope  # noqa: B018
        assert not hasattr(package, "Nope")
