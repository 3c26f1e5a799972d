"""The password never appears in a log record, message, repr or traceback."""

import logging
import traceback
import urllib.parse

import pytest

from dictamesh_connectors.errors import ConnectorError
from dictamesh_connectors.postgresql import PostgreSQLConfig, PostgreSQLConnector

from .conftest import unique

pytestmark = pytest.mark.integration


def texts_of(err):
    yield str(err)
    yield repr(err)
    yield "".join(traceback.format_exception(err))
    cause = err.__cause__
    yield repr(cause)
    yield repr(vars(cause))
    yield repr(getattr(cause, "pgconn", None))


def test_password_never_leaks(postgres_dsn, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours, psycopg, psycopg.pool
    real = PostgreSQLConfig.from_url(postgres_dsn)
    assert real.password is not None
    secrets = [real.password.get_secret_value(), "Wr0ng-Secret-Pa55word"]
    texts = []

    wrong = PostgreSQLConnector(real.evolve(password=secrets[1], application_name=unique("dmtest")))
    texts += [repr(wrong), repr(wrong.config), str(wrong.config), wrong.config.connection_string()]
    with pytest.raises(ConnectorError) as info:
        wrong.connect()
    texts += list(texts_of(info.value))

    db = PostgreSQLConnector(real.evolve(application_name=unique("dmtest")))
    db.connect()
    try:
        texts += [repr(db), repr(db.config), db.config.connection_string(), repr(db._handle)]
        with pytest.raises(ConnectorError) as info:
            db.query("SELECT * FROM no_such_table WHERE secret = %s", [secrets[0]])
        texts += list(texts_of(info.value))
        with pytest.raises(ConnectorError) as info:
            db.execute("INSERT INTO no_such_table VALUES (%s)", [secrets[0]])
        texts += list(texts_of(info.value))
    finally:
        db.disconnect()

    records = caplog.records
    assert records, "expected log records to search"
    texts += [r.getMessage() for r in records] + [repr(r.__dict__) for r in records]
    for record in records:
        if record.exc_info:
            texts.append("".join(traceback.format_exception(*record.exc_info)))
    for secret in secrets:
        for variant in (secret, urllib.parse.quote(secret, safe="")):
            leaks = [t for t in texts if variant in t]
            assert not leaks, leaks[0][:500]
