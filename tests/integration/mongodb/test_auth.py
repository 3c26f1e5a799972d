"""Real SCRAM authentication on FerretDB: codes 18 and 13; the password never leaks."""

import logging
import pickle
import traceback
import urllib.parse

import pytest

from dictamesh_connectors.errors import AuthenticationError, ConnectorError, ErrorCode
from dictamesh_connectors.mongodb import MongoDBConfig, MongoDBConnector

from .conftest import Server, connected, unique

pytestmark = pytest.mark.integration

WRONG = "Wr0ng-Secret-Pa55word"


@pytest.fixture
def ferret(ferretdb_uri):
    return Server("ferretdb", ferretdb_uri, False)


def texts_of(err):
    yield str(err)
    yield repr(err)
    yield repr(err.details)
    yield repr(vars(err))
    yield "".join(traceback.format_exception(err))
    yield repr(pickle.loads(pickle.dumps(err)).__dict__)
    cause = err.__cause__
    while cause is not None:
        yield repr(cause)
        yield repr(getattr(cause, "details", None))
        cause = cause.__cause__ or cause.__context__


def test_wrong_credentials_are_auth_failed_and_the_connector_stays_reusable(ferret):
    config = ferret.config(password=WRONG)
    db = MongoDBConnector(config)
    with pytest.raises(AuthenticationError) as info:
        db.connect()
    err = info.value
    assert (err.code, err.transient, err.details["code"]) == (ErrorCode.AUTH_FAILED, False, 18)
    assert not db.is_connected
    good = MongoDBConnector(config.evolve(password=ferret.config().password))
    good.connect()
    good.disconnect()


def test_unauthenticated_commands_are_permission_denied(ferret):
    parts = urllib.parse.urlsplit(ferret.uri)
    anonymous = f"mongodb://{parts.hostname}:{parts.port}/?directConnection=true"
    # ping needs no authentication (as on mongod), so connect() succeeds...
    db = MongoDBConnector(MongoDBConfig.from_url(anonymous, app_name=unique("dmtest")))
    db.connect()
    try:
        with pytest.raises(ConnectorError) as info:
            db.find_one("c")
        assert (info.value.code, info.value.details["code"]) == (ErrorCode.PERMISSION_DENIED, 13)
        assert not info.value.transient
        with pytest.raises(ConnectorError) as info:
            db.insert_one("c", {"a": 1})
        assert info.value.code is ErrorCode.PERMISSION_DENIED and not info.value.maybe_applied
    finally:
        db.disconnect()


def test_the_password_never_leaks(ferret, caplog):
    caplog.set_level(logging.DEBUG)  # every logger: ours and pymongo's
    real = ferret.config().password.get_secret_value()
    texts = []
    wrong = MongoDBConnector(ferret.config(password=WRONG))
    texts += [repr(wrong), repr(wrong.config), str(wrong.config), wrong.config.connection_string()]
    with pytest.raises(ConnectorError) as info:
        wrong.connect()
    texts += list(texts_of(info.value))
    with connected(ferret) as db:
        texts += [repr(db), repr(db.config), db.config.connection_string(), repr(db._handle)]
        with pytest.raises(ConnectorError) as info:
            db.update_one("c", {"x": 1}, {"$bogus": {"y": 2}})
        texts += list(texts_of(info.value))
    unreachable = MongoDBConnector(
        ferret.config(hosts=["127.0.0.1:9"], server_selection_timeout=0.2)
    )
    with pytest.raises(ConnectorError) as info:
        unreachable.connect()
    texts += list(texts_of(info.value))
    records = caplog.records
    assert records
    texts += [r.getMessage() for r in records] + [repr(r.__dict__) for r in records]
    texts += ["".join(traceback.format_exception(*r.exc_info)) for r in records if r.exc_info]
    for secret in (real, WRONG):
        for variant in (secret, urllib.parse.quote(secret, safe="")):
            leaks = [t for t in texts if variant in t]
            assert not leaks, leaks[0][:500]
