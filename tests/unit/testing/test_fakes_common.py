"""What every fake of this module promises: docstrings, secrets never shown, fork safety."""

from __future__ import annotations

import inspect

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.http import Credentials, HTTPConfig
from dictamesh_connectors.postgresql import PostgreSQLConfig
from dictamesh_connectors.testing import pytest_plugin
from dictamesh_connectors.testing.fakes import (
    FakeFile,
    FakeHTTP,
    FakePostgreSQL,
    _faults,
    _file_handles,
    _file_tree,
    _pg_program,
    file,
    http,
    postgresql,
)
from tests.forking import held_by_another_thread, run_in_child
from tests.secretscan import SecretScan

MARKER = "MARKER-SECRET-4c3b2a"
MODULES = [
    _faults,
    http,
    postgresql,
    _pg_program,
    file,
    _file_handles,
    _file_tree,
    pytest_plugin,
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_public_name_and_method_has_a_docstring(module):
    assert (module.__doc__ or "").strip()
    assert module.__all__ == sorted(module.__all__)
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, str):
            continue
        assert (obj.__doc__ or "").strip(), name
        if not inspect.isclass(obj):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_") or not (callable(value) or isinstance(value, property)):
                continue
            assert (value.__doc__ or "").strip(), f"{name}.{attr}"


def fakes_with_a_secret():
    yield FakePostgreSQL(PostgreSQLConfig(host="db", database="app", username="u", password=MARKER))
    yield FakeHTTP(
        HTTPConfig(
            base_url="https://api.example",
            credentials=Credentials(username="u", password=MARKER),
        )
    )


@pytest.mark.parametrize("fake", list(fakes_with_a_secret()), ids=lambda f: type(f).__name__)
def test_secrets_never_show(fake):
    with SecretScan() as scan:
        with pytest.raises(ConnectorError) as before:
            fake.ping()
        fake.connect()
        fake.fail_next("*", code=ErrorCode.AUTH_FAILED)
        with pytest.raises(ConnectorError) as injected:
            if isinstance(fake, FakeHTTP):
                fake.get("/x")
            else:
                fake.query("SELECT 1")
        fake.disconnect()
    for error in (before.value, injected.value):
        scan.assert_clean(MARKER, error, texts=[repr(fake), str(fake.stats()), repr(fake.faults)])


def _use_in_child(fake) -> bool:
    if isinstance(fake, FakeHTTP):
        fake.add("GET", "/x", json="child")
        return fake.get("/x").json() == "child"
    if isinstance(fake, FakePostgreSQL):
        fake.add_result("SELECT 1", rows=[(1,)])
        return fake.query("SELECT 1").scalar() == 1
    fake.write_text("child.txt", "x")
    return fake.read_text("child.txt") == "x"


@pytest.mark.parametrize("cls", [FakeHTTP, FakePostgreSQL, FakeFile], ids=lambda c: c.__name__)
def test_fork_while_another_thread_holds_the_fakes_locks(cls):
    fake = cls()
    fake.connect()
    locks = [fake.faults._lock, fake._lock]
    locks.append(
        {FakeHTTP: "_routes_lock", FakePostgreSQL: "_data_lock", FakeFile: "_tree_lock"}[cls]
    )
    locks[-1] = getattr(fake, locks[-1])
    with held_by_another_thread(*locks):
        status = run_in_child(lambda: _use_in_child(fake), timeout=30)
    assert status == 0
    assert _use_in_child(fake)  # the parent goes on
    fake.disconnect()
