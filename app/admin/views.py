"""Admin pages: search connections, one connection with its audit trail, revoke, the audit log."""
from __future__ import annotations

from datetime import datetime

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..errors import InvalidRequest, NotFound
from ..extensions import db
from ..models import ACTIVE, NEEDS_REAUTH, REVOKED, Connection
from ..revocation import Actor, revoke_connection, revoke_user_connections
from ..runtime import runtime
from .blueprint import bp
from .queries import AuditQuery, ConnectionQuery, connection_audit, search_audit, search_connections

STATUSES = (ACTIVE, NEEDS_REAUTH, REVOKED)
MAX_FILTER_LENGTH = 255


def _arg(name: str) -> str | None:
    value = request.args.get(name, "").strip()
    if len(value) > MAX_FILTER_LENGTH:
        raise InvalidRequest(f"{name}: at most {MAX_FILTER_LENGTH} characters")
    return value or None


def _date_arg(name: str) -> datetime | None:
    value = _arg(name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"{name}: expected a date like 2026-11-25 or 2026-11-25T14:30") from None


def _actor() -> Actor:
    return Actor("admin", current_user.sub)


def _connection(connection_id: str) -> Connection:
    row = db.session.get(Connection, connection_id) if len(connection_id) <= 32 else None
    if row is None:
        raise NotFound("no such connection")
    return row


@bp.get("/")
def index() -> Response:
    return redirect(url_for("admin.connections"))


@bp.get("/connections")
def connections() -> str:
    status = _arg("status")
    if status and status not in STATUSES:
        raise InvalidRequest(f"status: one of {', '.join(STATUSES)}")
    query = ConnectionQuery(user_id=_arg("user"), provider=_arg("provider"), status=status)
    page = search_connections(query, after=_arg("after"))
    providers = [spec.name for spec in runtime().registry.enabled()]
    return render_template("admin/connections.html", page=page, query=query, statuses=STATUSES,
                           providers=providers, first_page=not request.args.get("after"))


@bp.get("/connections/<connection_id>")
def connection(connection_id: str) -> str:
    row = _connection(connection_id)
    return render_template("admin/connection.html", connection=row, events=connection_audit(row))


@bp.route("/connections/<connection_id>/revoke", methods=["GET", "POST"])
def revoke(connection_id: str) -> str | Response:
    row = _connection(connection_id)
    if request.method == "GET":
        return render_template("admin/confirm.html", connections=[row], user_id=row.user_id,
                               action=url_for("admin.revoke", connection_id=row.id))
    if row.status == REVOKED:
        flash("This connection was already revoked.")
    else:
        result = revoke_connection(row, _actor())
        flash(f"Revoked {result.provider} for {row.user_id}; at the provider: {result.remote}.")
    return redirect(url_for("admin.connection", connection_id=row.id))


@bp.route("/users/revoke", methods=["GET", "POST"])
def revoke_user() -> str | Response:
    user_id = (request.form.get("user") if request.method == "POST" else _arg("user")) or ""
    if not user_id or len(user_id) > MAX_FILTER_LENGTH:
        raise InvalidRequest("user: the user id whose connections to revoke")
    if request.method == "GET":
        rows = db.session.scalars(select(Connection).where(Connection.user_id == user_id,
                                                           Connection.status != REVOKED)).all()
        return render_template("admin/confirm.html", connections=rows, user_id=user_id,
                               action=url_for("admin.revoke_user"), all_of_user=True)
    results = revoke_user_connections(user_id, _actor())
    summary = ", ".join(f"{r.provider} (provider: {r.remote})" for r in results) or "nothing to revoke"
    flash(f"Revoked every connection of {user_id}: {summary}.")
    return redirect(url_for("admin.connections", user=user_id))


@bp.get("/audit")
def audit() -> str:
    query = AuditQuery(user_id=_arg("user"), provider=_arg("provider"), action=_arg("action"),
                       actor_id=_arg("actor"), since=_date_arg("since"), until=_date_arg("until"))
    page = search_audit(query, before=_arg("before"))
    return render_template("admin/audit.html", page=page, query=query, args=request.args,
                           first_page=not request.args.get("before"))
