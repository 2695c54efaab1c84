"""Machine-to-machine endpoints (Auth0 client-credentials tokens): what jobs and Actions call."""
from __future__ import annotations

import re

from flask import Blueprint, request
from sqlalchemy import select

from ..errors import InvalidRequest
from ..extensions import db
from ..models import Connection
from ..observability.metrics import count_token_requests
from ..revocation import Actor, revoke_user_connections
from ..runtime import runtime
from ..vault import get_access_token
from .auth import require_machine
from .views import connection_json, disconnect

bp = Blueprint("machine_api", __name__, url_prefix="/api/users")

MAX_USER_ID = 255
MAX_MIN_TTL = 86400
# ASCII digits only: str.isdigit() also accepts "²" and other Unicode digits that int() refuses,
# and the length bound keeps int() clear of its 4,300-digit limit.
MIN_TTL_RE = re.compile(r"[0-9]{1,10}")


def _check_user_id(user_id: str) -> str:
    if not user_id or len(user_id) > MAX_USER_ID or not user_id.isprintable():
        raise InvalidRequest("user_id must be the user's Auth0 sub (URL-encoded), at most 255 characters")
    return user_id


@bp.get("/<user_id>/connections")
def user_connections(user_id: str) -> dict:
    require_machine("read:connections")
    rows = db.session.scalars(
        select(Connection).where(Connection.user_id == _check_user_id(user_id)).order_by(Connection.provider)
    ).all()
    return {"user_id": user_id, "connections": [connection_json(row) for row in rows]}


@bp.post("/<user_id>/connections/<provider>/token")
@count_token_requests
def user_token(user_id: str, provider: str) -> dict:
    require_machine("read:tokens")
    runtime().registry.get(provider)  # 400 for an unknown provider before touching the vault
    raw = request.args.get("min_ttl")
    min_ttl = None
    if raw is not None:
        if not MIN_TTL_RE.fullmatch(raw) or int(raw) > MAX_MIN_TTL:
            raise InvalidRequest(f"min_ttl must be a whole number of seconds, at most {MAX_MIN_TTL}")
        min_ttl = int(raw)
    return get_access_token(_check_user_id(user_id), provider, min_ttl=min_ttl).as_json()


@bp.delete("/<user_id>/connections/<provider>")
def delete_user_connection(user_id: str, provider: str) -> dict:
    principal = require_machine("delete:connections")
    return disconnect(_check_user_id(user_id), provider, Actor("m2m", principal.client_id or principal.sub))


@bp.delete("/<user_id>/connections")
def delete_user_connections(user_id: str) -> dict:
    """Offboarding: revoke every connection of a user."""
    principal = require_machine("delete:connections")
    results = revoke_user_connections(_check_user_id(user_id), Actor("m2m", principal.client_id or principal.sub))
    return {"user_id": user_id, "revoked": [result.as_json() for result in results]}
