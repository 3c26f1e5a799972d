"""Framework integrations, each behind its own extra and imported only on demand.

* ``dictamesh_connectors.contrib.flask``: the Flask extension (``[flask]``);
* ``dictamesh_connectors.contrib.django``: the Django app (``[django]``);
* ``dictamesh_connectors.contrib.celery``: Celery signal handlers and the
  task pattern (``[celery]``).

Importing this package imports no framework.
"""

__all__: list[str] = []
