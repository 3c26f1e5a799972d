"""Real faults on SecantusDB through ``failCommand`` fail points (filtered by the test's appName).

Each mapping of errors.py that a server can produce is produced for real
here: closed connections, server error codes with and without error
labels, blocked connections (timeouts), a full pool, a real write conflict
between two transactions, and commits that fail transiently or with an
unknown result. Documents are counted afterwards: "retried" means "exists
exactly once".
"""

import logging
import threading
import time

import pytest

from dictamesh_connectors.errors import ConnectorError, ConnectorTimeoutError, ErrorCode, RetryHint

from .conftest import connected, fail_point

pytestmark = pytest.mark.integration


def test_a_closed_connection_on_a_retryable_write_is_retried_once(secantus, sdb):
    with fail_point(secantus, sdb.config.app_name, {"times": 1},
                    failCommands=["insert"], closeConnection=True):  # fmt: skip
        sdb.insert_one("c", {"_id": 1})
    assert sdb.count("c") == 1


def test_a_connection_closed_twice_is_lost_and_may_have_applied(secantus, sdb):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 2},
                   failCommands=["insert"], closeConnection=True),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": 1})
    err = info.value
    assert (err.code, err.transient, err.retry_hint) == (
        ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT,
    )  # fmt: skip
    assert err.maybe_applied
    assert sdb.count("c") == 0  # the connector still works: the driver reconnected


def test_a_closed_connection_on_a_read_is_retried_once(secantus, sdb):
    sdb.insert_one("c", {"_id": 1})
    with fail_point(secantus, sdb.config.app_name, {"times": 1},
                    failCommands=["find"], closeConnection=True):  # fmt: skip
        assert sdb.find_one("c", {"_id": 1}) == {"_id": 1}


# Server codes pymongo retries when the server labels them RetryableWriteError.
RETRYABLE_CODES = pytest.mark.parametrize(
    "code, expected",
    [
        (91, ErrorCode.UNAVAILABLE),
        (11600, ErrorCode.UNAVAILABLE),
        (10107, ErrorCode.UNAVAILABLE),
        (189, ErrorCode.UNAVAILABLE),
        (11602, ErrorCode.UNAVAILABLE),
        (13435, ErrorCode.UNAVAILABLE),
        (13436, ErrorCode.UNAVAILABLE),
        (262, ErrorCode.TIMEOUT),
    ],
)


@RETRYABLE_CODES
def test_retryable_codes_with_the_label_are_retried_once_and_applied_once(
    secantus, sdb, code, expected
):
    with fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                    errorCode=code, errorLabels=["RetryableWriteError"]):  # fmt: skip
        sdb.insert_one("c", {"_id": code})
    assert sdb.count("c", {"_id": code}) == 1


@RETRYABLE_CODES
def test_retryable_codes_without_the_label_fail_at_once_and_nothing_is_applied(
    secantus, sdb, code, expected
):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                   errorCode=code, errorLabels=[]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": code})
    err = info.value
    assert (err.code, err.transient, err.details["code"]) == (expected, True, code)
    assert not err.maybe_applied  # the server refused it and pymongo did not retry
    assert sdb.count("c") == 0


def test_a_retried_write_that_fails_again_may_have_applied(secantus, sdb):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 2}, failCommands=["insert"],
                   errorCode=91, errorLabels=["RetryableWriteError"]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": 1})
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.maybe_applied
    assert info.value.details["labels"] == ["RetryableWriteError"]


def test_update_many_is_not_retried_by_the_driver(secantus, sdb):
    sdb.insert_many("c", [{"n": 1}, {"n": 2}])
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["update"],
                   errorCode=91, errorLabels=["RetryableWriteError"]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.update_many("c", {}, {"$inc": {"n": 1}})
    assert info.value.code is ErrorCode.UNAVAILABLE and info.value.transient
    assert not info.value.maybe_applied  # not a retryable write: this one answer is the truth
    assert sorted(d["n"] for d in sdb.query("c")) == [1, 2]


def test_max_time_ms_expired_is_a_timeout(secantus, sdb):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["find"],
                   errorCode=50),
        pytest.raises(ConnectorTimeoutError) as info,
    ):  # fmt: skip
        sdb.query("c")
    assert info.value.code is ErrorCode.TIMEOUT and info.value.transient


def test_a_blocked_connection_is_a_timeout_with_timeout_and_socket_timeout(secantus, sdb):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["find"],
                   blockConnection=True, blockTimeMS=1500),
        pytest.raises(ConnectorTimeoutError) as info,
    ):  # fmt: skip
        sdb.query("c", timeout=0.3)
    assert info.value.transient and not info.value.maybe_applied
    with connected(secantus, socket_timeout=0.3, retry_writes=False) as db:
        with (
            fail_point(secantus, db.config.app_name, {"times": 1}, failCommands=["insert"],
                       blockConnection=True, blockTimeMS=1500),
            pytest.raises(ConnectorTimeoutError) as info,
        ):  # fmt: skip
            db.insert_one("c", {"_id": 1})
        # A write that timed out after it was sent: the server may apply it.
        assert info.value.maybe_applied and info.value.transient


def test_a_full_pool_is_resource_exhausted(secantus):
    with connected(secantus, max_pool_size=1, wait_queue_timeout=0.2) as db:
        db.insert_one("c", {})
        started = threading.Event()

        def hold_the_only_connection():
            started.set()
            db.query("c")

        with fail_point(secantus, db.config.app_name, {"times": 1}, failCommands=["find"],
                        blockConnection=True, blockTimeMS=1500):  # fmt: skip
            holder = threading.Thread(target=hold_the_only_connection)
            holder.start()
            started.wait()
            time.sleep(0.2)  # let it check the connection out (ordering, not a timing assertion)
            with pytest.raises(ConnectorError) as info:
                db.count("c")
            holder.join()
        assert (info.value.code, info.value.transient) == (ErrorCode.RESOURCE_EXHAUSTED, True)


def test_a_real_write_conflict_between_two_transactions(sdb):
    sdb.insert_one("accounts", {"_id": 1, "balance": 100})
    with sdb.transaction() as first:
        first.update_one("accounts", {"_id": 1}, {"$inc": {"balance": -10}})
        with pytest.raises(ConnectorError) as info, sdb.transaction() as second:
            second.update_one("accounts", {"_id": 1}, {"$inc": {"balance": -20}})
    err = info.value
    assert (err.code, err.transient, err.retry_hint) == (
        ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION,
    )  # fmt: skip
    assert err.details["code"] == 112 and "TransientTransactionError" in err.details["labels"]
    assert sdb.find_one("accounts", {"_id": 1})["balance"] == 90


def test_run_in_transaction_reruns_a_write_conflict_and_commits_once(secantus, sdb, caplog):
    caplog.set_level(logging.WARNING, logger="dictamesh_connectors.mongodb")
    runs = []

    def transfer(tx):
        runs.append(1)
        tx.insert_one("ledger", {"n": len(runs)})
        return len(runs)

    with fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                    errorCode=112, errorLabels=["TransientTransactionError"]):  # fmt: skip
        assert sdb.run_in_transaction(transfer) == 2
    assert sdb.count("ledger") == 1 and len(runs) == 2
    assert [r for r in caplog.records if "attempt 1" in r.getMessage()]


def test_a_write_conflict_without_the_label_is_not_rerun(secantus, sdb):
    runs = []
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                   errorCode=112, errorLabels=[]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.run_in_transaction(lambda tx: runs.append(tx.insert_one("ledger", {})))
    assert info.value.code is ErrorCode.SERIALIZATION_FAILURE and runs == []
    assert sdb.count("ledger") == 0


def test_a_commit_failing_with_a_transient_label_reruns_and_commits_exactly_once(secantus, sdb):
    runs = []

    def body(tx):
        runs.append(1)
        tx.insert_one("ledger", {"run": len(runs)})

    with fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["commitTransaction"],
                    errorCode=251, errorLabels=["TransientTransactionError"]):  # fmt: skip
        sdb.run_in_transaction(body)
    assert len(runs) == 2
    assert [d["run"] for d in sdb.query("ledger")] == [2]


def test_a_commit_with_an_unknown_result_is_retried_alone_and_applied_once(secantus, sdb, caplog):
    caplog.set_level(logging.WARNING, logger="dictamesh_connectors.mongodb")
    runs = []

    def body(tx):
        runs.append(1)
        tx.insert_one("ledger", {"run": len(runs)})

    # pymongo retries a commit once itself; the second failure reaches us
    # with UnknownTransactionCommitResult, and only the commit is retried.
    with fail_point(secantus, sdb.config.app_name, {"times": 2},
                    failCommands=["commitTransaction"], closeConnection=True):  # fmt: skip
        sdb.run_in_transaction(body)
    assert len(runs) == 1 and sdb.count("ledger") == 1
    assert [r for r in caplog.records if "retrying the commit" in r.getMessage()]


def test_the_transaction_block_commits_or_aborts_for_real(sdb):
    with sdb.transaction() as tx:
        tx.insert_one("c", {"_id": 1})
        assert sdb.count("c") == 0  # not visible outside before the commit
        assert tx.count("c") == 1
    assert sdb.count("c") == 1
    with pytest.raises(RuntimeError), sdb.transaction() as tx:
        tx.insert_one("c", {"_id": 2})
        raise RuntimeError("abort it")
    assert sdb.count("c") == 1
    with sdb.transaction() as tx:  # the connector verbs take session=tx too
        sdb.insert_one("c", {"_id": 3}, session=tx)
        assert sdb.find_one("c", {"_id": 3}, session=tx) == {"_id": 3}
        with sdb.stream("c", session=tx, batch_size=1) as docs:
            assert sorted(d["_id"] for d in docs) == [1, 3]
    assert sdb.count("c") == 2


def test_a_command_runs_inside_the_transaction_through_tx_execute(sdb):
    with sdb.transaction() as tx:
        tx.insert_one("c", {"_id": 1})
        # The command sees the transaction's own uncommitted write...
        reply = tx.execute({"find": "c", "filter": {}})
        assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [1]
        # ...which nothing outside the transaction sees yet.
        outside = sdb.execute({"find": "c", "filter": {}})
        assert outside["cursor"]["firstBatch"] == []
    assert sdb.count("c") == 1
    with pytest.raises(ConnectorError) as info:
        tx.execute("ping")
    assert info.value.code is ErrorCode.TRANSACTION_FAILED


def test_a_label_makes_a_permanent_code_transient_and_pymongo_retries_it(secantus, sdb):
    # 2 BadValue is permanent on its own; RetryableWriteError makes pymongo
    # retry it once, and the connector transient.
    with fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                    errorCode=2, errorLabels=["RetryableWriteError"]):  # fmt: skip
        sdb.insert_one("c", {"_id": 1})
    assert sdb.count("c") == 1
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 2}, failCommands=["insert"],
                   errorCode=2, errorLabels=["RetryableWriteError"]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": 2})
    err = info.value
    assert (err.code, err.transient, err.details["code"]) == (ErrorCode.INVALID_REQUEST, True, 2)
    assert err.maybe_applied  # the retried first try may have been applied
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                   errorCode=2, errorLabels=[]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": 3})
    assert (info.value.code, info.value.transient) == (ErrorCode.INVALID_REQUEST, False)
    assert sdb.count("c") == 1


def test_a_transient_transaction_label_on_a_permanent_code_reruns_the_function(secantus, sdb):
    runs = []

    def body(tx):
        runs.append(1)
        tx.insert_one("ledger", {"run": len(runs)})

    with fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                    errorCode=2, errorLabels=["TransientTransactionError"]):  # fmt: skip
        sdb.run_in_transaction(body)
    assert len(runs) == 2 and [d["run"] for d in sdb.query("ledger")] == [2]


def test_a_commit_failing_without_a_label_is_not_rerun(secantus, sdb):
    runs = []

    def body(tx):
        runs.append(1)
        tx.insert_one("ledger", {})

    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1},
                   failCommands=["commitTransaction"], errorCode=251, errorLabels=[]),
        pytest.raises(ConnectorError) as info,
    ):  # fmt: skip
        sdb.run_in_transaction(body)
    err = info.value
    assert (err.code, err.transient, err.details["code"]) == (
        ErrorCode.TRANSACTION_FAILED, False, 251,
    )  # fmt: skip
    assert runs == [1] and sdb.count("ledger") == 0


def test_a_write_concern_error_is_classified_by_its_code_and_may_have_applied(secantus, sdb):
    with (
        fail_point(secantus, sdb.config.app_name, {"times": 1}, failCommands=["insert"],
                   writeConcernError={"code": 64, "codeName": "WriteConcernFailed",
                                      "errmsg": "waiting for replication timed out",
                                      "errInfo": {"wtimeout": True}}),
        pytest.raises(ConnectorTimeoutError) as info,
    ):  # fmt: skip
        sdb.insert_one("c", {"_id": 1})
    err = info.value
    assert (err.code, err.transient, err.details["code"]) == (ErrorCode.TIMEOUT, True, 64)
    assert err.maybe_applied  # the primary applied it; the concern was not met
    assert sdb.count("c") == 1
