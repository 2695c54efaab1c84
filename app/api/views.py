"""User endpoints: which providers can be connected, and the caller's connections."""
from __future__ import annotations

import json
from importlib import resources

from flask import Blueprint, Response, current_app
from sqlalchemy import select

from ..errors import NotFound
from ..extensions import db
from ..links.fields import reconnect_fields
from ..models import REVOKED, Connection
from ..revocation import Actor, RevocationResult, revoke_connection
from ..runtime import runtime
from .access import public_access, user_access
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
        "params": dict(connection.params or {}),
        "connected_at": _iso(connection.connected_at),
        "last_refreshed_at": _iso(connection.last_refreshed_at),
        "access_token_expires_at": _iso(connection.access_token_expires_at),
    }


@bp.get("/providers")
@user_access
def providers() -> dict:
    require_user()
    return {"providers": [{"name": spec.name, "display_name": spec.display_name, "scopes": list(spec.scopes),
                           "params": _connect_params(spec)} for spec in runtime().registry.enabled()]}


def _connect_params(spec) -> list[dict]:
    """What the connect form must send for ``spec``: its connect-source params."""
    return [{"name": p.name, "pattern": p.pattern, "required": p.required, "description": p.description}
            for p in spec.params if p.source == "connect"]


@bp.get("/connections")
@user_access
def connections() -> dict:
    principal = require_user()
    rows = db.session.scalars(
        select(Connection).where(Connection.user_id == principal.sub).order_by(Connection.provider)
    ).all()
    return {"connections": [connection_json(row) | reconnect_fields(row) for row in rows]}


@bp.get("/openapi.json")
@public_access
def openapi() -> Response:
    document = current_app.extensions.get("connector_openapi")
    if document is None:  # once per process: the shipped document, with this deployment as its server
        parsed = json.loads(resources.files(__package__).joinpath("openapi.json").read_text("utf-8"))
        parsed["servers"] = [{"url": current_app.config["PUBLIC_BASE_URL"], "description": "This service."}]
        # This deployment's providers: a well-formed name that is not enabled is answered 400 unknown_provider.
        enabled = sorted(spec.name for spec in runtime().registry.enabled())
        if enabled:  # (an enum may not be empty)
            parsed["components"]["parameters"]["Provider"]["schema"]["enum"] = enabled
            form = parsed["paths"]["/connect/start"]["post"]["requestBody"]["content"]
            form["application/x-www-form-urlencoded"]["schema"]["properties"]["provider"]["enum"] = enabled
        document = current_app.extensions["connector_openapi"] = json.dumps(parsed, indent=2, ensure_ascii=False)
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
@user_access
def disconnect_mine(provider: str) -> dict:
    principal = require_user()
    return disconnect(principal.sub, provider, Actor("user", principal.sub))
