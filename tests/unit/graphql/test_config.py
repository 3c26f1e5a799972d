"""GraphQLConfig: URL schemes, endpoint path, environment, redaction, pickling."""

from __future__ import annotations

import contextlib
import pickle
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dictamesh_connectors.config import Secret
from dictamesh_connectors.errors import InvalidConfigError
from dictamesh_connectors.graphql.config import GraphQLConfig
from dictamesh_connectors.http.config import AuthType, HTTPConfig


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("graphql+https://api.example.com/graphql", "https://api.example.com/graphql"),
        ("graphql+http://127.0.0.1:8080/gql", "http://127.0.0.1:8080/gql"),
        ("GRAPHQL+HTTPS://api.example.com/graphql", "https://api.example.com/graphql"),
        ("https://api.example.com/v1/graphql", "https://api.example.com/v1/graphql"),
    ],
)
def test_from_url_schemes(url: str, endpoint: str) -> None:
    config = GraphQLConfig.from_url(url)
    assert isinstance(config, HTTPConfig)
    assert config.endpoint_url == endpoint


def test_from_url_carries_http_options_and_credentials() -> None:
    config = GraphQLConfig.from_url(
        "graphql+https://bot:s3cret@api.example.com/graphql?timeout=5&max_retries=4"
    )
    assert config.timeout == 5.0
    assert config.retry.max_attempts == 5
    assert config.auth_type is AuthType.BASIC
    assert config.credentials.username == "bot"
    assert config.credentials.password == Secret("s3cret")


def test_path_is_joined_onto_base_url() -> None:
    assert (
        GraphQLConfig(base_url="https://api.example.com/", path="/graphql").endpoint_url
        == "https://api.example.com/graphql"
    )
    assert (
        GraphQLConfig(base_url="https://api.example.com/v2", path="graphql").endpoint_url
        == "https://api.example.com/v2/graphql"
    )
    assert GraphQLConfig.from_url("graphql+https://h/api?path=/gql").endpoint_url == (
        "https://h/api/gql"
    )


@pytest.mark.parametrize(
    "path", ["/a?b=1", "/a#frag", "https://evil.example/graphql", "/a\r\nX: y"]
)
def test_bad_paths_are_rejected(path: str) -> None:
    with pytest.raises(InvalidConfigError, match="path"):
        GraphQLConfig(base_url="https://api.example.com", path=path)


@pytest.mark.parametrize(
    "url", ["postgresql://h/db", "graphql+ftp://h/x", "graphql://h/x", "not a url", ""]
)
def test_other_schemes_are_rejected(url: str) -> None:
    with pytest.raises(InvalidConfigError):
        GraphQLConfig.from_url(url)


def test_connection_string_redacts_and_round_trips() -> None:
    config = GraphQLConfig.from_url(
        "graphql+https://bot:s3cret@api.example.com/graphql?timeout=5", path="v2"
    )
    shown = config.connection_string()
    assert shown.startswith("graphql+https://bot:***@api.example.com/graphql?")
    assert "s3cret" not in shown and "s3cret" not in repr(config)
    assert "path=v2" in shown
    assert GraphQLConfig.from_url(config.connection_string(redact=False)) == config


def test_from_env_reads_the_url_and_http_variables() -> None:
    config = GraphQLConfig.from_env(
        "GQL_",
        {
            "GQL_URL": "graphql+https://api.example.com/graphql",
            "GQL_TOKEN": "t0k3n",
            "GQL_TIMEOUT": "7",
            "GQL_PATH": "",
            "GQL_RETRY_MAX_ATTEMPTS": "6",
        },
    )
    assert config.endpoint_url == "https://api.example.com/graphql"
    assert config.auth_type is AuthType.BEARER
    assert config.credentials.token == Secret("t0k3n")
    assert config.timeout == 7.0
    assert config.retry.max_attempts == 6


def test_config_pickles_and_compares_by_value() -> None:
    config = GraphQLConfig(base_url="https://api.example.com", path="/graphql")
    assert pickle.loads(pickle.dumps(config)) == config


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["path", "timeout", "base_url", "max_retries", "verify"]),
        st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(), st.booleans()),
    )
)
def test_garbage_never_raises_anything_but_invalid_config(fields: dict[str, Any]) -> None:
    fields.setdefault("base_url", "https://api.example.com")
    with contextlib.suppress(InvalidConfigError):
        GraphQLConfig(**fields)
