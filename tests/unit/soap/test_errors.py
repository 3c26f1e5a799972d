"""SOAP fault -> ConnectorError mapping, on real zeep ``Fault`` objects (no server)."""

from __future__ import annotations

import pickle
import sys
from typing import Any

import pytest

zeep = pytest.importorskip("zeep")
from lxml import etree  # noqa: E402 - after the importorskip

from dictamesh_connectors.errors import (  # noqa: E402
    ConnectorError,
    ErrorCode,
    MissingDependencyError,
    RetryHint,
)
from dictamesh_connectors.soap import SOAPClient, SOAPFault, fault_error  # noqa: E402


def fault(code: str | None, message: str = "it failed", **kwargs: Any) -> Any:
    return zeep.exceptions.Fault(message, code=code, **kwargs)


@pytest.mark.parametrize(
    "code",
    ["soap:Client", "SOAP-ENV:Client", "Client", "soap:Client.Authentication", "env:Sender"],
)
@pytest.mark.parametrize("idempotent", [True, False])
def test_client_and_sender_faults_are_permanent_invalid_request(
    code: str, idempotent: bool
) -> None:
    err = fault_error(fault(code), operation="CreateOrder", idempotent=idempotent)
    assert isinstance(err, SOAPFault)
    assert err.code is ErrorCode.INVALID_REQUEST
    assert not err.transient
    assert err.retry_hint is RetryHint.NONE
    assert not err.maybe_applied
    assert err.fault_code == code


@pytest.mark.parametrize("code", ["soap:Server", "SOAP-ENV:Server.Database", "env:Receiver"])
def test_server_faults_are_transient_only_for_idempotent_operations(code: str) -> None:
    retryable = fault_error(fault(code), operation="GetQuote", idempotent=True)
    assert retryable.code is ErrorCode.UNAVAILABLE
    assert retryable.transient and retryable.retry_hint is RetryHint.RETRY
    assert not retryable.maybe_applied

    final = fault_error(fault(code), operation="Transfer", idempotent=False)
    assert final.code is ErrorCode.UNAVAILABLE
    assert not final.transient and final.retry_hint is RetryHint.NONE
    assert final.maybe_applied


def test_qualified_clark_notation_codes_are_understood() -> None:
    err = fault_error(
        fault("{http://www.w3.org/2003/05/soap-envelope}Receiver"), operation="x", idempotent=True
    )
    assert err.code is ErrorCode.UNAVAILABLE and err.transient


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("soap:VersionMismatch", ErrorCode.PROTOCOL_ERROR),
        ("env:MustUnderstand", ErrorCode.PROTOCOL_ERROR),
        ("env:DataEncodingUnknown", ErrorCode.INVALID_REQUEST),
    ],
)
def test_protocol_level_faults(code: str, expected: ErrorCode) -> None:
    err = fault_error(fault(code), operation="x", idempotent=False)
    assert err.code is expected
    assert not err.transient and not err.maybe_applied


@pytest.mark.parametrize("code", [None, "", "tns:SomethingCustom"])
def test_unknown_fault_codes_are_permanent_and_maybe_applied_unless_idempotent(
    code: str | None,
) -> None:
    err = fault_error(fault(code, "Unknown fault occured"), operation="x", idempotent=False)
    assert err.code is ErrorCode.PROTOCOL_ERROR
    assert not err.transient and err.maybe_applied
    assert not fault_error(fault(code), operation="x", idempotent=True).maybe_applied


def test_message_names_operation_endpoint_code_and_fault_string() -> None:
    err = fault_error(
        fault("soap:Client", "Invalid order id"),
        operation="CreateOrder",
        idempotent=False,
        url="https://erp.example.com/soap",
    )
    assert err.message == (
        "soap: CreateOrder on https://erp.example.com/soap: soap:Client: Invalid order id"
    )
    assert err.connector == "soap"


def test_details_keep_subcodes_actor_and_detail_xml() -> None:
    detail = etree.fromstring("<detail><reason code='42'>bad sku</reason></detail>")
    err = fault_error(
        fault(
            "env:Sender",
            "bad",
            actor="urn:gateway",
            detail=detail,
            subcodes=[etree.QName("urn:x", "InvalidSku")],
        ),
        operation="CreateOrder",
        idempotent=False,
    )
    assert err.details["operation"] == "CreateOrder"
    assert err.details["fault_actor"] == "urn:gateway"
    assert err.details["fault_subcodes"] == ["{urn:x}InvalidSku"]
    assert '<reason code="42">bad sku</reason>' in err.details["fault_detail"]


def test_huge_fault_detail_is_truncated() -> None:
    detail = etree.fromstring(f"<detail>{'x' * 20000}</detail>")
    err = fault_error(fault("soap:Server", detail=detail), operation="x", idempotent=True)
    assert len(err.details["fault_detail"]) <= 4000


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_faults_pickle_with_every_attribute(protocol: int) -> None:
    detail = etree.fromstring("<detail><why>db down</why></detail>")
    err = fault_error(
        fault("soap:Server", "backend failed", detail=detail),
        operation="Transfer",
        idempotent=False,
        url="https://bank.example/soap",
    )
    clone = pickle.loads(pickle.dumps(err, protocol=protocol))
    assert type(clone) is SOAPFault
    assert clone.message == err.message
    assert (clone.code, clone.transient, clone.maybe_applied, clone.retry_hint) == (
        ErrorCode.UNAVAILABLE,
        False,
        True,
        RetryHint.NONE,
    )
    assert clone.fault_code == "soap:Server"
    assert clone.details == err.details


def test_missing_zeep_is_a_clear_missing_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zeep", None)  # makes "import zeep" fail
    with pytest.raises(MissingDependencyError) as info:
        SOAPClient(object(), "https://example.com/?wsdl")  # type: ignore[arg-type]
    assert "dictamesh-connectors[soap]" in info.value.message
    assert info.value.connector == "soap"
    assert isinstance(info.value, ConnectorError)
