"""The conformance suite on GraphQLConnector, against a real graphql-core server over HTTP.

The schema has ``hello``, ``slow(seconds)`` (the resolver sleeps: the server
holds the request) and ``broken`` (a field error). A bearer token with the
marker secret rides in the URL's query (``?token=``), as the config allows.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import build_schema, graphql_sync

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.graphql import GraphQLConfig, GraphQLConnector
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance
from dictamesh_connectors.testing.conformance.suite import closed_port
from tests.integration.http.servers import LocalServer

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-graphql-conformance"
SCHEMA = build_schema(
    """
    type Query {
      hello: String!
      slow(seconds: Float!): String!
      broken: String
    }
    """
)


class _Root:
    def hello(self, _info: Any) -> str:
        return "world"

    def slow(self, _info: Any, seconds: float) -> str:
        time.sleep(min(seconds, 30.0))
        return "slept"

    def broken(self, _info: Any) -> str:
        raise ValueError("this field always fails")


def _app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(length) or b"{}")
    result = graphql_sync(
        SCHEMA,
        body.get("query", ""),
        root_value=_Root(),
        variable_values=body.get("variables"),
        operation_name=body.get("operationName"),
    )
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [e.formatted for e in result.errors]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


@pytest.fixture(scope="module")
def graphql_server() -> Iterator[LocalServer]:
    with LocalServer(_app) as server:
        yield server


class TestGraphQLConformance(ConnectorConformance):
    connector_class = GraphQLConnector
    secret_marker = MARKER

    @pytest.fixture(autouse=True)
    def _server(self, graphql_server: LocalServer) -> None:
        parts = urllib.parse.urlsplit(graphql_server.url)
        self.url = f"http://{parts.netloc}/graphql?token={MARKER}"

    def make_config(self) -> BaseConfig:
        return GraphQLConfig.from_url(
            self.url, retry=RetryPolicy(max_attempts=2, initial_backoff=0.01), timeout=60
        )

    def unreachable_config(self, config: BaseConfig) -> BaseConfig | None:
        return config.evolve(base_url=f"http://127.0.0.1:{closed_port()}/")

    def operation(self, connector: GraphQLConnector) -> object:
        return connector.query("{ hello }")

    def slow_operation(self, connector: GraphQLConnector, seconds: float) -> object:
        return connector.query("query Slow($s: Float!) { slow(seconds: $s) }", {"s": seconds})

    def failing_operation(self, connector: GraphQLConnector) -> object:
        return connector.query("{ broken }")
