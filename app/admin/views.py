"""Admin pages: search connections, one connection with its audit trail, revoke, the audit log.

A bad filter value is shown inside the console page it was typed into (400, the form kept as
typed), and other 400/404s of a signed-in operator get the console's own error page, never the
bare one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..errors import ConnectorError, InvalidRequest, NotFound
from ..extensions import db
from ..models import ACTIVE, NEEDS_REAUTH, REVOKED, Connection
from ..revocation import Actor, revoke_connection, revoke_user_connections
from ..runtime import runtime
from ..web_errors import problem, wants_json
from .blueprint import PUBLIC_ENDPOINTS, bp
from .queries import (
    AuditPage,
    AuditQuery,
    ConnectionPage,
    ConnectionQuery,
    connection_audit,
    search_audit,
    search_connections,
)

STATUSES = (ACTIVE, NEEDS_REAUTH, REVOKED)
MAX_FILTER_LENGTH = 255
# Suggestions for the audit log's action filter (free text: other actions may exist).
AUDIT_ACTIONS = ("connect", "refresh", "revoke", "revoke_remote", "admin_login", "admin_logout")


@dataclass
class Filters:
    """The query string's filters, checked; ``errors`` maps a field to what is wrong with it."""

    errors: dict[str, str] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = request.args.get(name, "").strip()
        if len(value) > MAX_FILTER_LENGTH:
            self.errors[name] = f"at most {MAX_FILTER_LENGTH} characters"
            return None
        return value or None

    def choice(self, name: str, allowed: list[str] | tuple[str, ...], what: str) -> str | None:
        value = self.text(name)
        if value is not None and value not in allowed:
            self.errors[name] = f"not {what}: choose one of {', '.join(allowed) or '(none)'}"
            return None
        return value

    def day(self, name: str) -> date | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.errors[name] = "expected a date like 2026-11-25"
            return None


def _actor() -> Actor:
    return Actor("admin", current_user.sub)


def _connection(connection_id: str) -> Connection:
    row = db.session.get(Connection, connection_id) if len(connection_id) <= 32 else None
    if row is None:
        raise NotFound("no such connection")
    return row


def _providers() -> list[tuple[str, str]]:
    """(name, display name) of every enabled provider, by display name."""
    return sorted(((s.name, s.display_name) for s in runtime().registry.enabled()), key=lambda p: p[1].lower())


def _revoke_all_target(query: ConnectionQuery, page: ConnectionPage, first_page: bool) -> str | None:
    """The one user whose connections "revoke every connection" would revoke, if the search found exactly one.

    The search is a prefix, so the button names the exact user id found, never the text typed; a user has
    at most one connection per provider, so one user's rows never span pages.
    """
    if not query.user_id or not first_page or page.next_cursor:
        return None
    users = {c.user_id for c in page.items}
    if len(users) != 1 or all(c.status == REVOKED for c in page.items):
        return None
    return users.pop()


@bp.get("/connections")
def connections() -> tuple[str, int]:
    filters, providers = Filters(), _providers()
    query = ConnectionQuery(user_id=filters.text("user"),
                            provider=filters.choice("provider", [name for name, _ in providers], "an enabled provider"),
                            status=filters.choice("status", STATUSES, "a status"))
    first_page = not request.args.get("after")
    page = ConnectionPage([], None)
    if not filters.errors:
        try:
            page = search_connections(query, after=filters.text("after"))
        except InvalidRequest as exc:  # a cursor not issued by this console
            filters.errors["after"] = exc.description
    users = {c.user_id for c in page.items}
    return render_template("admin/connections.html", page=page, query=query, statuses=STATUSES,
                           providers=providers, first_page=first_page, errors=filters.errors,
                           typed=request.args, revoke_all=_revoke_all_target(query, page, first_page),
                           user_count=len(users)), 400 if filters.errors else 200


@bp.get("/connections/<connection_id>")
def connection(connection_id: str) -> str:
    row = _connection(connection_id)
    from .event_views import last_event

    return render_template("admin/connection.html", connection=row, events=connection_audit(row),
                           last_event=last_event(row.id))


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
    user_id = (request.form.get("user") if request.method == "POST" else request.args.get("user", "").strip()) or ""
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
def audit() -> tuple[str, int]:
    """The date range is inclusive: From 2026-11-25 To 2026-11-26 is two whole days (UTC)."""
    filters, providers = Filters(), _providers()
    since, until = filters.day("since"), filters.day("until")
    if since and until and since > until:
        filters.errors["until"] = "the To date is before the From date"
    query = AuditQuery(user_id=filters.text("user"), provider=filters.text("provider"),
                       action=filters.text("action"), actor_id=filters.text("actor"),
                       since=datetime.combine(since, time.min) if since else None,
                       until=datetime.combine(until + timedelta(days=1), time.min) if until else None)
    page = AuditPage([], None)
    if not filters.errors:
        try:
            page = search_audit(query, before=filters.text("before"))
        except InvalidRequest as exc:
            filters.errors["before"] = exc.description
    return render_template("admin/audit.html", page=page, query=query, args=request.args, providers=providers,
                           actions=AUDIT_ACTIONS, errors=filters.errors,
                           first_page=not request.args.get("before")), 400 if filters.errors else 200


@bp.errorhandler(InvalidRequest)
@bp.errorhandler(NotFound)
def console_error(exc: ConnectorError) -> Response:
    """A signed-in operator's 400 or 404 inside the console (its header and a way back)."""
    if wants_json() or request.endpoint in PUBLIC_ENDPOINTS or not current_user.is_authenticated:
        return problem(exc.status, exc.code, exc.title, exc.description)
    page = render_template("admin/error.html", status=exc.status, title=exc.title, detail=exc.description,
                           code=exc.code)
    return Response(page, status=exc.status, mimetype="text/html")
