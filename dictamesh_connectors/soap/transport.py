"""The zeep ``Transport`` the SOAP client uses: the shared document cache, the HTTP table.

zeep is imported lazily (the ``soap`` extra), so the class is built on first
use and kept for the process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dictamesh_connectors import _fork
from dictamesh_connectors.soap.errors import is_fault_response

if TYPE_CHECKING:
    import requests

    from dictamesh_connectors.soap.client import SOAPClient

__all__ = ["transport_class"]

_transport_class: type[Any] | None = None
_transport_lock = _fork.create_lock()  # a child gets it back unlocked


def transport_class(zeep: Any) -> type[Any]:
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
                self._owner._local.answered = True  # later errors: the answer's fault
                status = response.status_code
                if status < 300:
                    return response
                if is_fault_response(status, response.headers):
                    return response  # a SOAP fault: zeep parses it
                try:
                    raise self._owner._http_error(
                        status, response.headers, "POST", address, self._owner._idempotent()
                    )
                finally:
                    response.close()

        _transport_class = _Transport
        return _Transport
