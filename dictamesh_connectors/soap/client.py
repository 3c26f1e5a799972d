"""``SOAPClient``: WSDL-driven zeep calls on the HTTP connector's pooled, authenticated session.

See the package docstring for how it runs and ``errors`` for the mapping.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork
from dictamesh_connectors._compat import require
from dictamesh_connectors.config import redact_url
from dictamesh_connectors.errors import ConnectorError, ErrorCode, InvalidConfigError
from dictamesh_connectors.http.errors import Translating, error_for_status
from dictamesh_connectors.retry import RetryPolicy
from dictamesh_connectors.soap.errors import CONNECTOR, fault_error, soap_error
from dictamesh_connectors.soap.transport import transport_class

if TYPE_CHECKING:
    from dictamesh_connectors.http.connector import HTTPConnector

__all__ = ["SOAPClient"]


# What zeep's parsing raises raw for a hostile answer (TypeError stays a
# programming error: zeep raises it for an argument of the wrong type).
_UNPARSEABLE = (ValueError, LookupError, AttributeError, RecursionError, OverflowError)


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
                raise soap_error(
                    f"{CONNECTOR}: the WSDL {self._wsdl_shown} has no operation {operation!r}",
                    ErrorCode.INVALID_REQUEST,
                ) from None
            except self._zeep.exceptions.Error as exc:
                raise self._zeep_error(exc, operation, idempotent, "") from exc
            self._local.answered = False
            try:
                return method(*args, **kwargs)
            except self._zeep.exceptions.Fault as exc:
                raise fault_error(
                    exc, operation=operation, idempotent=idempotent, url=self._address(proxy)
                ) from exc
            except self._zeep.exceptions.Error as exc:
                raise self._zeep_error(exc, operation, idempotent, self._address(proxy)) from exc
            except _UNPARSEABLE as exc:
                # zeep lets raw errors out of its parsing (an empty Body is an
                # IndexError); before the request went out, the arguments were wrong.
                if not self._local.answered:
                    raise soap_error(
                        f"{CONNECTOR}: {operation}: arguments do not fit the WSDL: "
                        f"{type(exc).__name__}",
                        ErrorCode.INVALID_REQUEST,
                    ) from exc
                raise soap_error(
                    f"{CONNECTOR}: {operation}: the answer from {self._address(proxy)} is not a "
                    f"usable SOAP response ({type(exc).__name__})",
                    ErrorCode.PROTOCOL_ERROR,
                    maybe_applied=not idempotent,
                ) from exc

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

    def _translating(self, method: str, url: str, idempotent: bool) -> Translating:
        """Map what the session raises (requests/urllib3/socket) with the HTTP table."""
        return Translating(
            method=method,
            url=url,
            idempotent=idempotent,
            connector=self.http.name,
            timeouts=self._timeout if isinstance(self._timeout, tuple) else None,
            secret_params=self.http._secret_params,
            secrets=self.http._query_secrets,  # an API key in the query
        )

    def _zeep_error(
        self, exc: Exception, operation: str, idempotent: bool, url: str
    ) -> ConnectorError:
        errors = self._zeep.exceptions
        if isinstance(exc, errors.ValidationError):
            return soap_error(
                f"{CONNECTOR}: {operation}: arguments do not match the WSDL: {exc}",
                ErrorCode.INVALID_REQUEST,
            )
        if isinstance(exc, errors.TransportError) and exc.status_code >= 400:
            return self._http_error(exc.status_code, {}, "POST", url or self.wsdl_url, idempotent)
        return soap_error(
            f"{CONNECTOR}: {operation}: {type(exc).__name__}: {str(exc)[:500]}",
            ErrorCode.PROTOCOL_ERROR,
            maybe_applied=not idempotent and isinstance(exc, errors.TransportError),
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
        transport = transport_class(self._zeep)(self, self.http.session())
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
            raise soap_error(
                f"{CONNECTOR}: cannot load the WSDL {self._wsdl_shown}: {str(exc)[:500]}",
                ErrorCode.PROTOCOL_ERROR,
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


class _ThreadState:
    """One thread's zeep client and the HTTP handle its session was made for."""

    __slots__ = ("client", "handle", "pid", "transport")

    def __init__(self, pid: int, handle: object, transport: Any, client: Any) -> None:
        self.pid = pid
        self.handle = handle
        self.transport = transport
        self.client = client
