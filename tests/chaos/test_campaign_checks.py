"""The campaign's checker, replay line and log capture, fed synthetic histories (no servers).

Each test here is the regression test of a defect of the campaign itself
(#14): a replay line without the fault count, excuses that cleared real
duplicates (HTTP: any keyed write; MongoDB: any write sent twice), and the
driver's log flood on stderr.
"""

from __future__ import annotations

import collections
import logging
import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from tests.chaos import campaign, checker
from tests.chaos.workload import Ledger

ROOT = Path(__file__).resolve().parents[2]


def _not_applied(connector: str) -> ConnectorError:
    return ConnectorError("connection lost", code=ErrorCode.CONNECTION_LOST, connector=connector)


# ------------------------------------------------------------------ replay


def _report(**kwargs: Any) -> campaign.Report:
    fields: dict[str, Any] = {"seed": 424242, "planned": 300, "digest": "d1g35t", "threads": 32}
    fields.update(kwargs)
    return campaign.Report(**fields)


def test_the_replay_line_names_the_fault_count():
    table = _report(proxies=True).render()
    assert "make chaos SEED=424242 FAULTS=300" in table
    assert "--seed 424242 --faults 300" in table


def _make_argv(command: str) -> list[str]:
    """The campaign's arguments that ``make`` runs for ``command`` (``make -n``: nothing runs)."""
    make = shutil.which("make")
    assert make is not None, "make is not installed"
    words = shlex.split(command)
    assert words[:2] == ["make", "chaos"], command
    out = subprocess.run(
        [make, "-n", "-s", "-C", str(ROOT), *words[1:]],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.replace("\\\n", " ")  # fmt: skip
    line = next(x for x in out.splitlines() if "-m tests.chaos.campaign" in x)
    return shlex.split(line.split("-m tests.chaos.campaign", 1)[1])


@pytest.mark.parametrize(
    "settings",
    [
        {"threads": 32, "pause": campaign.DEFAULT_PAUSE, "gap": campaign.DEFAULT_GAP,
         "proxies": True},
        {"threads": 8, "pause": 0.05, "gap": 0.25, "proxies": False},
    ],
)  # fmt: skip
def test_the_printed_replay_command_replays_every_setting(settings):
    """Report -> printed ``make chaos ...`` -> the Makefile -> argparse: the same run again."""
    report = _report(planned=137, **settings)
    for argv in (_make_argv(report.replay_command()), report.replay_args()):
        args = campaign.parse_args(argv)
        assert args.seed == 424242 and args.faults == 137
        assert args.threads == settings["threads"]
        assert args.pause == settings["pause"] and args.gap == settings["gap"]
        assert args.no_proxies is not settings["proxies"]
    assert report.replay_command() in report.render()


# -------------------------------------------------------------------- HTTP


def test_http_own_key_excuses_a_contradiction_but_never_a_duplicate_apply():
    ledger = Ledger()
    keyed = ("http", "keyed")
    # Failed with maybe_applied=False, applied once: the key makes a resend safe.
    ledger.failed(keyed, ["h0-1k"], _not_applied("http"))
    # Failed with maybe_applied=False, applied twice under its one key.
    ledger.failed(keyed, ["h0-2k"], _not_applied("http"))
    # Acknowledged, applied twice: the server broke the key's promise.
    ledger.ack(keyed, ["h0-3k"])
    ledger.ack(keyed, ["h0-4k"])
    applied = collections.Counter({"h0-1k": 1, "h0-2k": 2, "h0-3k": 2, "h0-4k": 1})
    check, auto = checker.http_checks(ledger, applied)
    assert check.store == keyed and auto.store == ("http", "auto_key")
    assert check.duplicates == ["h0-2k", "h0-3k"]
    assert check.contradicted == ["h0-2k"]  # applied twice: not what the key explains
    assert list(check.excused) == ["h0-1k"] and "contradicted" in check.excused["h0-1k"]
    assert check.lost == []


def test_http_auto_key_excuses_nothing():
    ledger = Ledger()
    ledger.failed(("http", "auto_key"), ["h0-1a"], _not_applied("http"))
    _, auto = checker.http_checks(ledger, collections.Counter({"h0-1a": 1}))
    assert auto.contradicted == ["h0-1a"] and auto.excused == {}


# ----------------------------------------------------------------- MongoDB


def _sent(sends: checker.MongoSends, command_name: str, uid: str, lsid: bytes | None,
          txn: int | None) -> None:  # fmt: skip
    command: dict[str, Any] = (
        {"insert": "inserts", "documents": [{"_id": uid}]}
        if command_name == "insert"
        else {"update": "upserts", "updates": [{"q": {"uid": uid}, "upsert": True}]}
    )
    if lsid is not None:
        command["lsid"] = {"id": lsid}
    if txn is not None:
        command["txnNumber"] = txn
    sends.started(SimpleNamespace(database_name=checker.MONGO_DB, command_name=command_name,
                                  command=command))  # fmt: skip


def test_mongo_retry_excuse_needs_the_same_uid_lsid_and_txn_number():
    session, other = b"\x01" * 16, b"\x02" * 16
    sends = checker.MongoSends()
    # Upserts, each applied twice:
    _sent(sends, "update", "m0-1", session, 7)  # pymongo's retry: the same identity
    _sent(sends, "update", "m0-1", session, 7)
    _sent(sends, "update", "m0-2", session, 8)  # sent again as a new write
    _sent(sends, "update", "m0-2", session, 9)
    _sent(sends, "update", "m0-3", session, 10)  # the same txnNumber in another session
    _sent(sends, "update", "m0-3", other, 10)
    _sent(sends, "update", "m0-4", None, None)  # no retryable-write identity at all
    _sent(sends, "update", "m0-4", None, None)
    _sent(sends, "update", "m0-5", session, 11)  # retried by pymongo, then sent anew
    _sent(sends, "update", "m0-5", session, 11)
    _sent(sends, "update", "m0-5", session, 12)
    # Inserts that failed with "duplicate key" (maybe_applied=False) yet are there:
    _sent(sends, "insert", "m1-1", session, 20)  # pymongo's retry
    _sent(sends, "insert", "m1-1", session, 20)
    _sent(sends, "insert", "m1-2", session, 21)  # a different txnNumber: a real duplicate
    _sent(sends, "insert", "m1-2", session, 22)
    # Another database's commands do not count.
    sends.started(SimpleNamespace(database_name="other", command_name="insert",
                                  command={"documents": [{"_id": "m1-3"}], "lsid": {"id": session},
                                           "txnNumber": 30}))  # fmt: skip
    _sent(sends, "insert", "m1-3", session, 30)

    ledger = Ledger()
    upserts = [f"m0-{i}" for i in range(1, 6)]
    ledger.ack(("mongodb", "upserts"), upserts)
    duplicate_key = ConnectorError("E11000", code=ErrorCode.CONFLICT, connector="mongodb")
    ledger.failed(("mongodb", "inserts"), ["m1-1", "m1-2", "m1-3"], duplicate_key)
    inserts = collections.Counter({"m1-1": 1, "m1-2": 1, "m1-3": 1})
    inserts_check, upserts_check = checker.mongo_checks(
        ledger, inserts, collections.Counter(dict.fromkeys(upserts, 1)), upserts, sends
    )
    assert list(upserts_check.excused) == ["m0-1"]
    assert upserts_check.duplicates == ["m0-2", "m0-3", "m0-4", "m0-5"]
    assert list(inserts_check.excused) == ["m1-1"]
    assert inserts_check.contradicted == ["m1-2", "m1-3"]


# -------------------------------------------------------------------- logs


def test_campaign_log_keeps_every_record_in_its_file_and_shows_only_a_few(tmp_path, caplog):
    from tests.chaos.logs import CampaignLog

    path = tmp_path / "campaign.log"
    pool = logging.getLogger("psycopg.pool")
    caplog.set_level(logging.WARNING)
    before = (logging.getLogger("psycopg").level, logging.getLogger("psycopg").propagate)
    with CampaignLog(path) as log:
        for n in range(500):
            pool.warning("discarding closed connection: %s", f"<conn {n}>")
        pool.info("connection given by %r", "pool-1")  # below the captured level
        logging.getLogger("psycopg").error("something else: %s", "new")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("dictamesh_connectors.kafka").exception("a delivery callback raised")
        logging.getLogger("elsewhere.other").warning("not captured: passes as before")
    assert (logging.getLogger("psycopg").level, logging.getLogger("psycopg").propagate) == before
    lines = path.read_text().splitlines()
    assert sum("discarding closed connection" in x for x in lines) == 500
    assert any("<conn 499>" in x for x in lines) and any("ValueError: boom" in x for x in lines)
    assert not any("connection given by" in x for x in lines)
    assert log.counts == {("psycopg.pool", "WARNING"): 500, ("psycopg", "ERROR"): 1,
                          ("dictamesh_connectors.kafka", "ERROR"): 1}  # fmt: skip
    shown = [r.getMessage() for r in caplog.records]
    assert sum("discarding closed connection" in m for m in shown) == log.shown_per_kind
    assert "something else: new" in shown and "a delivery callback raised" in shown
    assert "not captured: passes as before" in shown
    assert log.total == 502 and log.suppressed == 500 - log.shown_per_kind


def test_the_summary_counts_the_captured_log_records(tmp_path):
    from tests.chaos.logs import CampaignLog

    path = tmp_path / "campaign.log"
    with CampaignLog(path) as log:
        for _ in range(40):
            logging.getLogger("psycopg.pool").warning("discarding closed connection: %s", "x")
    report = _report(log=log.summary())
    table = report.render()
    assert str(path) in table
    line = next(x for x in table.splitlines() if "psycopg.pool" in x)
    assert line.split()[-1] == "40" and "WARNING" in line
