"""What the HTTP connector may retry: idempotency rules and urllib3's own retries (off).

The retrying itself is the core loop (``dictamesh_connectors.retry.retry_call``);
this module only decides *whether* a request is safe to repeat:

* RFC 9110 section 9.2.2: GET, HEAD, OPTIONS, TRACE, PUT and DELETE are
  idempotent; a client "SHOULD NOT automatically retry a request with a
  non-idempotent method unless it has some means to know that the request
  semantics are actually idempotent".
* draft-ietf-httpapi-idempotency-key-header: a POST or PATCH carrying an
  ``Idempotency-Key`` may be repeated; the server answers a repeat with the
  first outcome (or 409 while the first is still running).
* An explicit ``idempotent=True/False`` from the caller wins (GraphQL queries
  sent as POST pass ``True``).
"""

from __future__ import annotations

from collections.abc import Mapping

from urllib3.util.retry import Retry

__all__ = [
    "IDEMPOTENT_METHODS",
    "NO_DRIVER_RETRIES",
    "SAFE_METHODS",
    "is_idempotent",
]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that do not change server state (RFC 9110 section 9.2.1)."""

IDEMPOTENT_METHODS = SAFE_METHODS | {"PUT", "DELETE"}
"""Methods whose repetition is harmless (RFC 9110 section 9.2.2)."""

NO_DRIVER_RETRIES = Retry(total=0, connect=0, read=False, redirect=False, status=0, other=0)
"""urllib3 retries nothing and follows no redirect: the connector's loop is the only one."""


def is_idempotent(
    method: str,
    headers: Mapping[str, str] | None = None,
    override: bool | None = None,
    *,
    idempotency_header: str = "Idempotency-Key",
) -> bool:
    """Tell whether a request may be repeated after it was (possibly) received.

    Args:
        method: The HTTP method, upper case.
        headers: The request headers (a case-insensitive mapping, or any
            mapping whose keys use the canonical spelling).
        override: The caller's explicit answer; wins when not ``None``.
        idempotency_header: The header that makes any method idempotent.

    Returns:
        ``override`` if given, else whether the method is idempotent or the
        request carries a non-empty idempotency key.
    """
    if override is not None:
        return override
    if method in IDEMPOTENT_METHODS:
        return True
    return bool(headers and headers.get(idempotency_header))
