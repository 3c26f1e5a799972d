"""Built-in and callable (de)serializers."""

import pytest

from dictamesh_connectors.errors import ConnectorError, ErrorCode
from dictamesh_connectors.kafka.serde import deserializer_for, serializer_for


def test_builtins_round_trip():
    for name, value in (("bytes", b"\x00\xff"), ("str", "héllo"), ("json", {"a": [1, "é"]})):
        data = serializer_for(name)(value)
        assert isinstance(data, bytes)
        assert deserializer_for(name)(data) == value
        assert serializer_for(name)(None) is None and deserializer_for(name)(None) is None
    assert serializer_for("bytes")(bytearray(b"ab")) == b"ab"
    assert serializer_for("json")({"a": 1}) == b'{"a":1}'


@pytest.mark.parametrize(
    "name,value",
    [("str", "bad\udc80"), ("json", {1, 2}), ("json", float("nan") and object())],
)
def test_unserializable_values_are_serialization_errors(name, value):
    with pytest.raises(ConnectorError) as info:
        serializer_for(name)(value)
    assert info.value.code is ErrorCode.SERIALIZATION_ERROR and not info.value.transient


def test_undecodable_records_are_serialization_errors():
    for name, data in (("str", b"\xff"), ("json", b"{nope"), ("json", b"[" * 100_000)):
        with pytest.raises(ConnectorError) as info:
            deserializer_for(name)(data)
        assert info.value.code is ErrorCode.SERIALIZATION_ERROR


def test_wrong_types_are_type_errors():
    with pytest.raises(TypeError):
        serializer_for("bytes")("text")
    with pytest.raises(TypeError):
        serializer_for("str")(b"bytes")
    with pytest.raises(TypeError):
        serializer_for("yaml")
    with pytest.raises(TypeError):
        deserializer_for(42)


def test_callables_are_wrapped():
    assert serializer_for(lambda v: v.encode())("x") == b"x"
    with pytest.raises(ConnectorError) as info:
        serializer_for(lambda v: 42)("x")
    assert "returned int" in str(info.value)
    with pytest.raises(ConnectorError) as info:
        deserializer_for(lambda d: 1 / 0)(b"x")
    assert isinstance(info.value.__cause__, ZeroDivisionError)
