"""``health``: a view answering 200 or 503 with every connector's health as JSON.

``path("health", dictamesh_connectors.contrib.django.views.health)`` in your urls.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from dictamesh_connectors.contrib.django.apps import loaded_connectors

__all__ = ["health"]


def health(request: HttpRequest) -> JsonResponse:
    """Connect to and ping every connector; 200 when all answer, else 503."""
    report = loaded_connectors().health(timeout=5.0)
    healthy = all(h.healthy for h in report.values())
    body = {"healthy": healthy, "connectors": {n: h.to_dict() for n, h in report.items()}}
    return JsonResponse(body, status=200 if healthy else 503)
