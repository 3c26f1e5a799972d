"""Issue #8 on the real server: unbounded numbers, refused startup options, unsendable text."""

from __future__ import annotations

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector
from dictamesh_connectors.retry import RetryPolicy
from tests.secretscan import SecretScan

from .conftest import unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "field",
    [
        {"statement_timeout": 1e306},
        {"pool_timeout": 1e300},
        {"conn_max_idle_time": 1e300},
        {"conn_max_lifetime": 1e300},
        {"statement_timeout": 2_147_484},  # past the server's int of milliseconds
        {"database": "db\udc80"},
        {"username": "u\udc80"},
        {"options": "-c search_path"},
        {"options": "-c 9lives=1"},
    ],
)
def test_bad_values_are_invalid_config_before_any_io(postgres_dsn, field):
    with pytest.raises(InvalidConfigError) as info:
        PostgreSQLConfig.from_url(postgres_dsn, **field)
    assert next(iter(field)) in info.value.message


@pytest.mark.parametrize("timeout", [1e306, 10**400, float("nan"), -1, 0])
def test_a_per_call_timeout_out_of_range_is_invalid_config(make_db, timeout):
    db: PostgreSQLConnector = make_db()
    for call in (db.query, db.execute):
        with pytest.raises(InvalidConfigError):
            call("SELECT 1", timeout=timeout)
    assert db.query("SELECT 1 AS v", timeout=float("inf")).rows == [{"v": 1}]  # inf: no limit
    assert db.stats().in_flight == 0


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ("-c work_mem=bogus", ErrorCode.INVALID_CONFIG),
        ("-c nosuch_parameter=1", ErrorCode.INVALID_CONFIG),
        ("-c statement_timeout=99999999999", ErrorCode.INVALID_CONFIG),
        ("-c shared_buffers=1MB", ErrorCode.INVALID_CONFIG),
    ],
)
def test_startup_options_the_server_refuses_are_permanent_and_not_retried(
    postgres_dsn, options, code
):
    db = PostgreSQLConnector(
        PostgreSQLConfig.from_url(
            postgres_dsn,
            options=options,
            application_name=unique("opt"),
            retry=RetryPolicy(max_attempts=5, initial_backoff=0.01),
        )
    )
    password = PostgreSQLConfig.from_url(postgres_dsn).password.get_secret_value()
    with SecretScan() as scan, pytest.raises(ConnectorError) as info:
        db.connect()
    err = info.value
    assert err.code is code and err.transient is False, err
    scan.assert_clean(password, err, texts=[repr(db)])


def test_class_22_messages_mask_values_but_keep_column_names(db, table):
    db.execute(f'CREATE TABLE {table} (a int, "we""ird" text)')
    with pytest.raises(ConnectorError) as info:
        db.copy_in(table, ["a", 'we"ird'], [[1]])  # a short row
    assert info.value.code is ErrorCode.INVALID_INPUT
    # The server quotes the name as is (no doubling): 'column "we"ird"'.
    assert 'missing data for column "we"ird"' in info.value.message, info.value.message
    assert "***" not in info.value.message
    with pytest.raises(ConnectorError) as info:
        db.query("SELECT %s::int", ["VALUE-NEVER-SHOWN"])
    assert "VALUE-NEVER-SHOWN" not in info.value.message and '"***"' in info.value.message


@pytest.mark.parametrize(
    "value",
    ["TOKEN-MARKER-\udc80", ["TOKEN-MARKER"]],
    ids=["surrogate", "nested"],
)
def test_unencodable_parameters_are_serialization_errors_that_quote_nothing(db, value):
    if not isinstance(value, str):  # nesting past the recursion limit
        for _ in range(5000):
            value = [value]
    with SecretScan() as scan, pytest.raises(ConnectorError) as info:
        db.query("SELECT %s::text", [value])
    assert info.value.code in (ErrorCode.SERIALIZATION_ERROR, ErrorCode.INVALID_REQUEST)
    scan.assert_clean("TOKEN-MARKER", info.value)
    assert db.query("SELECT 1 AS v").rows == [{"v": 1}]  # still usable
    assert db.stats().in_flight == 0
