"""Fixtures for the MongoDB integration tests: two independent MongoDB-wire servers.

``server`` is parametrized over SecantusDB (``mongodb_uri``: a single-node
replica set with transactions and ``failCommand`` fail points) and FerretDB
1.24 (``ferretdb_uri``: SQLite backend, real SCRAM authentication, no
transactions). Tests that need transactions or fail points use ``secantus``.
Every test gets its own database (dropped afterwards) and a connector with a
unique ``appName``, so a fail point (filtered by ``appName``) only ever hits
that test's own client.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymongo
import pytest

from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

pytestmark = pytest.mark.integration


def unique(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Server:
    name: str  # "secantusdb" or "ferretdb"
    uri: str
    transactions: bool

    def config(self, **overrides: Any) -> MongoDBConfig:
        fields: dict[str, Any] = {
            "database": unique("dm"),
            "app_name": unique("dmtest"),
            # After a not-primary answer pymongo waits for the next heartbeat.
            "heartbeat_frequency": 0.5,
            "server_selection_timeout": 10,
        }
        fields.update(overrides)
        return MongoDBConfig.from_url(self.uri, **fields)

    def raw(self, **kwargs: Any) -> pymongo.MongoClient[dict[str, Any]]:
        """A plain pymongo client: the control, and the fail point switch."""
        return pymongo.MongoClient(
            self.uri, serverSelectionTimeoutMS=10_000, uuidRepresentation="standard",
            tz_aware=True, **kwargs,
        )  # fmt: skip


@pytest.fixture(params=["secantusdb", "ferretdb"])
def server(request: pytest.FixtureRequest) -> Server:
    if request.param == "secantusdb":
        return Server("secantusdb", request.getfixturevalue("mongodb_uri"), True)
    return Server("ferretdb", request.getfixturevalue("ferretdb_uri"), False)


@pytest.fixture
def secantus(mongodb_uri: str) -> Server:
    return Server("secantusdb", mongodb_uri, True)


@contextlib.contextmanager
def connected(server: Server, **overrides: Any) -> Iterator[MongoDBConnector]:
    db = MongoDBConnector(server.config(**overrides))
    db.connect()
    try:
        yield db
    finally:
        raw = server.raw()
        try:
            raw.drop_database(db.config.database)
        finally:
            raw.close()
            db.disconnect()


@pytest.fixture
def db(server: Server) -> Iterator[MongoDBConnector]:
    with connected(server) as connector:
        yield connector


@pytest.fixture
def sdb(secantus: Server) -> Iterator[MongoDBConnector]:
    with connected(secantus) as connector:
        yield connector


@contextlib.contextmanager
def fail_point(server: Server, app_name: str, mode: Any, **data: Any) -> Iterator[None]:
    """``failCommand`` for the client with ``app_name`` only; always switched off after."""
    raw = server.raw()
    try:
        raw.admin.command(
            "configureFailPoint", "failCommand", mode=mode, data={"appName": app_name, **data}
        )
        yield
    finally:
        raw.admin.command("configureFailPoint", "failCommand", mode="off")
        raw.close()
