"""pymongo / bson exceptions -> ``ConnectorError``: the MongoDB table.

Every driver exception that leaves the MongoDB connector goes through
``translate()``, one context manager; ``classify()`` is its pure core. The
checks run most specific first: the client-side classes (pool, server
selection, network), then the server's error code, then pymongo's base
class. Error labels are the driver's own retry signals and win over the
code's transience. Programming errors (``TypeError``, ...) are not driver
exceptions and pass through untouched; a ``ValueError``, ``OverflowError``
or ``RecursionError`` raised inside the driver call is bson refusing a value.

Exception mapping (docs/mongodb.md repeats this table; a test checks both)::

    pymongo exception or server code            code                   transient  hint
    WaitQueueTimeoutError ..................... RESOURCE_EXHAUSTED     yes        RETRY
    ServerSelectionTimeoutError ............... UNAVAILABLE            yes        RETRY
    NotPrimaryError ........................... UNAVAILABLE            yes        RETRY
    NetworkTimeout ............................ TIMEOUT                yes        RETRY
    AutoReconnect, ConnectionFailure .......... CONNECTION_LOST        yes        RECONNECT
    DocumentTooLarge .......................... PAYLOAD_TOO_LARGE      no         NONE
    InvalidDocument, InvalidStringData ........ SERIALIZATION_ERROR    no         NONE
    OverflowError, ValueError (cannot encode) . SERIALIZATION_ERROR    no         NONE
    RecursionError (nested too deeply) ........ SERIALIZATION_ERROR    no         NONE
    InvalidBSON, ProtocolError ................ PROTOCOL_ERROR         no         NONE
    InvalidName, InvalidId .................... INVALID_REQUEST        no         NONE
    ConfigurationError, InvalidURI ............ INVALID_CONFIG         no         NONE
    InvalidOperation (client closed) .......... NOT_CONNECTED          no         NONE
    BulkWriteError with a duplicate key ....... CONSTRAINT_VIOLATION   no         NONE
    BulkWriteError (other) .................... EXEC_FAILED            no         NONE
    OperationFailure, WriteError, WriteConcernError, by server code:
    |  11000 11001 12582 DuplicateKey ......... CONSTRAINT_VIOLATION   no         NONE
    |  18 AuthenticationFailed ................ AUTH_FAILED            no         NONE
    |  13 Unauthorized ........................ PERMISSION_DENIED      no         NONE
    |  50 MaxTimeMSExpired .................... TIMEOUT                yes        RETRY
    |  262 ExceededTimeLimit, 89 .............. TIMEOUT                yes        RETRY
    |  64 WriteConcernTimeout ................. TIMEOUT                yes        RETRY
    |  91 189 10107 11600 11602 13435 13436 ... UNAVAILABLE            yes        RETRY
    |  10058 134 6 7 (not primary, no host) ... UNAVAILABLE            yes        RETRY
    |  9001 SocketException ................... CONNECTION_LOST        yes        RECONNECT
    |  112 WriteConflict ...................... SERIALIZATION_FAILURE  yes        RETRY_TRANSACTION
    |  251 256 257 263 (transaction state) .... TRANSACTION_FAILED     no         NONE
    |  462 433 449 450 (server overloaded) .... RESOURCE_EXHAUSTED     yes        RETRY
    |  43 CursorNotFound ...................... QUERY_FAILED           yes        RETRY
    |  26 27 NamespaceNotFound, IndexNotFound . NOT_FOUND              no         NONE
    |  48 85 86 (already exists, conflicts) ... CONFLICT               no         NONE
    |  121 DocumentValidationFailure .......... INVALID_INPUT          no         NONE
    |  2 9 14 20 40 72 73 79 100 (invalid) .... INVALID_REQUEST        no         NONE
    |  59 115 303 (unsupported) ............... UNSUPPORTED            no         NONE
    |  10334 BSONObjectTooLarge ............... PAYLOAD_TOO_LARGE      no         NONE
    |  (any other code) ....................... QUERY_FAILED / EXEC_FAILED (writes)
    any other PyMongoError .................... QUERY_FAILED / EXEC_FAILED (writes)
    error labels, on any of the above:
    |  TransientTransactionError .............. (its code)             yes        RETRY_TRANSACTION
    |  UnknownTransactionCommitResult ......... (its code)             yes        RETRY
    |  RetryableWriteError .................... (its code)             yes        RETRY

``maybe_applied`` (a write may have taken effect: retry it only if it is
idempotent) is set for a write outside a transaction that lost its
connection or timed out after the request was sent (NetworkTimeout,
AutoReconnect, MaxTimeMSExpired), for any WriteConcernError (the primary
applied the write), for a retryable write whose retry failed with a
RetryableWriteError (the first attempt may have been applied; pymongo
raises the last error) unless the server said NoWritesPerformed, and for a
commit whose outcome is unknown (UnknownTransactionCommitResult). A server
error that proves nothing ran (a duplicate key, a not-primary answer to a
write pymongo did not retry, server selection that never sent anything)
leaves it false. Inside a transaction nothing is applied before the commit.

``err.details`` holds ``code``, ``code_name`` and ``labels`` (sorted) when
the server sent them; a duplicate key adds ``key_pattern`` (field names
only) and ``index``; a BulkWriteError adds ``write_errors`` (``index``,
``code``, ``message`` per failed document), ``write_concern_errors`` and the
counts of what was applied (``inserted``, ``matched``, ``modified``,
``deleted``, ``upserted``). Messages read ``mongodb: <operation> on
<database>@<hosts>: <what>``; the server's text is kept with the values it
quotes (documents, strings, dup keys) masked, so values the user passed never
reach a message. The driver exception stays in ``__cause__``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import (
    ConnectorError,
    ErrorCode,
    ErrorRule,
    RetryHint,
    Translator,
    build_error,
)

if TYPE_CHECKING:
    import bson.errors
    import pymongo.errors
else:
    pymongo = require("pymongo", extra="mongodb", connector="mongodb")
    require("pymongo.errors", extra="mongodb", connector="mongodb")
    bson = require("bson", extra="mongodb", connector="mongodb")
    require("bson.errors", extra="mongodb", connector="mongodb")

__all__ = ["CODE_NAMES", "SERVER_CODES", "Rule", "classify", "mask", "translate"]

CONNECTOR = "mongodb"


Rule = ErrorRule
"""One row of the table: what an error becomes (the core's ``ErrorRule``)."""

_NONE = RetryHint.NONE
_RETRY = RetryHint.RETRY

# Client-side classes, checked in this order (subclasses first).
_POOL = Rule(ErrorCode.RESOURCE_EXHAUSTED, True, _RETRY)
_SELECTION = Rule(ErrorCode.UNAVAILABLE, True, _RETRY)
_NOT_PRIMARY = Rule(ErrorCode.UNAVAILABLE, True, _RETRY)
_NET_TIMEOUT = Rule(ErrorCode.TIMEOUT, True, _RETRY)
_LOST = Rule(ErrorCode.CONNECTION_LOST, True, RetryHint.RECONNECT)
_TOO_LARGE = Rule(ErrorCode.PAYLOAD_TOO_LARGE, False, _NONE)
_ENCODE = Rule(ErrorCode.SERIALIZATION_ERROR, False, _NONE)
_PROTOCOL = Rule(ErrorCode.PROTOCOL_ERROR, False, _NONE)
_BAD_REQUEST = Rule(ErrorCode.INVALID_REQUEST, False, _NONE)
_CONFIG = Rule(ErrorCode.INVALID_CONFIG, False, _NONE)
_CLOSED = Rule(ErrorCode.NOT_CONNECTED, False, _NONE)
_DUPLICATE = Rule(ErrorCode.CONSTRAINT_VIOLATION, False, _NONE)
_BULK = Rule(ErrorCode.EXEC_FAILED, False, _NONE)


def _codes(rule: Rule, *codes: int) -> dict[int, Rule]:
    return dict.fromkeys(codes, rule)


SERVER_CODES: dict[int, Rule] = {
    # A unique index refused the document (never transient, even in a transaction).
    **_codes(_DUPLICATE, 11000, 11001, 12582),
    # Wrong credentials; the server says no more, on purpose.
    18: Rule(ErrorCode.AUTH_FAILED, False, _NONE),
    # Authenticated (or not at all) but not allowed to run this command.
    13: Rule(ErrorCode.PERMISSION_DENIED, False, _NONE),
    # maxTimeMS / timeout= ran out on the server; the write concern wait timed out.
    **_codes(Rule(ErrorCode.TIMEOUT, True, _RETRY), 50, 262, 89, 64),
    # Not primary, stepping down, shutting down, no host: the topology is changing.
    **_codes(
        Rule(ErrorCode.UNAVAILABLE, True, _RETRY),
        91,
        189,
        10107,
        11600,
        11602,
        13435,
        13436,
        10058,
        134,
        6,
        7,
    ),
    # The server's socket to another node broke.
    9001: _LOST,
    # Two transactions wrote the same document: rerun the whole transaction.
    112: Rule(ErrorCode.SERIALIZATION_FAILURE, True, RetryHint.RETRY_TRANSACTION),
    # NoSuchTransaction, TransactionCommitted, TransactionTooLarge, TransactionTooOld
    # (labelled TransientTransactionError when a rerun can help).
    **_codes(Rule(ErrorCode.TRANSACTION_FAILED, False, _NONE), 251, 256, 257, 263),
    # Ingress rate limiting / admission control: back off.
    **_codes(Rule(ErrorCode.RESOURCE_EXHAUSTED, True, _RETRY), 462, 433, 449, 450),
    # The cursor timed out or was killed: re-issue the query.
    43: Rule(ErrorCode.QUERY_FAILED, True, _RETRY),
    # NamespaceNotFound, IndexNotFound.
    **_codes(Rule(ErrorCode.NOT_FOUND, False, _NONE), 26, 27),
    # NamespaceExists, IndexOptionsConflict, IndexKeySpecsConflict.
    **_codes(Rule(ErrorCode.CONFLICT, False, _NONE), 48, 85, 86),
    # A collection validator refused the document.
    121: Rule(ErrorCode.INVALID_INPUT, False, _NONE),
    # BadValue, FailedToParse, TypeMismatch, IllegalOperation, ConflictingUpdateOperators,
    # InvalidOptions, InvalidNamespace, UnknownReplWriteConcern, UnsatisfiableWriteConcern.
    **_codes(_BAD_REQUEST, 2, 9, 14, 20, 40, 72, 73, 79, 100),
    # CommandNotFound, CommandNotSupported, NotImplemented (stand-in servers).
    **_codes(Rule(ErrorCode.UNSUPPORTED, False, _NONE), 59, 115, 303),
    # BSONObjectTooLarge (server side).
    10334: _TOO_LARGE,
}
"""Server error code -> (code, transient, retry hint)."""

# Names of the codes above, for messages when the server sent no codeName
# (a write error inside a reply carries only the number).
CODE_NAMES: dict[int, str] = {
    2: "BadValue",
    6: "HostUnreachable",
    7: "HostNotFound",
    9: "FailedToParse",
    13: "Unauthorized",
    14: "TypeMismatch",
    18: "AuthenticationFailed",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    40: "ConflictingUpdateOperators",
    43: "CursorNotFound",
    48: "NamespaceExists",
    50: "MaxTimeMSExpired",
    59: "CommandNotFound",
    64: "WriteConcernTimeout",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    79: "UnknownReplWriteConcern",
    85: "IndexOptionsConflict",
    86: "IndexKeySpecsConflict",
    89: "NetworkTimeout",
    91: "ShutdownInProgress",
    100: "UnsatisfiableWriteConcern",
    112: "WriteConflict",
    115: "CommandNotSupported",
    121: "DocumentValidationFailure",
    134: "ReadConcernMajorityNotAvailableYet",
    189: "PrimarySteppedDown",
    251: "NoSuchTransaction",
    256: "TransactionCommitted",
    257: "TransactionTooLarge",
    262: "ExceededTimeLimit",
    263: "OperationNotSupportedInTransaction",
    303: "NotImplemented",
    433: "AdmissionQueueOverflow",
    449: "RateLimitExceeded",
    450: "PooledConnectionAcquisitionRejected",
    462: "IngressRequestRateLimitExceeded",
    9001: "SocketException",
    10058: "LegacyNotPrimary",
    10107: "NotWritablePrimary",
    10334: "BSONObjectTooLarge",
    11000: "DuplicateKey",
    11001: "DuplicateKey",
    11600: "InterruptedAtShutdown",
    11602: "InterruptedDueToReplStateChange",
    12582: "DuplicateKey",
    13435: "NotPrimaryNoSecondaryOk",
    13436: "NotPrimaryOrSecondary",
}

_TRANSIENT_TX = "TransientTransactionError"
_UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
_RETRYABLE_WRITE = "RetryableWriteError"
_NO_WRITES = "NoWritesPerformed"

# Values the server quotes inside its messages: documents, strings, dup keys.
_DUP_KEY = re.compile(r"\s*dup key:.*", re.S)
_BRACED = re.compile(r"\{.*\}", re.S)
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_INDEX_NAME = re.compile(r"\bindex: (\S+)")
_MAX_MESSAGE = 300


def mask(text: str) -> str:
    """A server message with the values it quotes replaced by ``***``.

    Example::

        >>> mask("E11000 duplicate key error collection: db.c index: x_1 dup key: { x: 1 }")
        'E11000 duplicate key error collection: db.c index: x_1'
    """
    text = _DUP_KEY.sub("", text)
    text = _BRACED.sub("{***}", text)
    text = _QUOTED.sub("'***'", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _server_message(exc: pymongo.errors.PyMongoError) -> str:
    details = getattr(exc, "details", None)
    if isinstance(details, dict) and isinstance(details.get("errmsg"), str):
        return mask(details["errmsg"])
    if isinstance(exc, pymongo.errors.OperationFailure):
        return mask(str(exc).split(", full error:", 1)[0])
    return mask(str(exc))


def _network_message(exc: BaseException) -> str:
    # ServerSelectionTimeoutError appends the whole topology description.
    text = str(exc).split(", Timeout:", 1)[0]
    return mask(text) or type(exc).__name__


def _labels(exc: pymongo.errors.PyMongoError) -> list[str]:
    return sorted(getattr(exc, "_error_labels", ()) or ())


def _duplicate_details(details: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(details, dict):
        return out
    pattern = details.get("keyPattern")
    if isinstance(pattern, dict):
        out["key_pattern"] = {str(k): v for k, v in pattern.items()}
    errmsg = details.get("errmsg")
    if isinstance(errmsg, str):
        found = _INDEX_NAME.search(errmsg)
        if found:
            out["index"] = found.group(1)
    return out


def _bulk_details(details: Any) -> dict[str, Any]:
    if not isinstance(details, dict):
        return {}
    write_errors = [
        {
            "index": item.get("index"),
            "code": item.get("code"),
            "message": mask(str(item.get("errmsg", ""))),
        }
        for item in details.get("writeErrors") or ()
        if isinstance(item, dict)
    ]
    concern_errors = [
        {"code": item.get("code"), "message": mask(str(item.get("errmsg", "")))}
        for item in details.get("writeConcernErrors") or ()
        if isinstance(item, dict)
    ]
    out: dict[str, Any] = {
        "write_errors": write_errors,
        "write_concern_errors": concern_errors,
    }
    for ours, theirs in (
        ("inserted", "nInserted"),
        ("matched", "nMatched"),
        ("modified", "nModified"),
        ("deleted", "nRemoved"),
        ("upserted", "nUpserted"),
    ):
        value = details.get(theirs)
        out[ours] = value if isinstance(value, int) else 0
    return out


def _fallback(write: bool) -> Rule:
    return Rule(ErrorCode.EXEC_FAILED if write else ErrorCode.QUERY_FAILED, False, _NONE)


def classify(
    exc: BaseException,
    *,
    operation: str = "query",
    target: str = "",
    write: bool = False,
    retried: bool = False,
    in_transaction: bool = False,
    commit: bool = False,
) -> ConnectorError | None:
    """Return the ``ConnectorError`` for driver exception ``exc``, or ``None``.

    ``None`` means ``exc`` is not a pymongo/bson exception (a ``TypeError``,
    a ``KeyboardInterrupt``, ...) and must propagate unchanged.

    Args:
        exc: The exception pymongo or bson raised.
        operation: What was being done ("insert_one", "connect", ...), for
            the message.
        target: ``database@hosts``, for the message.
        write: The operation changes data (decides ``maybe_applied`` and the
            fallback code).
        retried: pymongo retries this write once (a retryable write with
            ``retry_writes`` on): its final error may follow an applied first try.
        in_transaction: Inside a transaction nothing is applied before the commit.
        commit: The operation is ``commitTransaction``.
    """
    where = f"{CONNECTOR}: {operation} on {target}: " if target else f"{CONNECTOR}: {operation}: "
    if isinstance(exc, RecursionError):
        return _build(where + "a document is nested too deeply to encode", _ENCODE)
    if isinstance(exc, OverflowError):
        # bson: "MongoDB can only handle up to 8-byte ints".
        return _build(where + "an integer does not fit in 64 bits", _ENCODE)
    if isinstance(exc, ValueError) and not isinstance(exc, pymongo.errors.PyMongoError):
        # bson refuses a value it could encode only with a setting (a native
        # UUID without uuid_representation); pymongo refuses an argument.
        if "encode" in str(exc):
            return _build(where + "a value cannot be encoded as BSON", _ENCODE)
        return _build(where + "invalid argument: " + mask(str(exc)), _BAD_REQUEST)
    if not isinstance(exc, (pymongo.errors.PyMongoError, bson.errors.BSONError)):
        return None
    unknown_outcome = (write and not in_transaction) or commit
    details: dict[str, Any] = {}
    maybe_applied = False

    # ---- client side: pool, server selection, network (subclasses first).
    if isinstance(exc, pymongo.errors.ConnectionFailure):
        if isinstance(exc, pymongo.errors.WaitQueueTimeoutError):
            rule, what = _POOL, "no pooled connection free in wait_queue_timeout"
        elif isinstance(exc, pymongo.errors.ServerSelectionTimeoutError):
            rule, what = _SELECTION, "no suitable server: " + _network_message(exc)
        elif isinstance(exc, pymongo.errors.NotPrimaryError):
            rule, what = _NOT_PRIMARY, "not primary: " + _server_message(exc)
            details = _code_details(exc)
            maybe_applied = unknown_outcome and _retry_may_have_applied(exc, retried, commit)
        elif isinstance(exc, pymongo.errors.NetworkTimeout):
            rule, what = _NET_TIMEOUT, "network timeout: " + _network_message(exc)
            maybe_applied = unknown_outcome
        else:
            rule, what = _LOST, "connection lost: " + _network_message(exc)
            maybe_applied = unknown_outcome
        return _build(where + what, _labelled(rule, exc), details, maybe_applied, exc, commit)

    if isinstance(exc, pymongo.errors.DocumentTooLarge):
        return _build(where + "document too large: " + mask(str(exc)), _TOO_LARGE)
    if isinstance(exc, bson.errors.InvalidBSON):
        return _build(where + "the server sent invalid BSON", _PROTOCOL)
    if isinstance(exc, bson.errors.InvalidId):
        return _build(where + "invalid ObjectId", _BAD_REQUEST)
    if isinstance(exc, bson.errors.BSONError):
        # InvalidDocument's text quotes the value that could not be encoded.
        return _build(where + "a value cannot be encoded as BSON", _ENCODE)
    if isinstance(exc, pymongo.errors.ProtocolError):
        return _build(where + "protocol error: " + mask(str(exc)), _PROTOCOL)
    if isinstance(exc, pymongo.errors.InvalidName):
        return _build(where + "invalid name: " + mask(str(exc)), _BAD_REQUEST)
    if isinstance(exc, pymongo.errors.ConfigurationError):
        return _build(where + "configuration: " + mask(str(exc)), _CONFIG)
    if isinstance(exc, pymongo.errors.InvalidOperation):
        if "after close" in str(exc):
            return _build(where + "the client is closed", _CLOSED)
        return _build(where + "invalid operation: " + mask(str(exc)), _BAD_REQUEST)

    # ---- server side: bulk writes, then by code.
    if isinstance(exc, pymongo.errors.BulkWriteError):
        details = _bulk_details(exc.details)
        first = details["write_errors"][0] if details["write_errors"] else None
        codes = [e["code"] for e in details["write_errors"]]
        concern = details["write_concern_errors"]
        if any(SERVER_CODES.get(c) is _DUPLICATE for c in codes):
            rule = _DUPLICATE
        elif first is not None:
            rule = _BULK
        elif concern:
            rule = SERVER_CODES.get(concern[0]["code"], _BULK)
        else:
            rule = _BULK
        failed = len(details["write_errors"])
        text = f"{failed} of the documents failed" if failed else "write concern failed"
        if first is not None:
            text += f" (first: index {first['index']}, code {first['code']}: {first['message']})"
        maybe_applied = bool(concern) and unknown_outcome
        return _build(where + text, _labelled(rule, exc), details, maybe_applied, exc, commit)

    if isinstance(exc, pymongo.errors.OperationFailure):
        code = exc.code
        details = _code_details(exc)
        rule = SERVER_CODES.get(code, _fallback(write)) if code is not None else _fallback(write)
        if rule is _DUPLICATE:
            details.update(_duplicate_details(exc.details))
        name = details.get("code_name") or "error"
        what = f"{name} ({code}): {_server_message(exc)}" if code is not None else ""
        what = what or _server_message(exc) or type(exc).__name__
        if unknown_outcome:
            if isinstance(exc, pymongo.errors.WriteConcernError):
                maybe_applied = True  # the primary applied it; the concern failed
            elif code == 50 or rule.code is ErrorCode.CONNECTION_LOST:
                maybe_applied = True
            else:
                maybe_applied = _retry_may_have_applied(exc, retried, commit)
        return _build(where + what, _labelled(rule, exc), details, maybe_applied, exc, commit)

    # Any other PyMongoError (EncryptionError, CollectionInvalid, ...).
    return _build(where + mask(str(exc)), _labelled(_fallback(write), exc), details, False, exc)


def _code_details(exc: pymongo.errors.PyMongoError) -> dict[str, Any]:
    details: dict[str, Any] = {}
    raw = getattr(exc, "details", None)
    code = getattr(exc, "code", None)
    if code is None and isinstance(raw, dict):
        code = raw.get("code")
    if isinstance(code, int):
        details["code"] = code
    if isinstance(raw, dict) and isinstance(raw.get("codeName"), str):
        details["code_name"] = raw["codeName"]
    elif isinstance(code, int) and code in CODE_NAMES:
        details["code_name"] = CODE_NAMES[code]
    return details


def _retry_may_have_applied(exc: pymongo.errors.PyMongoError, retried: bool, commit: bool) -> bool:
    """A server error on the last try of a retried write: did an earlier try apply it?"""
    if commit:
        return exc.has_error_label(_UNKNOWN_COMMIT)
    return retried and exc.has_error_label(_RETRYABLE_WRITE) and not exc.has_error_label(_NO_WRITES)


def _labelled(rule: Rule, exc: pymongo.errors.PyMongoError) -> Rule:
    """The driver's own labels override the code's transience."""
    if exc.has_error_label(_TRANSIENT_TX):
        return Rule(rule.code, True, RetryHint.RETRY_TRANSACTION)
    if exc.has_error_label(_UNKNOWN_COMMIT) or exc.has_error_label(_RETRYABLE_WRITE):
        return Rule(rule.code, True, rule.hint if rule.transient else _RETRY)
    return rule


def _build(
    message: str,
    rule: Rule,
    details: dict[str, Any] | None = None,
    maybe_applied: bool = False,
    exc: pymongo.errors.PyMongoError | None = None,
    commit: bool = False,
) -> ConnectorError:
    details = dict(details or {})
    if exc is not None:
        labels = _labels(exc)
        if labels:
            details["labels"] = labels
        if commit and exc.has_error_label(_UNKNOWN_COMMIT):
            maybe_applied = True
    return build_error(
        message, rule, connector=CONNECTOR, maybe_applied=maybe_applied, details=details
    )


class translate(Translator):
    """Translate pymongo/bson exceptions raised in the block into ``ConnectorError``.

    ``ConnectorError`` and non-driver exceptions pass through unchanged; the
    driver exception is kept as ``__cause__`` (the core's ``Translator``).
    ``translate(operation, target="", *, write=, retried=, in_transaction=,
    commit=)`` takes ``classify``'s keywords and hands them to it.

    Example::

        with translate("insert_one", config.target, write=True, retried=True):
            collection.insert_one(document)

    Raises:
        ConnectorError: Translated from the pymongo/bson exception.
    """

    __slots__ = ()

    # The block runs only driver code: a ValueError or OverflowError there
    # is bson/pymongo refusing a value, never a bug of the caller's.
    driver_errors = (
        pymongo.errors.PyMongoError,
        bson.errors.BSONError,
        ValueError,
        OverflowError,
        RecursionError,
    )

    def classify(self, exc: Exception) -> ConnectorError | None:
        """The error for ``exc`` (see the module's table), with the block's keywords."""
        return classify(exc, **self.context)
