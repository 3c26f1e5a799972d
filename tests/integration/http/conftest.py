"""Fixtures the HTTP integration tests share: a scripted local server and a connector factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dictamesh_connectors.http import HTTPConfig, HTTPConnector
from dictamesh_connectors.retry import RetryPolicy

from .servers import LocalServer, ScriptedApp

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=5.0, jitter=False)
"""The retry policy ``connect`` gives a connector unless the test names one."""


@pytest.fixture
def app() -> ScriptedApp:
    return ScriptedApp()


@pytest.fixture
def server(app: ScriptedApp) -> Iterator[LocalServer]:
    with LocalServer(app) as srv:
        yield srv


@pytest.fixture
def connect() -> Iterator[Callable[..., HTTPConnector]]:
    """``connect(**fields)``: a connected ``HTTPConnector``, disconnected after the test."""
    made: list[HTTPConnector] = []

    def build(**fields: Any) -> HTTPConnector:
        fields.setdefault("retry", FAST)
        connector = HTTPConnector(HTTPConfig(**fields))
        connector.connect()
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.disconnect()
