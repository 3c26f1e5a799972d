"""Any argument to any public method: a ConnectorError with a code, or a TypeError; nothing else."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dictamesh_connectors.errors import ConnectorError

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=2**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["a", "d/a", "..", "/x", "\x00", "\ud800", "x.lock", "-1", "inf", "rb", "wb"]),
    st.lists(st.integers(), max_size=2),
)

CALLS = {
    "read_bytes": lambda f, a, b: f.read_bytes(a),
    "read_text": lambda f, a, b: f.read_text(a, encoding=b),
    "write_bytes": lambda f, a, b: f.write_bytes(a, b),
    "write_text": lambda f, a, b: f.write_text(a, b),
    "append": lambda f, a, b: f.append(a, b),
    "open": lambda f, a, b: f.open(a, b).close(),
    "list": lambda f, a, b: f.list(a, b),
    "query": lambda f, a, b: f.query(a),
    "stat": lambda f, a, b: f.stat(a),
    "exists": lambda f, a, b: f.exists(a),
    "delete": lambda f, a, b: f.delete(a),
    "move": lambda f, a, b: f.move(a, b),
    "copy": lambda f, a, b: f.copy(a, b),
    "mkdir": lambda f, a, b: f.mkdir(a),
    "rmdir": lambda f, a, b: f.rmdir(a),
    "lock": lambda f, a, b: f.lock(a, timeout=b if not isinstance(b, str) else 0).release(),
    "clean_orphans": lambda f, a, b: f.clean_orphans(a),
    "reader": lambda f, a, b: _reader(f, a, b),
    "writer": lambda f, a, b: _writer(f, a, b),
}


def _reader(files, size, whence):
    files.write_bytes("r", b"0123456789")
    with files.open("r") as src:
        src.seek(size if isinstance(size, int) else 0, whence if isinstance(whence, int) else 0)
        src.read(size)


def _writer(files, data, more):
    with files.open("w", "wb") as out:
        out.write(data)
        out.write(more)


@settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=st.sampled_from(sorted(CALLS)), a=anything, b=anything)
def test_no_raw_exception_escapes(files, call, a, b):
    with contextlib.suppress(ConnectorError, TypeError):  # anything else fails the test
        CALLS[call](files, a, b)
