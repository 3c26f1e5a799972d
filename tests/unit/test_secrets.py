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


def test_password_never_shown_by_the_registry_cli_or_config_errors(caplog, capsys):
    from dictamesh_connectors import InvalidConfigError, cli, registry
    from dictamesh_connectors.config import redact_url

    caplog.set_level(logging.DEBUG, logger="dictamesh_connectors")
    registry.register("fake", FakeConnector)
    texts = []
    try:
        for url, overrides in (
            (f"fake://alice:{PASSWORD}@db:notaport", {}),  # malformed port
            (f"fake://alice:{PASSWORD}@db", {"colour": "red"}),  # unknown option
            (f"fake://alice:{PASSWORD}@db", {"open_delay": "soon"}),  # bad value
            (f"nope://alice:{PASSWORD}@db", {}),  # unknown scheme
        ):
            with pytest.raises(InvalidConfigError) as info:
                registry.connect(url, **overrides)
            texts += [str(info.value), repr(info.value)]
            texts.append("".join(traceback.format_exception(info.value)))
        assert cli.main(["ping", f"fake://alice:{PASSWORD}@db"]) == 0
        assert cli.main(["ping", f"fake://alice:{PASSWORD}@db", "--option", "x=1"]) == 2
        captured = capsys.readouterr()
        texts += [captured.out, captured.err]
        texts.append(redact_url(f"fake://alice:{PASSWORD}@db"))
    finally:
        registry._registered.pop("fake", None)
    texts += [r.getMessage() for r in caplog.records]
    for text in texts:
        assert PASSWORD not in text
