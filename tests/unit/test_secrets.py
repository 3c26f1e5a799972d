"""Credentials never appear in log records, reprs, messages or tracebacks."""

import logging
import traceback

import pytest

from dictamesh_connectors.errors import ConnectorError

from .fakes import FakeConfig, FakeConnector, FakeDriverError

PASSWORD = "Sup3r-Secret-Pa55"


def test_password_never_logged_or_shown(caplog):
    caplog.set_level(logging.DEBUG, logger="dictamesh_connectors")
    c = FakeConnector(FakeConfig.from_url(f"fake://alice:{PASSWORD}@db", retry=2))
    texts = [repr(c), repr(c.config), str(c.config), c.config.connection_string()]
    c.connect()
    c.opened[0].broken = True
    c.work()
    c.opened[1].broken = True
    c.fail_open = FakeDriverError("down", lost=True)
    with pytest.raises(ConnectorError) as info:
        c.work()
    texts += [str(info.value), repr(info.value)]
    texts.append("".join(traceback.format_exception(info.value)))
    c.fail_open = None
    c.disconnect()
    texts += [r.getMessage() for r in caplog.records]
    texts += [str(r.__dict__) for r in caplog.records]
    assert caplog.records, "expected DEBUG/WARNING records to search"
    for text in texts:
        assert PASSWORD not in text
