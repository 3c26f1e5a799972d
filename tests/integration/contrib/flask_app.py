"""A small Flask app on one PostgreSQL connector (imported by the tests, or run as a server).

Run as a script it serves on a threaded Werkzeug server until Ctrl-C (SIGINT),
then exits normally, so the extension's atexit handler closes the connectors:
``python flask_app.py PORT`` with ``FLASK_TEST_PG_URL`` and
``FLASK_TEST_APP_NAME`` in the environment.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

from flask import Flask, jsonify

from dictamesh_connectors.contrib.flask import FlaskConnectors, health_blueprint


def create_app(config: Any) -> tuple[Flask, FlaskConnectors]:
    app = Flask(__name__)
    app.config["DICTAMESH_CONNECTORS"] = config
    app.config["DICTAMESH_CONNECTORS_CLOSE_TIMEOUT"] = 10.0
    ext = FlaskConnectors(app)
    app.register_blueprint(health_blueprint())
    active = {"now": 0, "peak": 0}
    lock = threading.Lock()

    @app.get("/query/<int:number>")
    def query(number: int) -> Any:
        with lock:
            active["now"] += 1
            active["peak"] = max(active["peak"], active["now"])
        try:
            db = ext.postgresql("orders_db")
            row = db.query(
                "SELECT pg_backend_pid() AS backend, %s::int * 2 AS doubled, pg_sleep(0.02)",
                [number],
            ).first()
            return jsonify(
                number=number,
                doubled=row["doubled"],
                backend=row["backend"],
                connector=id(db),
                thread=threading.get_ident(),
                peak=active["peak"],
            )
        finally:
            with lock:
                active["now"] -= 1

    return app, ext


if __name__ == "__main__":
    from werkzeug.serving import run_simple

    config = {
        "orders_db": {
            "url": os.environ["FLASK_TEST_PG_URL"],
            "application_name": os.environ["FLASK_TEST_APP_NAME"],
            "max_open_conns": 4,
        }
    }
    application, _ = create_app(config)
    print("serving", flush=True)
    started = time.monotonic()
    run_simple("127.0.0.1", int(sys.argv[1]), application, threaded=True)
    print(f"stopped after {time.monotonic() - started:.1f}s", flush=True)
