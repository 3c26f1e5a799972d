"""The kafka package's public names and its registry entries."""

import dictamesh_connectors.kafka as kafka_package
from dictamesh_connectors import registry


def test_all_is_sorted_and_every_name_resolves():
    assert kafka_package.__all__ == sorted(kafka_package.__all__)
    for name in kafka_package.__all__:
        obj = getattr(kafka_package, name)
        assert (obj.__doc__ or "").strip(), name
    assert set(kafka_package.__all__) <= set(dir(kafka_package))


def test_kafka_schemes_are_registered():
    from dictamesh_connectors.kafka import KafkaConfig, KafkaConnector

    for scheme in ("kafka", "kafka+ssl"):
        assert scheme in registry.known_schemes()
        assert registry.connector_class(scheme) is KafkaConnector
    assert KafkaConnector.config_class is KafkaConfig
