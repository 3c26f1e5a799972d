"""A real SOAP service for the integration tests: a document/literal WSDL and a WSGI endpoint.

It listens on 127.0.0.1, port 0, over HTTPS (a ``trustme`` certificate) or
plain HTTP, and every request, the WSDL included, needs HTTP Basic auth: a
client that fetched the WSDL and called an operation used the authenticated
session. The service has a SOAP 1.1 port and a SOAP 1.2 port (same
operations):

* ``Add(a, b) -> result``;
* ``WhoAmI() -> user``: the Basic-auth user name the server saw;
* ``Reject(reason)``: a Client (1.1) / Sender (1.2) fault;
* ``Explode(key, failures) -> attempts``: a Server (1.1) / Receiver (1.2)
  fault for the first ``failures`` calls with that ``key``, then the number
  of calls it took.

Request counts per operation are kept server-side (``count(name)``), and
``script()`` queues canned HTTP responses (a 503 HTML page from a "proxy").
"""

from __future__ import annotations

import base64
import collections
import ssl
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from typing import Any

from ..http.servers import ServiceServer, WSGIApp

TNS = "urn:dictamesh:test:calculator"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
USER = "soap-user"
PASSWORD = "soap-pw"

# operation -> (input parts, output parts); every part is (name, xsd type).
OPERATIONS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "Add": ([("a", "xsd:int"), ("b", "xsd:int")], [("result", "xsd:int")]),
    "WhoAmI": ([], [("user", "xsd:string")]),
    "Reject": ([("reason", "xsd:string")], [("ok", "xsd:boolean")]),
    "Explode": ([("key", "xsd:string"), ("failures", "xsd:int")], [("attempts", "xsd:int")]),
}


def _element(name: str, parts: list[tuple[str, str]]) -> str:
    inner = "".join(f'<xsd:element name="{p}" type="{t}"/>' for p, t in parts)
    return (
        f'<xsd:element name="{name}"><xsd:complexType><xsd:sequence>{inner}'
        "</xsd:sequence></xsd:complexType></xsd:element>"
    )


def build_wsdl(soap11_url: str, soap12_url: str) -> str:
    """The service's WSDL 1.1 document (document/literal wrapped)."""
    types = "".join(
        _element(op, inp) + _element(op + "Response", out) for op, (inp, out) in OPERATIONS.items()
    )
    messages = "".join(
        f'<wsdl:message name="{op}Input"><wsdl:part name="parameters" element="tns:{op}"/>'
        f'</wsdl:message><wsdl:message name="{op}Output">'
        f'<wsdl:part name="parameters" element="tns:{op}Response"/></wsdl:message>'
        for op in OPERATIONS
    )
    port_ops = "".join(
        f'<wsdl:operation name="{op}"><wsdl:input message="tns:{op}Input"/>'
        f'<wsdl:output message="tns:{op}Output"/></wsdl:operation>'
        for op in OPERATIONS
    )

    def binding(prefix: str) -> str:
        return "".join(
            f'<wsdl:operation name="{op}"><{prefix}:operation soapAction="{TNS}#{op}"/>'
            f'<wsdl:input><{prefix}:body use="literal"/></wsdl:input>'
            f'<wsdl:output><{prefix}:body use="literal"/></wsdl:output></wsdl:operation>'
            for op in OPERATIONS
        )

    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="Calculator" targetNamespace="{TNS}"
    xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:soap12="http://schemas.xmlsoap.org/wsdl/soap12/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:tns="{TNS}">
  <wsdl:types>
    <xsd:schema targetNamespace="{TNS}" elementFormDefault="qualified">{types}</xsd:schema>
  </wsdl:types>
  {messages}
  <wsdl:portType name="CalculatorPortType">{port_ops}</wsdl:portType>
  <wsdl:binding name="CalculatorSoap11" type="tns:CalculatorPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    {binding("soap")}
  </wsdl:binding>
  <wsdl:binding name="CalculatorSoap12" type="tns:CalculatorPortType">
    <soap12:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    {binding("soap12")}
  </wsdl:binding>
  <wsdl:service name="CalculatorService">
    <wsdl:port name="CalculatorSoap11Port" binding="tns:CalculatorSoap11">
      <soap:address location="{soap11_url}"/>
    </wsdl:port>
    <wsdl:port name="CalculatorSoap12Port" binding="tns:CalculatorSoap12">
      <soap12:address location="{soap12_url}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""


def _envelope(namespace: str, body: str, prefix: str = "env", extra: str = "") -> bytes:
    """A SOAP envelope (1.1 or 1.2 by ``namespace``) around ``body``."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?><{prefix}:Envelope xmlns:{prefix}="{namespace}"'
        f"{extra}><{prefix}:Body>{body}</{prefix}:Body></{prefix}:Envelope>"
    ).encode()


def _fault11(code: str, message: str) -> bytes:
    return _envelope(
        SOAP11_ENV,
        f"<soap:Fault><faultcode>soap:{code}</faultcode><faultstring>{message}</faultstring>"
        f"<detail><reason>{message}</reason></detail></soap:Fault>",
        prefix="soap",
    )


def _fault12(code: str, message: str) -> bytes:
    return _envelope(
        SOAP12_ENV,
        f"<env:Fault><env:Code><env:Value>env:{code}</env:Value></env:Code>"
        f'<env:Reason><env:Text xml:lang="en">{message}</env:Text></env:Reason></env:Fault>',
    )


class SOAPTestServer(ServiceServer):
    """The calculator service on 127.0.0.1:<random port>, in a thread.

    ``count(name)`` counts requests by operation name, or "wsdl"; arguments
    as ``ServiceServer``.
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        middleware: Callable[[WSGIApp], WSGIApp] | None = None,
    ) -> None:
        super().__init__(ssl_context, middleware)
        self.explode_calls: collections.Counter[str] = collections.Counter()  # guarded by _lock
        self.wsdl_url = f"{self.base_url}/calculator?wsdl"
        self._wsdl = build_wsdl(f"{self.base_url}/soap11", f"{self.base_url}/soap12").encode()

    def script(
        self, status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Answer the next request with this canned response instead of the service."""
        with self._lock:
            self._script.append((status, body, list(headers)))

    def _authorized(self, environ: dict[str, Any]) -> bool:
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        return environ.get("HTTP_AUTHORIZATION", "") == f"Basic {expected}"

    def _app(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if not self._authorized(environ):
            start_response(
                "401 Unauthorized",
                [("WWW-Authenticate", 'Basic realm="soap"'), ("Content-Type", "text/plain")],
            )
            return [b"authentication required"]
        if environ["REQUEST_METHOD"] == "GET" and path == "/calculator":
            with self._lock:
                self.requests["wsdl"] += 1
            start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
            return [self._wsdl]
        if environ["REQUEST_METHOD"] == "GET" and path == "/not-xml":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"this is not a WSDL"]
        if environ["REQUEST_METHOD"] != "POST" or path not in ("/soap11", "/soap12"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found"]
        soap12 = path == "/soap12"
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        envelope_ns = SOAP12_ENV if soap12 else SOAP11_ENV
        body = ET.fromstring(raw).find(f"{{{envelope_ns}}}Body")
        operation = body[0] if body is not None and len(body) else None
        name = operation.tag.split("}", 1)[-1] if operation is not None else "?"
        with self._lock:
            self.requests[name] += 1
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            status, content, headers = scripted
            start_response(f"{status} Scripted", headers)
            return [content]
        content_type = (
            "application/soap+xml; charset=utf-8" if soap12 else "text/xml; charset=utf-8"
        )

        def arg(tag: str) -> str:
            assert operation is not None
            return operation.findtext(f"{{{TNS}}}{tag}") or ""

        def respond(status: str, payload: bytes) -> list[bytes]:
            start_response(status, [("Content-Type", content_type)])
            return [payload]

        def result(values: dict[str, str]) -> list[bytes]:
            inner = "".join(f"<tns:{k}>{v}</tns:{k}>" for k, v in values.items())
            reply = f"<tns:{name}Response>{inner}</tns:{name}Response>"
            return respond("200 OK", _envelope(envelope_ns, reply, extra=f' xmlns:tns="{TNS}"'))

        if name == "Add":
            try:
                return result({"result": str(int(arg("a")) + int(arg("b")))})
            except ValueError:
                if soap12:
                    return respond("400 Bad Request", _fault12("Sender", "a and b must be ints"))
                return respond("500 Internal Server Error", _fault11("Client", "bad int"))
        if name == "WhoAmI":
            return result({"user": USER})
        if name == "Reject":
            message = f"rejected: {arg('reason')}"
            if soap12:  # SOAP 1.2 HTTP binding: a Sender fault is a 400
                return respond("400 Bad Request", _fault12("Sender", message))
            return respond("500 Internal Server Error", _fault11("Client", message))
        if name == "Explode":
            key = arg("key")
            with self._lock:
                self.explode_calls[key] += 1
                calls = self.explode_calls[key]
            if calls <= int(arg("failures")):
                message = f"backend exploded (call {calls})"
                payload = _fault12("Receiver", message) if soap12 else _fault11("Server", message)
                return respond("500 Internal Server Error", payload)
            return result({"attempts": str(calls)})
        fault = _fault12("Sender", "unknown operation") if soap12 else _fault11("Client", "unknown")
        return respond("500 Internal Server Error", fault)
