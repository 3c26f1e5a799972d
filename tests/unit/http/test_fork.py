"""A real fork while another thread holds each module-level lock of the HTTP and SOAP code."""

import pytest

import dictamesh_connectors.http.connector as connector_module
from dictamesh_connectors.http.transport import redactor

from ...forking import held_by_another_thread, run_in_child


def free_in_child(lock):
    """Whether ``lock`` can be taken (a lock inherited held would fail here, not hang)."""
    if not lock.acquire(timeout=2):
        return False
    lock.release()
    return True


def holding(lock, child_work):
    """Fork while a thread holds ``lock``; the child runs ``child_work`` (which takes it)."""
    with held_by_another_thread(lock):
        return run_in_child(lambda: free_in_child(lock) and child_work())


def test_the_query_secret_redactor():
    def child():
        redactor.add("child-secret")
        return "child-secret" in redactor.secrets

    assert holding(redactor._lock, child) == 0


def test_the_insecure_warning_flag():
    def child():
        connector_module._insecure_warned = False
        connector_module._warn_insecure("https://h")
        return connector_module._insecure_warned

    assert holding(connector_module._insecure_lock, child) == 0


def test_the_soap_transport_class_lock():
    pytest.importorskip("zeep")
    import zeep

    from dictamesh_connectors.soap import transport

    assert holding(transport._transport_lock, lambda: transport.transport_class(zeep)) == 0
