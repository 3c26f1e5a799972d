"""Key and value (de)serializers: bytes, str and JSON built in, or any callable.

Pure functions, no driver import. A serializer turns a value into ``bytes``
(or ``None``, a Kafka null, e.g. a compaction tombstone); a deserializer
turns the record's ``bytes`` back. ``None`` passes through both ways for
every built-in. A value that cannot be encoded or decoded raises a
permanent ``ConnectorError`` with code SERIALIZATION_ERROR (in the consumer
loop, that makes the record a poison message); a value of the wrong type
for the ``bytes`` serializer is a ``TypeError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dictamesh_connectors.errors import ConnectorError, ErrorCode, ErrorRule, RetryHint, build_error

__all__ = ["Deserializer", "Serializer", "deserializer_for", "serializer_for"]

Serializer = Callable[[Any], "bytes | None"]
Deserializer = Callable[["bytes | None"], Any]

_SERDE = ErrorRule(ErrorCode.SERIALIZATION_ERROR, False, RetryHint.NONE)


def serde_error(what: str, detail: str) -> ConnectorError:
    """The error for a value that cannot be (de)serialized."""
    return build_error(f"kafka: {what}: {detail}", _SERDE, connector="kafka")


def serialize_bytes(value: Any) -> bytes | None:
    """Pass ``bytes`` through (``bytearray``/``memoryview`` are copied to ``bytes``)."""
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(
        f"the bytes serializer takes bytes, bytearray or memoryview, got {type(value).__name__}"
        " (configure the str or json serializer, or pass a callable)"
    )


def serialize_str(value: Any) -> bytes | None:
    """Encode a ``str`` as UTF-8."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"the str serializer takes str, got {type(value).__name__}")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise serde_error("serialize", "the string is not encodable as UTF-8") from None


def serialize_json(value: Any) -> bytes | None:
    """Encode any JSON-serializable value as compact UTF-8 JSON."""
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
        raise serde_error("serialize", f"not JSON-serializable ({type(exc).__name__})") from None


def deserialize_bytes(data: bytes | None) -> Any:
    """Return the record's bytes as they are."""
    return data


def deserialize_str(data: bytes | None) -> Any:
    """Decode UTF-8."""
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise serde_error("deserialize", "the record is not valid UTF-8") from None


def deserialize_json(data: bytes | None) -> Any:
    """Decode UTF-8 JSON."""
    if data is None:
        return None
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise serde_error(
            "deserialize", f"the record is not valid JSON ({type(exc).__name__})"
        ) from None


_SERIALIZERS: dict[str, Serializer] = {
    "bytes": serialize_bytes,
    "str": serialize_str,
    "json": serialize_json,
}
_DESERIALIZERS: dict[str, Deserializer] = {
    "bytes": deserialize_bytes,
    "str": deserialize_str,
    "json": deserialize_json,
}


def serializer_for(spec: str | Serializer) -> Serializer:
    """The serializer named ``spec`` (bytes, str, json), or ``spec`` itself wrapped.

    A callable's exceptions (other than ``ConnectorError`` and ``TypeError``)
    and results that are not ``bytes``/``None`` become SERIALIZATION_ERROR.

    Raises:
        TypeError: ``spec`` is neither a known name nor callable.
    """
    if isinstance(spec, str):
        try:
            return _SERIALIZERS[spec]
        except KeyError:
            raise TypeError(
                f"unknown serializer {spec!r:.40}; use bytes, str, json or a callable"
            ) from None
    if not callable(spec):
        raise TypeError(f"a serializer must be a name or a callable, got {type(spec).__name__}")
    user = spec

    def call(value: Any) -> bytes | None:
        try:
            result = user(value)
        except (ConnectorError, TypeError):
            raise
        except Exception as exc:
            raise serde_error("serialize", f"the serializer raised {type(exc).__name__}") from exc
        if result is None or type(result) is bytes:
            return result
        if isinstance(result, (bytearray, memoryview)):
            return bytes(result)
        raise serde_error(
            "serialize", f"the serializer returned {type(result).__name__}, not bytes"
        )

    return call


def deserializer_for(spec: str | Deserializer) -> Deserializer:
    """The deserializer named ``spec`` (bytes, str, json), or ``spec`` itself wrapped.

    A callable's exceptions (other than ``ConnectorError``) become
    SERIALIZATION_ERROR.

    Raises:
        TypeError: ``spec`` is neither a known name nor callable.
    """
    if isinstance(spec, str):
        try:
            return _DESERIALIZERS[spec]
        except KeyError:
            raise TypeError(
                f"unknown deserializer {spec!r:.40}; use bytes, str, json or a callable"
            ) from None
    if not callable(spec):
        raise TypeError(f"a deserializer must be a name or a callable, got {type(spec).__name__}")
    user = spec

    def call(data: bytes | None) -> Any:
        try:
            return user(data)
        except ConnectorError:
            raise
        except Exception as exc:
            raise serde_error(
                "deserialize", f"the deserializer raised {type(exc).__name__}"
            ) from exc

    return call
