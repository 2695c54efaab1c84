"""Probes: ``/healthz`` is liveness (the process answers), ``/readyz`` is readiness (the database
answers and its schema is at the migration head). Neither needs credentials; neither says more
than which of the two is wrong."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from .database_faults import database_unavailable, describe
from .errors import NotReady
from .extensions import db
from .schema_version import database_heads, shipped_heads
from .web_errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}


def migration_heads() -> frozenset[str]:
    """The heads of the shipped migrations (read once per process)."""
    heads = current_app.extensions.get("connector_migration_heads")
    if heads is None:
        heads = shipped_heads()
        current_app.extensions["connector_migration_heads"] = heads
    return heads


@bp.get("/readyz")
def readyz() -> Response:
    expected = migration_heads()
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = database_heads(conn)  # read without Alembic: it stays out of the web worker
    except Exception as exc:  # noqa: BLE001 (a probe reports, it does not raise)
        if not database_unavailable(exc):
            current_app.logger.warning("readiness: database check failed: %s", describe(exc))
        return error_response(NotReady("database unreachable or busy"), json=True)
    if current != expected:
        at = ", ".join(sorted(current)) or "none (never migrated)"
        return error_response(NotReady(f"database schema not at the migration head: at {at}, "
                                       f"expected {', '.join(sorted(expected))}; run 'flask db upgrade'"), json=True)
    return jsonify(status="ready", migration=", ".join(sorted(current)))
