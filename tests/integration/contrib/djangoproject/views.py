"""One view on the shared PostgreSQL connector, reporting what served it."""

import threading

from django.http import HttpRequest, JsonResponse

from dictamesh_connectors.contrib.django import connectors

_lock = threading.Lock()
_active = {"now": 0, "peak": 0}


def query(request: HttpRequest, number: int) -> JsonResponse:
    with _lock:
        _active["now"] += 1
        _active["peak"] = max(_active["peak"], _active["now"])
    try:
        db = connectors().postgresql("orders_db")
        row = db.query(
            "SELECT pg_backend_pid() AS backend, %s::int * 2 AS doubled, pg_sleep(0.02)",
            [number],
        ).first()
        return JsonResponse(
            {
                "number": number,
                "doubled": row["doubled"],
                "backend": row["backend"],
                "connector": id(db),
                "thread": threading.get_ident(),
                "peak": _active["peak"],
            }
        )
    finally:
        with _lock:
            _active["now"] -= 1
