"""The secret-scan helper itself: it must find a secret wherever one hides."""

from __future__ import annotations

import logging

import pytest

from dictamesh_connectors.errors import ConnectorError
from tests.secretscan import SecretScan

MARKER = "MARKER-s3cr3t"


class _DriverError(Exception):
    def __init__(self, conninfo: str) -> None:
        super().__init__("boom")
        self.conninfo = conninfo


def _raise_chained(inner: BaseException) -> ConnectorError:
    try:
        try:
            raise inner
        except BaseException as exc:
            raise ConnectorError("clean message") from exc
    except ConnectorError as err:
        return err


@pytest.mark.parametrize(
    "inner",
    [
        _DriverError(f"password={MARKER}"),  # an attribute of the cause
        UnicodeEncodeError("ascii", f"Bearer {MARKER}\u00e9", 0, 1, "bad"),  # .object
    ],
)
def test_it_finds_secrets_in_the_cause_chain(inner):
    err = _raise_chained(inner)
    with SecretScan() as scan:
        pass
    with pytest.raises(AssertionError, match="secret found"):
        scan.assert_clean(MARKER, err)


def test_it_finds_secrets_in_logs_of_any_logger_and_in_texts():
    with SecretScan() as scan:
        logging.getLogger("some.driver.deep").debug("connecting with %s", MARKER)
    with pytest.raises(AssertionError, match="secret found in log"):
        scan.assert_clean(MARKER)
    with SecretScan() as clean:
        logging.getLogger("some.driver.deep").debug("connecting with ***")
    clean.assert_clean(MARKER)
    with pytest.raises(AssertionError, match="secret found in text"):
        clean.assert_clean(MARKER, texts=[f"ok: http://h/?token={MARKER}"])


def test_it_finds_secrets_in_details_and_the_pickle():
    err = ConnectorError("clean", details={"url": f"http://h/?key={MARKER}"})
    with SecretScan() as scan:
        pass
    with pytest.raises(AssertionError):
        scan.assert_clean(MARKER, err)
