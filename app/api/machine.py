"""Machine-to-machine endpoints (Auth0 client-credentials tokens): what jobs and Actions call."""
from __future__ import annotations

import math
import re

from flask import Blueprint, request
from sqlalchemy import select

from ..errors import InvalidRequest
from ..extensions import db
from ..models import Connection
from ..observability.metrics import count_token_requests
from ..revocation import Actor, revoke_user_connections
from ..runtime import runtime
from ..scopes import parse_scope_list
from ..vault import get_access_token, read_cached
from .access import machine_access
from .auth import require_machine
from .views import connection_json, disconnect

bp = Blueprint("machine_api", __name__, url_prefix="/api/users")

MAX_USER_ID = 255
# What the OpenAPI document's UserId pattern says: no control characters (C0, DEL, C1), no invisible
# formatting or line/paragraph separators, no "/" (which cannot reach this view anyway).
USER_ID_RE = re.compile(r"[^\x00-\x1f\x7f-\x9f\xad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb/]"
                        f"{{1,{MAX_USER_ID}}}")
MAX_MIN_TTL = 86400
# ASCII digits only: str.isdigit() also accepts "²" and other Unicode digits that int() refuses,
# and the length bound keeps int() clear of its 4,300-digit limit.
MIN_TTL_RE = re.compile(r"[0-9]{1,10}")


def check_user_id(user_id: str) -> str:
    if not USER_ID_RE.fullmatch(user_id):
        raise InvalidRequest("user_id must be the user's Auth0 sub (URL-encoded): 1 to 255 characters, "
                             "no control or invisible formatting characters")
    return user_id


@bp.get("/<user_id>/connections")
@machine_access("read:connections")
def user_connections(user_id: str) -> dict:
    require_machine("read:connections")
    rows = db.session.scalars(
        select(Connection).where(Connection.user_id == check_user_id(user_id)).order_by(Connection.provider)
    ).all()
    return {"user_id": user_id, "connections": [connection_json(row) for row in rows]}


@bp.post("/<user_id>/connections/<provider>/token")
@machine_access("read:tokens")
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
        _check_min_ttl_within_lifetime(check_user_id(user_id), provider, min_ttl)
    raw = request.args.get("required_scopes")
    required = () if raw is None else parse_scope_list(raw, "required_scopes")
    return get_access_token(check_user_id(user_id), provider, min_ttl=min_ttl, required_scopes=required).as_json()


def _check_min_ttl_within_lifetime(user_id: str, provider: str, min_ttl: int) -> None:
    """Refuse a min_ttl longer than the provider's access-token lifetime: no token could satisfy it, so
    every call would refresh (and rotate the refresh token). Equal to the lifetime is allowed: it asks
    for a brand-new token, deliberately."""
    row = read_cached(user_id, provider)
    if row is None or row.access_token_expires_at is None:
        return  # the vault answers 404/409, or the token never expires
    issued = row.last_refreshed_at or row.connected_at
    if issued is None or row.access_token_expires_at <= issued:
        return
    lifetime = math.ceil((row.access_token_expires_at - issued).total_seconds())
    if min_ttl > lifetime:
        raise InvalidRequest(f"min_ttl {min_ttl} is longer than the lifetime of {provider!r} access tokens "
                             f"({lifetime} s), so no token could satisfy it; ask for at most {lifetime} "
                             "(asking for exactly the lifetime gets a new token on every call)",
                             code="min_ttl_exceeds_token_lifetime")


@bp.delete("/<user_id>/connections/<provider>")
@machine_access("delete:connections")
def delete_user_connection(user_id: str, provider: str) -> dict:
    principal = require_machine("delete:connections")
    return disconnect(check_user_id(user_id), provider, Actor("m2m", principal.client_id or principal.sub))


@bp.delete("/<user_id>/connections")
@machine_access("delete:connections")
def delete_user_connections(user_id: str) -> dict:
    """Offboarding: revoke every connection of a user."""
    principal = require_machine("delete:connections")
    results = revoke_user_connections(check_user_id(user_id), Actor("m2m", principal.client_id or principal.sub))
    return {"user_id": user_id, "revoked": [result.as_json() for result in results]}
