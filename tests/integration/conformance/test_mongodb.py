"""The conformance suite on MongoDBConnector, against both MongoDB-wire servers.

SecantusDB (``mongodb_uri``): the slow operation is a ``find`` the server
holds with a ``failCommand`` fail point (``blockConnection``), filtered by
this test's ``appName``. FerretDB (``ferretdb_uri``, no fail points): the
slow operation is a cursor read one document per ``getMore``, with a pause
between them, in flight on the connector all along. The marker secret is a
wrong password, so the secret check scans a refused login.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance
from dictamesh_connectors.testing.conformance.suite import closed_port

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-mongodb-conformance"
COLLECTION = "conformance"
DOCUMENTS = 40


class _MongoDBConformance(ConnectorConformance):
    connector_class = MongoDBConnector
    secret_marker = MARKER
    server_uri = ""

    @pytest.fixture(autouse=True)
    def _database(self, _server: None) -> Iterator[None]:
        self.database = f"dmconf_{uuid.uuid4().hex[:10]}"
        self.app_name = f"dmconf_{uuid.uuid4().hex[:10]}"
        raw = self.raw()
        try:
            raw[self.database][COLLECTION].insert_many([{"n": i} for i in range(DOCUMENTS)])
            yield
        finally:
            raw.drop_database(self.database)
            raw.close()

    def raw(self) -> pymongo.MongoClient[dict[str, Any]]:
        return pymongo.MongoClient(self.server_uri, serverSelectionTimeoutMS=10_000)

    def make_config(self) -> BaseConfig:
        return MongoDBConfig.from_url(
            self.server_uri,
            database=self.database,
            app_name=self.app_name,
            heartbeat_frequency=0.5,
            server_selection_timeout=10,
        )

    def secret_config(self) -> BaseConfig:
        return self.make_config().evolve(
            username="dictamesh-conformance", password=MARKER, auth_source="admin"
        )

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(
            hosts=[f"127.0.0.1:{closed_port()}"],
            server_selection_timeout=1,
            connect_timeout=1,
            retry=RetryPolicy.no_retry(),
        )

    def operation(self, connector: MongoDBConnector) -> object:
        return connector.count(COLLECTION, {"n": {"$gte": 0}})

    def failing_operation(self, connector: MongoDBConnector) -> object:
        first = connector.find_one(COLLECTION, {"n": 0})
        assert first is not None
        return connector.insert_one(COLLECTION, {"_id": first["_id"]})  # duplicate key


class TestSecantusDBConformance(_MongoDBConformance):
    @pytest.fixture(autouse=True)
    def _server(self, mongodb_uri: str) -> None:
        type(self).server_uri = mongodb_uri

    def slow_operation(self, connector: MongoDBConnector, seconds: float) -> object:
        raw = self.raw()
        try:
            raw.admin.command(
                "configureFailPoint",
                "failCommand",
                mode="alwaysOn",
                data={
                    "appName": self.app_name,
                    "failCommands": ["find"],
                    "blockConnection": True,
                    "blockTimeMS": int(seconds * 1000),
                },
            )
        finally:
            raw.close()
        return connector.find_one(COLLECTION, {"n": 1})

    @pytest.fixture(autouse=True)
    def _fail_point_off(self, _server: None) -> Iterator[None]:
        yield
        raw = self.raw()
        try:
            raw.admin.command("configureFailPoint", "failCommand", mode="off")
        finally:
            raw.close()


class TestFerretDBConformance(_MongoDBConformance):
    @pytest.fixture(autouse=True)
    def _server(self, ferretdb_uri: str) -> None:
        type(self).server_uri = ferretdb_uri

    def slow_operation(self, connector: MongoDBConnector, seconds: float) -> object:
        pause = seconds / (DOCUMENTS / 2)
        seen = 0
        with connector.stream(COLLECTION, {}, batch_size=1, sort=[("n", 1)]) as stream:
            for _ in stream:
                seen += 1
                if seen > DOCUMENTS / 2:
                    break
                time.sleep(pause)
        return seen
