"""SOAP faults and zeep errors -> ``ConnectorError``: the SOAP client's one table.

Error mapping (SOAP 1.1 ``faultcode`` / SOAP 1.2 ``Code/Value``)::

    Client / Sender                 INVALID_REQUEST, permanent
    Server / Receiver, idempotent   UNAVAILABLE, transient (retried)
    Server / Receiver, otherwise    UNAVAILABLE, permanent, maybe_applied
    VersionMismatch, MustUnderstand PROTOCOL_ERROR, permanent
    DataEncodingUnknown             INVALID_REQUEST, permanent
    anything else / no code         PROTOCOL_ERROR, permanent (maybe_applied
                                    unless idempotent)
    HTTP status that is not a fault (401, 404, 429, 503 ...), refused or
    reset connections, timeouts     the HTTP connector's mapping
    zeep.exceptions.ValidationError INVALID_REQUEST (nothing was sent)
    other zeep errors (bad WSDL/XML) PROTOCOL_ERROR

Every fault becomes a ``SOAPFault`` (a ``ConnectorError``) whose ``details``
hold ``fault_code``, ``fault_subcodes``, ``fault_actor``, ``fault_detail``
(the ``<detail>`` XML as text) and ``operation``; all of it pickles.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from dictamesh_connectors.errors import ConnectorError, ErrorCode, ErrorRule, RetryHint, build_error

__all__ = ["CONNECTOR", "SOAPFault", "fault_error", "is_fault_response", "soap_error"]

CONNECTOR = "soap"

# Local part of the fault code (before any "." subcode of SOAP 1.1) -> (code, kind).
# kind: "client" = the request is wrong; "server" = the service failed while
# processing it (retry only idempotent operations); "protocol" = a SOAP-level mismatch.
_FAULT_CODES: dict[str, tuple[ErrorCode, str]] = {
    "client": (ErrorCode.INVALID_REQUEST, "client"),
    "sender": (ErrorCode.INVALID_REQUEST, "client"),
    "dataencodingunknown": (ErrorCode.INVALID_REQUEST, "client"),
    "server": (ErrorCode.UNAVAILABLE, "server"),
    "receiver": (ErrorCode.UNAVAILABLE, "server"),
    "versionmismatch": (ErrorCode.PROTOCOL_ERROR, "protocol"),
    "mustunderstand": (ErrorCode.PROTOCOL_ERROR, "protocol"),
}

# Status codes a SOAP fault travels with: SOAP 1.1 and the WS-I Basic Profile
# use 500; the SOAP 1.2 HTTP binding uses 400 for Sender faults. Any other
# non-2xx status is an HTTP-level failure (auth, proxy, throttling).
_FAULT_STATUSES = frozenset({400, 500})
_XML_MEDIA_TYPES = frozenset(
    {"text/xml", "application/soap+xml", "application/xml", "multipart/related"}
)
_MAX_DETAIL = 4000


class SOAPFault(ConnectorError):
    """The service answered with a SOAP fault.

    Attributes are data on ``details`` (so they pickle): ``fault_code``
    (e.g. ``"soap:Client"``), ``fault_subcodes``, ``fault_actor``,
    ``fault_detail`` (the detail element as XML text) and ``operation``.

    Example::

        try:
            soap.call("CreateOrder", order)
        except SOAPFault as err:
            print(err.fault_code, err.message, err.details["fault_detail"])
    """

    default_code = ErrorCode.INVALID_REQUEST

    @property
    def fault_code(self) -> str | None:
        """The fault code as the server wrote it (``soap:Server``, ``env:Sender``)."""
        code: str | None = self.details.get("fault_code")
        return code


def _local_name(code: str) -> str:
    """``"soap:Server.Database"`` or ``"{ns}Receiver"`` -> ``"server"`` / ``"receiver"``."""
    name = code.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    return name.split(".", 1)[0].strip().lower()


def _detail_text(detail: Any) -> str | None:
    if detail is None:
        return None
    if isinstance(detail, (str, bytes)):
        text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
    else:
        try:
            etree: Any = importlib.import_module("lxml.etree")  # zeep's XML library
            text = etree.tostring(detail, encoding="unicode")
        except Exception:  # not an element after all: keep what it says
            text = str(detail)
    return text[:_MAX_DETAIL]


def fault_error(
    fault: Any,
    *,
    operation: str,
    idempotent: bool,
    url: str = "",
    connector: str = CONNECTOR,
) -> SOAPFault:
    """Classify a zeep ``Fault`` (``message``, ``code``, ``actor``, ``detail``, ``subcodes``).

    Args:
        fault: The ``zeep.exceptions.Fault`` (anything with those attributes).
        operation: The operation name, for the message and ``details``.
        idempotent: Whether the caller declared the operation idempotent: a
            Server/Receiver fault is then transient, else permanent and
            ``maybe_applied``.
        url: The endpoint, for the message.
        connector: The name put on the error.

    Returns:
        The ``SOAPFault`` to raise (``from`` the zeep fault).
    """
    raw_code = getattr(fault, "code", None)
    code_text = str(raw_code) if raw_code is not None else None
    code, kind = _FAULT_CODES.get(
        _local_name(code_text) if code_text else "", (ErrorCode.PROTOCOL_ERROR, "unknown")
    )
    if kind == "client" or kind == "protocol":
        transient, maybe_applied = False, False
    elif kind == "server":
        # The service failed mid-way: it may have done part of the work.
        transient, maybe_applied = idempotent, not idempotent
    else:
        transient, maybe_applied = False, not idempotent
    subcodes = [str(s) for s in (getattr(fault, "subcodes", None) or [])]
    message = str(getattr(fault, "message", "") or "").strip() or "(no fault string)"
    where = f" on {url}" if url else ""
    err = build_error(
        f"{connector}: {operation}{where}: {code_text or 'fault'}: {message[:500]}",
        ErrorRule(code, transient, RetryHint.RETRY if transient else RetryHint.NONE),
        connector=connector,
        maybe_applied=maybe_applied,
        classes=_FAULT_CLASSES,
        details={
            "operation": operation,
            "fault_code": code_text,
            "fault_subcodes": subcodes,
            "fault_actor": getattr(fault, "actor", None),
            "fault_detail": _detail_text(getattr(fault, "detail", None)),
        },
    )
    assert isinstance(err, SOAPFault)
    return err


_FAULT_CLASSES: dict[ErrorCode, type[ConnectorError]] = dict.fromkeys(ErrorCode, SOAPFault)
"""``build_error``'s classes for faults: every one is a ``SOAPFault``."""


def is_fault_response(status: int, headers: Mapping[str, str]) -> bool:
    """Whether an HTTP answer carries a SOAP fault (zeep parses it) rather than an HTTP error."""
    media_type = str(headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()
    return status in _FAULT_STATUSES and media_type in _XML_MEDIA_TYPES


def soap_error(
    message: str, code: ErrorCode, *, maybe_applied: bool = False, details: Any = None
) -> ConnectorError:
    """A permanent error of the SOAP layer (bad arguments, no such operation, bad WSDL)."""
    return build_error(
        message,
        ErrorRule(code, False, RetryHint.NONE),
        connector=CONNECTOR,
        maybe_applied=maybe_applied,
        details=details,
    )
