"""The service plus one test-only route, for gunicorn-based fault tests: ``gunicorn tests.fault_wsgi:app``.

``GET /_fault/terminate-own-backend`` reads through the request's session (so a transaction is open),
has PostgreSQL terminate that session's backend from another connection, and answers 200: Flask-SQLAlchemy's
teardown then has to roll back on a dead connection, after the response was made.
``GET /_fault/slow?seconds=N`` takes N seconds (at most 30), as a request whose refresh is slow would.
"""
import time

from flask import Response, request
from sqlalchemy import text

from app import create_app
from app.extensions import db

app = create_app()


@app.get("/_fault/terminate-own-backend")
def terminate_own_backend() -> Response:
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with db.engine.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        other.commit()
    return Response("stored", mimetype="text/plain")


@app.get("/_fault/slow")
def slow() -> Response:
    time.sleep(min(float(request.args.get("seconds", "1")), 30.0))  # the slow refresh this route stands for
    return Response("finished", mimetype="text/plain")
