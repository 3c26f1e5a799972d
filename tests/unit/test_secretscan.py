"""The secret-scan helper itself: it must find a secret wherever one hides."""

from __future__ import annotations

import logging
import warnings

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


def test_it_finds_secrets_in_a_log_record_extra_field():
    with SecretScan() as scan:
        logging.getLogger("some.driver").info("connected", extra={"dsn": f"pw={MARKER}"})
    with pytest.raises(AssertionError, match="secret found in log"):
        scan.assert_clean(MARKER)
    with SecretScan() as clean:
        logging.getLogger("some.driver").info("connected", extra={"dsn": "pw=***"})
    clean.assert_clean(MARKER)


def test_it_finds_secrets_in_a_logger_that_does_not_propagate():
    original = logging.Logger.handle
    quiet = logging.getLogger("some.driver.quiet")
    quiet.propagate = False
    try:
        with SecretScan() as scan:
            quiet.warning("login as %s", MARKER)
        with pytest.raises(AssertionError, match="secret found in log"):
            scan.assert_clean(MARKER)
        quiet.disabled = True  # as logging.config's disable_existing_loggers leaves one
        with SecretScan() as disabled:
            quiet.error("login as %s", MARKER)
        assert quiet.disabled  # as it was
        with pytest.raises(AssertionError, match="secret found in log"):
            disabled.assert_clean(MARKER)
    finally:
        quiet.propagate, quiet.disabled = True, False
    assert logging.Logger.handle is original  # unwrapped again


def test_it_finds_secrets_in_warnings_even_ones_shown_before():
    def warn(text):
        warnings.warn(text, UserWarning, stacklevel=1)  # one location: "default" shows it once

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        warn(f"token {MARKER}")
        with SecretScan() as scan:
            warn(f"token {MARKER}")
    with pytest.raises(AssertionError, match="secret found in warning"):
        scan.assert_clean(MARKER)
    with warnings.catch_warnings(record=True) as passed_on, SecretScan() as clean:
        warnings.warn("token ***", UserWarning, stacklevel=1)
    clean.assert_clean(MARKER)
    assert [str(w.message) for w in passed_on] == ["token ***"]  # still reported


def test_an_error_filter_still_raises_inside_a_scan():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with SecretScan(), pytest.raises(DeprecationWarning):
            warnings.warn("old", DeprecationWarning, stacklevel=1)


def test_a_warning_ignored_outside_the_scan_is_caught_but_not_passed_on():
    with warnings.catch_warnings(record=True) as passed_on:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", message="token")
        with SecretScan() as scan:
            warnings.warn(f"token {MARKER}", UserWarning, stacklevel=1)
            warnings.warn("shown", UserWarning, stacklevel=1)
    assert [str(w.message) for w in passed_on] == ["shown"]
    with pytest.raises(AssertionError, match="secret found in warning"):
        scan.assert_clean(MARKER)
