"""User endpoints: which providers can be connected, and the caller's connections."""
from __future__ import annotations

from importlib import resources

from flask import Blueprint, Response
from sqlalchemy import select

from ..errors import NotFound
from ..extensions import db
from ..links.fields import reconnect_fields
from ..models import REVOKED, Connection
from ..revocation import Actor, RevocationResult, revoke_connection
from ..runtime import runtime
from .auth import require_user

bp = Blueprint("api", __name__, url_prefix="/api")


def _iso(value) -> str | None:
    return value.isoformat() + "Z" if value else None


def connection_json(connection: Connection) -> dict:
    """The public view of a connection: metadata only, never token material."""
    return {
        "provider": connection.provider,
        "status": connection.status,
        "scopes": connection.scope_list,
        "external_account_id": connection.external_account_id,
        "connected_at": _iso(connection.connected_at),
        "last_refreshed_at": _iso(connection.last_refreshed_at),
        "access_token_expires_at": _iso(connection.access_token_expires_at),
    }


@bp.get("/providers")
def providers() -> dict:
    require_user()
    return {"providers": [{"name": spec.name, "display_name": spec.display_name, "scopes": list(spec.scopes)}
                          for spec in runtime().registry.enabled()]}


@bp.get("/connections")
def connections() -> dict:
    principal = require_user()
    rows = db.session.scalars(
        select(Connection).where(Connection.user_id == principal.sub).order_by(Connection.provider)
    ).all()
    return {"connections": [connection_json(row) | reconnect_fields(row) for row in rows]}


@bp.get("/openapi.json")
def openapi() -> Response:
    document = resources.files(__package__).joinpath("openapi.json").read_text("utf-8")
    response = Response(document, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def disconnect(user_id: str, provider: str, actor: Actor) -> dict:
    """Revoke one connection (idempotent: an already revoked one reports its state)."""
    connection = db.session.scalar(
        select(Connection).where(Connection.user_id == user_id, Connection.provider == provider)
    )
    if connection is None:
        raise NotFound(f"no {provider!r} connection for this user")
    if connection.status == REVOKED:
        return RevocationResult(provider, connection.remote_revocation or "none").as_json()
    return revoke_connection(connection, actor).as_json()


@bp.delete("/connections/<provider>")
def disconnect_mine(provider: str) -> dict:
    principal = require_user()
    return disconnect(principal.sub, provider, Actor("user", principal.sub))
