"""Deprecated home of the SOAP client: use ``dictamesh_connectors.soap``.

The same classes, kept importable under their first name.
"""

from dictamesh_connectors.soap import SOAPClient, SOAPFault, fault_error

__all__ = ["SOAPClient", "SOAPFault", "fault_error"]
