"""Every fake has its real connector's public API: same names, same parameters.

A method added to (or changed on) a real connector fails this test until its
fake follows, so the fakes cannot drift from the real thing. Annotations are
not compared (a fake returns its own ``FakeTransaction``), everything else
of each parameter is: name, kind and default.
"""

from __future__ import annotations

import inspect

import pytest

from dictamesh_connectors.file import FileConnector
from dictamesh_connectors.file.atomic import AtomicWriter
from dictamesh_connectors.file.locks import FileLock
from dictamesh_connectors.file.reader import FileReader
from dictamesh_connectors.file.txn import Transaction as FileTransaction
from dictamesh_connectors.http import HTTPConnector
from dictamesh_connectors.postgresql import PostgreSQLConnector, Transaction
from dictamesh_connectors.testing.fakes import FakeFile, FakeHTTP, FakePostgreSQL
from dictamesh_connectors.testing.fakes.file import (
    FakeFileLock,
    FakeFileReader,
    FakeFileTransaction,
    FakeFileWriter,
)
from dictamesh_connectors.testing.fakes.postgresql import FakeTransaction

PAIRS = [
    (FakeHTTP, HTTPConnector),
    (FakePostgreSQL, PostgreSQLConnector),
    (FakeTransaction, Transaction),
    (FakeFile, FileConnector),
    (FakeFileReader, FileReader),
    (FakeFileWriter, AtomicWriter),
    (FakeFileLock, FileLock),
    (FakeFileTransaction, FileTransaction),
]

# What every fake adds on top of the real API (not compared).
FAKE_EXTRAS = {"faults", "fail_next", "set_latency"}


def public_names(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


def shape(obj: object) -> list[tuple[str, str, str]]:
    signature = inspect.signature(obj)  # type: ignore[arg-type]
    return [
        (p.name, p.kind.name, "<none>" if p.default is inspect.Parameter.empty else repr(p.default))
        for p in signature.parameters.values()
    ]


@pytest.mark.parametrize(("fake", "real"), PAIRS, ids=lambda cls: cls.__name__)
def test_every_public_name_of_the_real_class_is_on_the_fake(fake, real):
    missing = public_names(real) - public_names(fake)
    assert not missing, f"{fake.__name__} lacks {sorted(missing)}"


@pytest.mark.parametrize(("fake", "real"), PAIRS, ids=lambda cls: cls.__name__)
def test_same_parameters_and_kinds(fake, real):
    for name in sorted(public_names(real)):
        real_attr = inspect.getattr_static(real, name)
        fake_attr = inspect.getattr_static(fake, name)
        if isinstance(real_attr, property):
            assert isinstance(fake_attr, property), f"{fake.__name__}.{name} is not a property"
            continue
        if not callable(getattr(real, name)) or isinstance(getattr(real, name), type):
            continue
        assert shape(getattr(fake, name)) == shape(getattr(real, name)), f"{fake.__name__}.{name}"


@pytest.mark.parametrize(("fake", "real"), PAIRS, ids=lambda cls: cls.__name__)
def test_same_name_and_config_class(fake, real):
    if hasattr(real, "config_class"):
        assert fake.name == real.name
        assert fake.config_class is real.config_class


@pytest.mark.parametrize("fake", [FakeHTTP, FakePostgreSQL, FakeFile], ids=lambda c: c.__name__)
def test_fakes_add_only_documented_extras(fake):
    for name in FAKE_EXTRAS:
        assert (getattr(fake, name).__doc__ or "").strip(), name
    for name in public_names(fake):
        assert (getattr(fake, name).__doc__ or "").strip(), f"{fake.__name__}.{name}"
