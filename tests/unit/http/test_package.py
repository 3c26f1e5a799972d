"""The http package's public surface."""

import inspect

import dictamesh_connectors.http as http
from tests.docstrings import missing_docstrings


def test_all_is_sorted_and_importable():
    assert http.__all__ == sorted(http.__all__)
    for name in http.__all__:
        assert hasattr(http, name), name


def test_the_interface_other_packages_build_on():
    from dictamesh_connectors.http import AuthType, HTTPConfig, HTTPConnector, Request, Response
    from dictamesh_connectors.http.errors import error_for_status, parse_retry_after

    for method in (
        "execute",
        "request",
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "head",
        "options",
        "session",
        "stream",
        "download",
        "ping",
    ):
        assert callable(getattr(HTTPConnector, method)), method
    params = inspect.signature(HTTPConnector.request).parameters
    for name in (
        "params",
        "headers",
        "json",
        "data",
        "files",
        "timeout",
        "idempotency_key",
        "idempotent",
        "raise_for_status",
        "stream",
    ):
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert params["idempotent"].default is None and params["raise_for_status"].default is True
    assert {"method", "url", "connector", "idempotent"} <= set(
        inspect.signature(error_for_status).parameters
    )
    assert parse_retry_after("3") == 3.0
    assert {t.value for t in AuthType} == {"none", "basic", "bearer", "apikey", "oauth2"}
    assert HTTPConfig and Request and Response


def test_every_public_name_and_method_has_a_docstring():
    assert missing_docstrings(http) == []


def test_config_module_imports_no_driver():
    """config.py is pure data: it never imports requests or urllib3 itself."""
    import ast

    import dictamesh_connectors.http.config as config

    tree = ast.parse(inspect.getsource(config))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"requests", "urllib3"}
