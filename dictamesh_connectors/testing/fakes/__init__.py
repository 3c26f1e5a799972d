"""In-memory fakes of every connector, for unit tests without servers.

Each fake subclasses ``dictamesh_connectors.base.Connector`` (so the
lifecycle, ``disconnect()`` draining, ``stats()``, events and fork handling
are the real ones), takes the real connector's config (or nothing), has the
real connector's public API and raises the same ``ConnectorError`` codes.
Faults are programmed through ``fake.faults`` (a ``FaultPlan``) or the
shortcuts ``fake.fail_next(...)`` and ``fake.set_latency(...)``.

Example::

    from dictamesh_connectors.errors import ErrorCode
    from dictamesh_connectors.testing.fakes import FakePostgreSQL

    with FakePostgreSQL() as db:
        db.add_result("SELECT name FROM users", rows=[{"name": "Ada"}])
        db.fail_next("query", code=ErrorCode.TIMEOUT)
        ...

Each fake is imported on first use, so a fake needs only its own
connector's dependencies (``FakePostgreSQL`` returns the real
``QueryResult``, which needs the ``postgresql`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import lazy_attribute
from dictamesh_connectors.testing.fakes._faults import ANY, FaultInjection, FaultPlan

if TYPE_CHECKING:
    from dictamesh_connectors.testing.fakes.file import FakeFile
    from dictamesh_connectors.testing.fakes.http import FakeHTTP
    from dictamesh_connectors.testing.fakes.kafka import FakeKafka
    from dictamesh_connectors.testing.fakes.mongodb import FakeMongoDB
    from dictamesh_connectors.testing.fakes.postgresql import FakePostgreSQL

__all__ = [
    "ANY",
    "FakeFile",
    "FakeHTTP",
    "FakeKafka",
    "FakeMongoDB",
    "FakePostgreSQL",
    "FaultInjection",
    "FaultPlan",
]

# Public name -> module; one line per fake.
_LAZY: dict[str, str] = {
    "FakeFile": "dictamesh_connectors.testing.fakes.file",
    "FakeHTTP": "dictamesh_connectors.testing.fakes.http",
    "FakeKafka": "dictamesh_connectors.testing.fakes.kafka",
    "FakeMongoDB": "dictamesh_connectors.testing.fakes.mongodb",
    "FakePostgreSQL": "dictamesh_connectors.testing.fakes.postgresql",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute(__name__, _LAZY, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
