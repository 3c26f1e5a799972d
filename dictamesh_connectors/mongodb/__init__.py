"""MongoDB connector: pymongo's ``MongoClient``, shared by every thread.

Install the driver with ``pip install 'dictamesh-connectors[mongodb]'``.
``MongoDBConfig`` imports without it; the other names need it and raise
``MissingDependencyError`` (naming the extra) when it is missing.

Example::

    from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

    with MongoDBConnector(MongoDBConfig.from_url("mongodb://app:pw@db/app")) as db:
        db.insert_one("events", {"kind": "signup"})
        print(db.count("events", {"kind": "signup"}))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import lazy_attribute
from dictamesh_connectors.mongodb.config import MongoDBConfig
from dictamesh_connectors.mongodb.documents import ArgumentTypeError, BulkResult, UpdateResult

if TYPE_CHECKING:
    from dictamesh_connectors.mongodb.connector import (
        DocumentStream,
        MongoDBConnector,
        Transaction,
    )

__all__ = [
    "ArgumentTypeError",
    "BulkResult",
    "DocumentStream",
    "MongoDBConfig",
    "MongoDBConnector",
    "Transaction",
    "UpdateResult",
]

_LAZY = {
    "DocumentStream": "dictamesh_connectors.mongodb.connector",
    "MongoDBConnector": "dictamesh_connectors.mongodb.connector",
    "Transaction": "dictamesh_connectors.mongodb.connector",
}


def __getattr__(name: str) -> Any:
    # The driver is imported on first use, so MongoDBConfig works without it.
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
