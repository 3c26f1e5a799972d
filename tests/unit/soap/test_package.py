"""The soap package's public surface (and its first name, ``dictamesh_connectors.http.soap``)."""

from __future__ import annotations

import dictamesh_connectors.http.soap as old_name
import dictamesh_connectors.soap as soap_package
from tests.docstrings import missing_docstrings


def test_all_is_sorted_and_complete() -> None:
    assert (
        soap_package.__all__
        == sorted(soap_package.__all__)
        == [
            "SOAPClient",
            "SOAPFault",
            "fault_error",
        ]
    )


def test_the_first_name_is_the_same_api() -> None:
    assert old_name.__all__ == soap_package.__all__
    for name in soap_package.__all__:
        assert getattr(old_name, name) is getattr(soap_package, name)


def test_every_public_name_and_method_has_a_docstring() -> None:
    assert missing_docstrings(soap_package) == []


def test_public_methods_say_what_they_raise() -> None:
    assert "Raises:" in (soap_package.SOAPClient.call.__doc__ or "")
