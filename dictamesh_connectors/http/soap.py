"""SOAP over the HTTP connector: WSDL-driven zeep calls on its pooled, authenticated session.

``SOAPClient`` sends every request (the WSDL and its imports included)
through ``HTTPConnector.session()``: the connector's connection pool, auth
(OAuth2 refresh included), TLS settings and default headers. Each call runs
as one in-flight operation of the HTTP connector, so ``disconnect()`` waits
for it, and it is retried by the core retry loop with the connector's
policy when, and only when, that is safe.

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

Thread safety: zeep documents no thread-safety guarantee for its ``Client``
(it caches a bound service proxy, its ``Transport`` has mutable per-call
settings, and ``requests.Session`` is not documented thread-safe either), so
each thread gets its own zeep ``Client``, built on first use from a WSDL
fetched once and shared as bytes. The threads share the HTTP connector's
connection pool, which is thread-safe. After ``os.fork()`` the child builds
new clients (and sessions) instead of using the parent's.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.http.errors import (
    error_for_status,
    redact_url,
    scrub_secrets,
    translate_exception,
)
from dictamesh_connectors.retry import RetryPolicy

if TYPE_CHECKING:
    import requests

    from dictamesh_connectors.http.connector import HTTPConnector

__all__ = ["SOAPClient", "SOAPFault", "fault_error"]

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
    return SOAPFault(
        f"{connector}: {operation}{where}: {code_text or 'fault'}: {message[:500]}",
        code=code,
        transient=transient,
        maybe_applied=maybe_applied,
        connector=connector,
        details={
            "operation": operation,
            "fault_code": code_text,
            "fault_subcodes": subcodes,
            "fault_actor": getattr(fault, "actor", None),
            "fault_detail": _detail_text(getattr(fault, "detail", None)),
        },
    )


def _media_type(headers: Mapping[str, str]) -> str:
    return str(headers.get("Content-Type", "")).split(";", 1)[0].strip().lower()


class _ThreadState:
    """One thread's zeep client and the HTTP handle its session was made for."""

    __slots__ = ("client", "handle", "pid", "transport")

    def __init__(self, pid: int, handle: object, transport: Any, client: Any) -> None:
        self.pid = pid
        self.handle = handle
        self.transport = transport
        self.client = client


_transport_class: type[Any] | None = None
_transport_lock = _fork.create_lock()  # a child gets it back unlocked


def _make_transport_class(zeep: Any) -> type[Any]:
    """Build (once) the zeep ``Transport`` subclass; zeep is imported lazily."""
    global _transport_class
    with _transport_lock:
        if _transport_class is not None:
            return _transport_class

        class _Transport(zeep.Transport):  # type: ignore[misc]
            """Loads documents from the shared cache; maps non-fault HTTP errors."""

            def __init__(self, owner: SOAPClient, session: requests.Session) -> None:
                user_agent = session.headers.get("User-Agent")
                timeout = owner._timeout
                super().__init__(session=session, timeout=timeout, operation_timeout=timeout)
                if user_agent is not None:  # keep the connector's, not zeep's
                    session.headers["User-Agent"] = user_agent
                self._owner = owner

            def load(self, url: str) -> bytes:
                return self._owner._document(url, lambda: super(_Transport, self).load(url))

            def _load_remote_data(self, url: str) -> bytes:
                with self._owner._translating("GET", url, idempotent=True):
                    response = self.session.get(url, timeout=self.load_timeout)
                try:
                    if response.status_code >= 400:
                        raise self._owner._http_error(
                            response.status_code, response.headers, "GET", url, True
                        )
                    content: bytes = response.content
                    return content
                finally:
                    response.close()

            def post(self, address: str, message: Any, headers: Mapping[str, str]) -> Any:
                with self._owner._translating("POST", address, self._owner._idempotent()):
                    response = super().post(address, message, headers)
                status = response.status_code
                if status < 300:
                    return response
                if status in _FAULT_STATUSES and _media_type(response.headers) in _XML_MEDIA_TYPES:
                    return response  # a SOAP fault: zeep parses it
                try:
                    raise self._owner._http_error(
                        status, response.headers, "POST", address, self._owner._idempotent()
                    )
                finally:
                    response.close()

        _transport_class = _Transport
        return _Transport


class SOAPClient:
    """WSDL-driven SOAP calls (zeep) over an ``HTTPConnector``'s pooled, authenticated session.

    The WSDL (and the schemas it imports) is fetched through the connector
    on first use, once per client, then every thread builds its own zeep
    ``Client`` from those bytes (zeep's client is not documented
    thread-safe); all of them share the connector's pool, auth and TLS.

    Thread safety: one ``SOAPClient`` may be shared by every thread; ``call``
    is safe to run concurrently. It survives ``fork()``: a child builds its
    own zeep clients. It holds no connection of its own, so it needs no
    closing: disconnect the HTTP connector.

    Args:
        http: The ``HTTPConnector`` to send through (connected before the
            first call). Its credentials go only to its ``base_url``'s
            origin: put the WSDL and the service address there.
        wsdl_url: Where the WSDL is: an absolute URL fetched through the
            connector, or a local file path.
        service_name: The ``wsdl:service`` to use (default: the first one).
        port_name: The ``wsdl:port`` of that service (default: the first one),
            e.g. the SOAP 1.2 port of a service that has both.
        retry: Overrides the HTTP connector's retry policy for SOAP calls.
        timeout: Seconds for each HTTP exchange (default: the connector's
            ``(connect_timeout, timeout)``).

    Example::

        with HTTPConnector(HTTPConfig(base_url="https://erp.example.com")) as http:
            erp = SOAPClient(http, "https://erp.example.com/Orders?wsdl")
            total = erp.call("GetTotal", orderId=42, idempotent=True)
    """

    def __init__(
        self,
        http: HTTPConnector,
        wsdl_url: str,
        *,
        service_name: str | None = None,
        port_name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] | None = None,
    ) -> None:
        """Prepare the client (no I/O: the WSDL is fetched on first use).

        Raises:
            MissingDependencyError: zeep (the ``soap`` extra) is not installed.
            InvalidConfigError: ``wsdl_url`` is empty or not a string.
        """
        self._zeep = require("zeep", extra="soap", connector=CONNECTOR)
        if not isinstance(wsdl_url, str) or not wsdl_url.strip():
            raise InvalidConfigError(
                "soap: wsdl_url must be a non-empty string", connector=CONNECTOR
            )
        self.http = http
        self.wsdl_url = wsdl_url.strip()
        self.service_name = service_name
        self.port_name = port_name
        self._retry = retry
        self._timeout: float | tuple[float, float] = (
            timeout if timeout is not None else (http.config.connect_timeout, http.config.timeout)
        )
        self._lock = _fork.create_lock()  # guards _documents and _fetching (memory only)
        self._documents: dict[str, bytes] = {}
        self._fetching: dict[str, threading.Lock] = {}
        self._local = threading.local()
        self._pid = os.getpid()
        _fork.register_child_reset(self)
        # For messages and reprs: no userinfo, no key in the query.
        self._wsdl_shown = redact_url(self.wsdl_url, http._secret_params)

    def __repr__(self) -> str:
        return (
            f"<SOAPClient {self._wsdl_shown!r} service={self.service_name} port={self.port_name}>"
        )

    # ------------------------------------------------------------------ calls

    def call(self, operation: str, *args: Any, idempotent: bool = False, **kwargs: Any) -> Any:
        """Call ``operation`` with zeep's arguments and return its result.

        ``args``/``kwargs`` are the operation's input parts, exactly as for
        ``zeep.Client.service.<operation>(...)``; the result is what zeep
        returns (a value, or an object for several output parts). The
        keyword ``idempotent`` is this method's: pass an input part of that
        name positionally.

        Args:
            operation: The operation name in the WSDL.
            *args: Positional input parts.
            idempotent: Declare that repeating the call is harmless: it is
                then retried on transient failures, Server/Receiver faults
                included. Otherwise only failures that prove the request
                was not processed (a refused connection, 429/503) are retried.
            **kwargs: Input parts by name.

        Returns:
            The operation's result as zeep deserialises it.

        Raises:
            SOAPFault: The service answered with a fault (mapping in the
                module docstring).
            ConnectorError: The HTTP exchange failed (the HTTP connector's
                mapping), the WSDL could not be loaded or parsed
                (``PROTOCOL_ERROR``), the arguments do not match the WSDL or
                ``operation`` does not exist (``INVALID_REQUEST``).
            NotConnectedError: The HTTP connector is not connected.
            TypeError: Unknown keyword or too many positional arguments, as
                zeep raises it (a programming error, passed through).
        """
        if self._pid != os.getpid():  # the second net, for a fork that bypassed the hook
            self._after_fork_in_child()

        def attempt(handle: object) -> Any:
            state = self._state(handle)
            self._local.idempotent = idempotent
            try:
                proxy = state.client.service
                method = proxy[operation]
            except AttributeError:
                raise ConnectorError(
                    f"{CONNECTOR}: the WSDL {self._wsdl_shown} has no operation {operation!r}",
                    code=ErrorCode.INVALID_REQUEST,
                    connector=CONNECTOR,
                ) from None
            except self._zeep.exceptions.Error as exc:
                raise self._zeep_error(exc, operation, idempotent, "") from exc
            try:
                return method(*args, **kwargs)
            except self._zeep.exceptions.Fault as exc:
                raise fault_error(
                    exc, operation=operation, idempotent=idempotent, url=self._address(proxy)
                ) from exc
            except self._zeep.exceptions.Error as exc:
                raise self._zeep_error(exc, operation, idempotent, self._address(proxy)) from exc

        return self.http._run(
            attempt,
            idempotent=idempotent,
            retry=self._retry,
            description=f"soap {operation}",
        )

    # ---------------------------------------------------------------- helpers

    def _idempotent(self) -> bool:
        return bool(getattr(self._local, "idempotent", False))

    def _address(self, proxy: Any) -> str:
        options = getattr(proxy, "_binding_options", None) or {}
        return str(options.get("address", ""))

    def _http_error(
        self, status: int, headers: Mapping[str, str], method: str, url: str, idempotent: bool
    ) -> ConnectorError:
        return error_for_status(
            status,
            headers,
            method=method,
            url=url,
            connector=self.http.name,
            idempotent=idempotent,
            secret_params=self.http._secret_params,
        )

    @contextlib.contextmanager
    def _translating(self, method: str, url: str, idempotent: bool) -> Iterator[None]:
        """Map what the session raises (requests/urllib3/socket) with the HTTP table."""
        try:
            yield
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            scrub_secrets(exc, self.http._query_secrets)  # an API key in the query
            timeouts = self._timeout if isinstance(self._timeout, tuple) else None
            raise translate_exception(
                exc,
                method=method,
                url=url,
                idempotent=idempotent,
                connector=self.http.name,
                timeouts=timeouts,
                secret_params=self.http._secret_params,
            ) from exc

    def _zeep_error(
        self, exc: Exception, operation: str, idempotent: bool, url: str
    ) -> ConnectorError:
        errors = self._zeep.exceptions
        if isinstance(exc, errors.ValidationError):
            return ConnectorError(
                f"{CONNECTOR}: {operation}: arguments do not match the WSDL: {exc}",
                code=ErrorCode.INVALID_REQUEST,
                connector=CONNECTOR,
            )
        if isinstance(exc, errors.TransportError) and exc.status_code >= 400:
            return self._http_error(exc.status_code, {}, "POST", url or self.wsdl_url, idempotent)
        return ConnectorError(
            f"{CONNECTOR}: {operation}: {type(exc).__name__}: {str(exc)[:500]}",
            code=ErrorCode.PROTOCOL_ERROR,
            maybe_applied=not idempotent and isinstance(exc, errors.TransportError),
            connector=CONNECTOR,
        )

    def _after_fork_in_child(self) -> None:
        """In a forked child: no fetch in flight (its thread is gone), this pid recorded."""
        if self._pid == os.getpid():
            return
        self._lock._at_fork_reinit()  # type: ignore[attr-defined]  # the hook did; a bypass did not
        self._fetching = {}
        self._pid = os.getpid()

    def _document(self, url: str, fetch: Any) -> bytes:
        """The bytes of ``url`` (WSDL or schema), fetched once per ``SOAPClient``.

        Single flight: threads that need the same document while it is being
        fetched wait for that fetch (on a per-URL lock, never ``_lock``)
        instead of each sending their own request.
        """
        with self._lock:  # _documents, _fetching
            cached = self._documents.get(url)
            if cached is not None:
                return cached
            flight = self._fetching.setdefault(url, _fork.create_lock())
        with flight:  # network I/O under the per-URL lock only
            with self._lock:  # _documents
                cached = self._documents.get(url)
            if cached is not None:
                return cached  # another thread fetched it while we waited
            content: bytes = fetch()
            with self._lock:  # _documents, _fetching
                self._documents[url] = content
                self._fetching.pop(url, None)
            return content

    def _state(self, handle: object) -> _ThreadState:
        """This thread's zeep client, rebuilt after fork and re-sessioned after a reconnect."""
        state: _ThreadState | None = getattr(self._local, "state", None)
        pid = os.getpid()
        if state is not None and state.pid == pid:
            if state.handle is not handle:
                # The connector reopened its pool: move to a session on the new one.
                state.transport.session = self.http.session()
                state.handle = handle
            return state
        transport = _make_transport_class(self._zeep)(self, self.http.session())
        try:
            client = self._zeep.Client(
                self.wsdl_url,
                transport=transport,
                service_name=self.service_name,
                port_name=self.port_name,
            )
            client.service  # noqa: B018 - binds now, so a bad service/port name fails here
        except ValueError as exc:
            raise InvalidConfigError(
                f"{CONNECTOR}: {self._wsdl_shown}: {exc} (service_name={self.service_name!r}, "
                f"port_name={self.port_name!r})",
                connector=CONNECTOR,
            ) from exc
        except self._zeep.exceptions.Error as exc:
            raise ConnectorError(
                f"{CONNECTOR}: cannot load the WSDL {self._wsdl_shown}: {str(exc)[:500]}",
                code=ErrorCode.PROTOCOL_ERROR,
                connector=CONNECTOR,
            ) from exc
        except OSError as exc:  # a local WSDL file (remote fetches are translated already)
            raise InvalidConfigError(
                f"{CONNECTOR}: cannot read the WSDL file {self._wsdl_shown}: "
                f"{exc.strerror or type(exc).__name__}",
                connector=CONNECTOR,
            ) from exc
        state = _ThreadState(pid, handle, transport, client)
        self._local.state = state
        return state
