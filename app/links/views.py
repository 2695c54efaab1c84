"""Opening a reconnect link: sign in with Auth0 first, then the ordinary connect flow.

Whoever holds a link must not be able to attach their own provider account to its user (the
connect-CSRF problem again), so the page signs the person in with Auth0 through the admin
console's web client (code flow, PKCE, nonce) and goes on only when the signed-in ``sub`` is the
link's user. This sign-in never creates an admin session: it only proves who is at the browser.
"""
from __future__ import annotations

import hmac

import requests
from authlib.integrations.base_client.errors import OAuthError
from flask import Blueprint, Response, current_app, redirect, request, session, url_for
from sqlalchemy import select

from ..admin.auth import _exchange, _sign_in_state, _tenant
from ..connect.flow import REQUEST_TTL, start_connect
from ..connect.params import from_connection
from ..errors import Forbidden, InvalidRequest, InvalidToken, NotFound
from ..extensions import db
from ..identity import Principal
from ..models import Connection, record_audit
from ..runtime import runtime
from .tokens import link_invalid, links_enabled, open_link

bp = Blueprint("connect_links", __name__, url_prefix="/link")

SESSION_KEY = "connector_link"


def _require_enabled() -> None:
    if not links_enabled(current_app.config):
        raise NotFound("reconnect links are not configured on this service")


def _callback_uri() -> str:
    # From configuration, never from the Host header a client controls.
    return current_app.config["PUBLIC_BASE_URL"] + url_for("connect_links.callback")


@bp.get("/<token>")
def open_page(token: str) -> Response:
    _require_enabled()
    open_link(runtime().keyring, token)  # a plain page for an expired or malformed link
    session[SESSION_KEY] = token  # which link this browser's sign-in is for (the session cookie is signed)
    try:
        return _tenant().authorize_redirect(_callback_uri())
    except requests.RequestException:
        raise InvalidRequest("the sign-in service could not be reached; try the link again shortly") from None


@bp.get("/callback", endpoint="callback")
def callback() -> Response:
    _require_enabled()
    token = session.pop(SESSION_KEY, None)
    if not isinstance(token, str):
        raise link_invalid("no link sign-in is in progress in this browser; open the link again")
    rt = runtime()
    link = open_link(rt.keyring, token)
    tenant = _tenant()
    if request.args.get("error"):
        raise InvalidRequest(f"sign-in failed: {request.args['error'][:64]}")
    try:
        state_data = _sign_in_state(tenant, request.args.get("state"))
        if state_data.get("redirect_uri") != _callback_uri():
            raise InvalidRequest("sign-in failed: this sign-in was not started for a link")
        claims = _exchange(tenant, state_data)
    except InvalidToken as exc:
        raise InvalidRequest(f"sign-in failed: {exc.description}") from None
    except OAuthError as exc:
        raise InvalidRequest(f"sign-in failed: {str(exc.error or 'invalid response')[:64]}") from None
    except (ValueError, RecursionError):
        raise InvalidRequest("sign-in failed: the identity provider's answer is not valid") from None
    except requests.RequestException:
        raise InvalidRequest("sign-in failed: the identity provider could not be reached") from None
    if not hmac.compare_digest(claims["sub"].encode(), link.user_id.encode()):
        record_audit("connect_link", "refused", actor_type="user", actor_id=claims["sub"],
                     user_id=link.user_id, provider=link.provider, reason="other_user")
        db.session.commit()
        raise Forbidden("this link was made for another account; sign in as that account. Nothing was changed.",
                        code="link_for_another_user")
    spec = rt.registry.get(link.provider)
    return_to = rt.return_urls.check(link.return_to)
    record_audit("connect_link", "opened", actor_type="user", actor_id=link.user_id,
                 user_id=link.user_id, provider=spec.name)
    # A reconnect goes back to the tenant (subdomain, host) the connection was made with.
    stored = db.session.scalar(select(Connection.params).where(Connection.user_id == link.user_id,
                                                               Connection.provider == spec.name))
    # A 409 insufficient_scope's link asks for what was missing.
    started = start_connect(rt.connect, Principal(sub=link.user_id, is_machine=False), spec, return_to,
                            scopes=link.scopes, params=from_connection(spec, stored))
    db.session.commit()
    response = redirect(started.authorize_url, 303)
    response.set_cookie(started.cookie_name, started.cookie_value, max_age=int(REQUEST_TTL.total_seconds()),
                        secure=rt.connect.secure_cookies, httponly=True, samesite="Lax", path="/")
    return response
