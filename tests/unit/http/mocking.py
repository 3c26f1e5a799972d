"""``responses`` mocks for ``HTTPConnector``.

``responses`` patches requests' ``HTTPAdapter.send``, which sessions still
use but the connector's own requests do not (``Transport.urlopen`` calls
urllib3 directly). ``mocked_http()`` routes ``Transport.urlopen`` through
the patched adapter too, so one ``RequestsMock`` sees every request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any
from unittest import mock

import requests
import responses
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from dictamesh_connectors.http.transport import Transport


@contextlib.contextmanager
def mocked_http(**kwargs: Any) -> Iterator[responses.RequestsMock]:
    """A started ``responses.RequestsMock`` that also answers the connector's requests."""
    with responses.RequestsMock(**kwargs) as rsps:
        adapter = HTTPAdapter()  # its send() is the one responses replaced

        def urlopen(
            self: Transport,
            method: str,
            url: str,
            headers: Mapping[str, str],
            body: Any,
            timeout: Any,
        ) -> Any:
            prepared = requests.PreparedRequest()
            prepared.method = method
            prepared.url = url
            prepared.headers = CaseInsensitiveDict(headers)
            prepared.body = body
            prepared.hooks = {"response": []}
            return adapter.send(prepared, stream=True, timeout=timeout).raw

        with mock.patch.object(Transport, "urlopen", urlopen):
            yield rsps
