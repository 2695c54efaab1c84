"""POST /api/users/{user_id}/connect-links: a reconnect link a company can send to its user."""
from __future__ import annotations

from flask import Blueprint, current_app, request

from ..api.access import machine_access
from ..api.auth import require_machine
from ..api.machine import check_user_id
from ..errors import InvalidRequest, NotFound
from ..extensions import db
from ..models import record_audit
from ..runtime import runtime
from .tokens import create_link, links_enabled

bp = Blueprint("connect_links_api", __name__, url_prefix="/api/users")

PERMISSION = "create:connect_links"


@bp.post("/<user_id>/connect-links")
@machine_access(PERMISSION)
def create_connect_link(user_id: str) -> dict:
    principal = require_machine(PERMISSION)
    user_id = check_user_id(user_id)  # the UserId pattern of the OpenAPI document
    if not links_enabled(current_app.config):
        raise NotFound("connect links are not configured (ADMIN_CLIENT_ID and CONNECT_LINK_DEFAULT_RETURN_URL)",
                       code="links_not_configured")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest('send a JSON object: {"provider": "...", "return_to": "..."}')
    provider, return_to = body.get("provider"), body.get("return_to")
    if not isinstance(provider, str) or not isinstance(return_to, str):
        raise InvalidRequest("provider and return_to must be strings")
    rt = runtime()
    spec = rt.registry.get(provider)  # 400 unknown_provider
    return_to = rt.return_urls.check(return_to)  # 400 invalid_return_url
    url, link = create_link(user_id, spec.name, return_to)
    record_audit("connect_link", "created", actor_type="m2m", actor_id=principal.client_id or principal.sub,
                 user_id=user_id, provider=spec.name)
    db.session.commit()
    return {"url": url, "expires_at": link.expires_at_iso}
