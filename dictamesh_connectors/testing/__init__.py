"""Testing kit for users of dictamesh-connectors.

- ``dictamesh_connectors.testing.fakes``: in-memory fakes of every connector
  (``FakeHTTP``, ``FakePostgreSQL``, ``FakeMongoDB``, ``FakeKafka``,
  ``FakeFile``) with the real connector's API, lifecycle and error codes, and
  programmable faults (``fail_next``, latency, partial failure).
- ``dictamesh_connectors.testing.pytest_plugin``: pytest fixtures for each
  fake (loaded automatically through the ``pytest11`` entry point).
- ``dictamesh_connectors.testing.conformance``: the conformance suite a
  third-party connector author points at their class and a server URL.
- ``dictamesh_connectors.testing.faultproxy``: a TCP fault-injection proxy
  (latency, bandwidth, resets, blackholes, half-open, slow close).

Each submodule is imported on demand, so importing this package costs
nothing and needs no test dependency.
"""
