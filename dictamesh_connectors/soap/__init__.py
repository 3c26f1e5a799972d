"""SOAP over the HTTP connector: WSDL-driven zeep calls on its pooled, authenticated session.

``SOAPClient`` sends every request (the WSDL and its imports included)
through ``HTTPConnector.session()``: the connector's connection pool, auth
(OAuth2 refresh included), TLS settings and default headers. Each call runs
as one in-flight operation of the HTTP connector, so ``disconnect()`` waits
for it, and it is retried by the core retry loop with the connector's
policy when, and only when, that is safe.

Modules: ``client`` (``SOAPClient``), ``errors`` (the fault table,
``SOAPFault``, ``fault_error``), ``transport`` (the zeep ``Transport`` on the
connector's session). ``dictamesh_connectors.http.soap`` is the same API
under its first name.

The error mapping (faults, HTTP failures, zeep errors) is drawn in ``soap.errors``.

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

from dictamesh_connectors.soap.client import SOAPClient
from dictamesh_connectors.soap.errors import SOAPFault, fault_error

__all__ = ["SOAPClient", "SOAPFault", "fault_error"]
