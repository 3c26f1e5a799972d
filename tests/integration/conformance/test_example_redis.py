"""The conformance suite on the example third-party connector (examples/redis_connector.py).

Against the shared Redis (``redis_url``), in database 60 (no other test uses
it), as an ACL user of its own whose password is the marker secret: the
secret check scans a working connection. The slow operation is a ``BLPOP``
on an empty list, held by the server for the requested time.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator

import pytest
import redis

from dictamesh_connectors.config import BaseConfig
from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.testing.conformance import ConnectorConformance
from examples.redis_connector import RedisConfig, RedisConnector

pytestmark = pytest.mark.integration

MARKER = "s3cret-MARKER-redis-conformance"
USER = "dictamesh-conformance"
DB = 60


def ensure_user(url: str) -> None:
    """An ACL user with the marker password, limited to the ``conformance:*`` keys."""
    admin = redis.Redis.from_url(url)
    try:
        admin.acl_setuser(
            USER,
            enabled=True,
            passwords=[f"+{MARKER}"],
            keys=["conformance:*"],
            commands=["+@all"],
        )
    finally:
        admin.close()


class TestExampleRedisConformance(ConnectorConformance):
    connector_class = RedisConnector
    secret_marker = MARKER

    @pytest.fixture(autouse=True)
    def _server(self, redis_url: str) -> Iterator[None]:
        ensure_user(redis_url)
        parts = urllib.parse.urlsplit(redis_url)
        self.url = f"redis://{USER}:{MARKER}@{parts.hostname}:{parts.port}/{DB}"
        self.prefix = f"conformance:{uuid.uuid4().hex[:8]}"
        yield
        admin = redis.Redis.from_url(redis_url, db=DB)
        try:
            keys = list(admin.scan_iter(match=f"{self.prefix}*"))
            if keys:
                admin.delete(*keys)
        finally:
            admin.close()

    def make_config(self) -> BaseConfig:
        return RedisConfig.from_url(
            self.url, retry=RetryPolicy(max_attempts=3, initial_backoff=0.01), connect_timeout=2
        )

    def operation(self, connector: RedisConnector) -> object:
        connector.set(f"{self.prefix}:key", b"value")
        return connector.get(f"{self.prefix}:key")

    def slow_operation(self, connector: RedisConnector, seconds: float) -> object:
        return connector.blpop([f"{self.prefix}:empty-{uuid.uuid4().hex[:6]}"], timeout=seconds)

    def failing_operation(self, connector: RedisConnector) -> object:
        connector.rpush(f"{self.prefix}:list", b"x")
        return connector.incr(f"{self.prefix}:list")  # WRONGTYPE


@pytest.mark.usefixtures("redis_url")
def test_the_example_classifies_real_errors(redis_url: str) -> None:
    """Real server answers map to the documented codes (the table in the module docstring)."""
    ensure_user(redis_url)
    parts = urllib.parse.urlsplit(redis_url)
    base = f"redis://{USER}:{MARKER}@{parts.hostname}:{parts.port}/{DB}"
    with RedisConnector(RedisConfig.from_url(base)) as cache:
        key = f"conformance:{uuid.uuid4().hex[:8]}"
        cache.rpush(key, b"x")
        with pytest.raises(ConnectorError) as wrong_type:
            cache.incr(key)
        assert wrong_type.value.code is ErrorCode.INVALID_REQUEST
        with pytest.raises(ConnectorError) as denied:
            cache.get("outside-the-users-keys")
        assert denied.value.code is ErrorCode.PERMISSION_DENIED
        cache.delete(key)
    wrong = RedisConnector(RedisConfig.from_url(base, password="not-the-password"))
    with pytest.raises(ConnectorError) as auth:
        wrong.connect()
    assert auth.value.code is ErrorCode.AUTH_FAILED and not auth.value.transient
