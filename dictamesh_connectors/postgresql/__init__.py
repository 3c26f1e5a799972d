"""PostgreSQL connector: psycopg 3 on a psycopg_pool connection pool.

Install the driver with ``pip install 'dictamesh-connectors[postgresql]'``.
``PostgreSQLConfig`` imports without it; the other names need it and raise
``MissingDependencyError`` (naming the extra) when it is missing.

Example::

    from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

    with PostgreSQLConnector(PostgreSQLConfig.from_url("postgresql://app:pw@db/app")) as db:
        print(db.query("SELECT version()").scalar())
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import lazy_attribute
from dictamesh_connectors.postgresql.config import PostgreSQLConfig

if TYPE_CHECKING:
    from dictamesh_connectors.postgresql import query_builder
    from dictamesh_connectors.postgresql.connector import PostgreSQLConnector
    from dictamesh_connectors.postgresql.results import ExecResult, QueryResult, RowStream
    from dictamesh_connectors.postgresql.transaction import Transaction

__all__ = [
    "ExecResult",
    "PostgreSQLConfig",
    "PostgreSQLConnector",
    "QueryResult",
    "RowStream",
    "Transaction",
    "query_builder",
]

_LAZY = {
    "ExecResult": "dictamesh_connectors.postgresql.results",
    "PostgreSQLConnector": "dictamesh_connectors.postgresql.connector",
    "QueryResult": "dictamesh_connectors.postgresql.results",
    "RowStream": "dictamesh_connectors.postgresql.results",
    "Transaction": "dictamesh_connectors.postgresql.transaction",
}


def __getattr__(name: str) -> Any:
    # The driver is imported on first use, so PostgreSQLConfig works without it.
    if name == "query_builder":
        return importlib.import_module("dictamesh_connectors.postgresql.query_builder")
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
