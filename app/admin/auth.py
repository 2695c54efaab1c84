"""Admin sign-in: OpenID Connect code flow with PKCE and nonce at Auth0 (Authlib's Flask client).

Who is an admin is configuration: an allowlist of ``sub``s (ADMIN_SUBS) and/or a role in a
claim of the ID token (ADMIN_ROLE_CLAIM, e.g. a namespaced claim an Auth0 Action adds).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, Response, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from joserfc.errors import JoseError

from ..errors import Forbidden, InvalidRequest, NotFound
from ..extensions import db
from ..models import record_audit
from .blueprint import bp
from .sessions import DEMO_ADMIN_SUB, end_session, start_session
from .sign_in_state import SignInStateStore
from .throttle import FAILED, STARTED, SUCCEEDED, LoginThrottle

log = logging.getLogger(__name__)


def init_oauth(app: Flask, timeout: tuple[float, float]) -> None:
    # One registry per app: Authlib caches the tenant's metadata and keys on the client.
    oauth = app.extensions["admin_oauth"] = OAuth(app, cache=SignInStateStore())
    if not app.config["ADMIN_CLIENT_ID"]:
        return
    issuer = app.config["AUTH0_ISSUER"]
    oauth.register(
        "auth0",
        client_id=app.config["ADMIN_CLIENT_ID"],
        client_secret=app.config["ADMIN_CLIENT_SECRET"],
        server_metadata_url=issuer.rstrip("/") + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid profile email", "code_challenge_method": "S256",
                       "default_timeout": timeout},
    )


def _tenant():
    return current_app.extensions["admin_oauth"].auth0


def is_admin(claims: Mapping, config: Mapping) -> bool:
    if claims.get("sub") in config["ADMIN_SUBS"]:
        return True
    claim = config["ADMIN_ROLE_CLAIM"]
    if not claim:
        return False
    value = claims.get(claim)
    roles = value if isinstance(value, list) else [value]
    return config["ADMIN_ROLE"] in roles


def _throttle() -> LoginThrottle:
    return LoginThrottle(max_failures=current_app.config["ADMIN_LOGIN_MAX_FAILURES"])


def _client() -> str:
    return request.remote_addr or "unknown"


def _begin(sub: str, name: str | None) -> Response:
    session.clear()  # no fixation: the signed-in session starts from nothing
    lifetime = timedelta(seconds=current_app.config["ADMIN_SESSION_LIFETIME"])
    login_user(start_session(sub, name, lifetime))
    session.permanent = True
    record_audit("admin_login", "succeeded", actor_type="admin", actor_id=sub)
    _throttle().record(_client(), SUCCEEDED)
    return redirect(url_for("admin.connections"))


def _fail(reason: str, sub: str | None = None) -> None:
    record_audit("admin_login", "failed", actor_type="admin", actor_id=sub, reason=reason)
    _throttle().record(_client(), FAILED)


@bp.get("/login")
def login() -> str:
    if current_user.is_authenticated:
        return redirect(url_for("admin.connections"))
    return render_template("admin/login.html", auth0=bool(current_app.config["ADMIN_CLIENT_ID"]),
                           demo=current_app.config["ADMIN_DEMO_LOGIN"])


@bp.get("/login/start")
def login_start() -> Response:
    if not current_app.config["ADMIN_CLIENT_ID"]:
        raise NotFound("admin sign-in through Auth0 is not configured (ADMIN_CLIENT_ID)")
    _throttle().check(_client())
    _throttle().record(_client(), STARTED)
    try:
        # From configuration, never from the Host header a client controls.
        redirect_uri = current_app.config["PUBLIC_BASE_URL"] + url_for("admin.callback")
        return _tenant().authorize_redirect(redirect_uri)
    except requests.RequestException:
        raise InvalidRequest("the identity provider could not be reached; try again shortly") from None


@bp.get("/callback")
def callback() -> Response:
    if not current_app.config["ADMIN_CLIENT_ID"]:
        raise NotFound("admin sign-in through Auth0 is not configured (ADMIN_CLIENT_ID)")
    _throttle().check(_client())
    try:
        token = _tenant().authorize_access_token()
    except OAuthError as exc:
        _fail(exc.error or "oauth_error")
        raise InvalidRequest(f"sign-in failed: {exc.error or 'invalid response'}") from None
    except (JoseError, ValueError, KeyError) as exc:
        _fail("invalid_id_token")
        raise InvalidRequest(f"sign-in failed: the ID token is invalid ({type(exc).__name__})") from None
    except requests.RequestException:
        _fail("idp_unavailable")
        raise InvalidRequest("sign-in failed: the identity provider could not be reached") from None
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        _fail("no_id_token")
        raise InvalidRequest("sign-in failed: no ID token in the response")
    if not is_admin(claims, current_app.config):
        _fail("not_admin", claims["sub"])
        session.clear()
        raise Forbidden(f"{claims['sub']} is not an administrator of this console")
    return _begin(claims["sub"], claims.get("name") or claims.get("email"))


@bp.post("/demo-login")
def demo_login() -> Response:
    if not current_app.config["ADMIN_DEMO_LOGIN"]:
        raise NotFound("demo sign-in exists only in demo mode")
    return _begin(DEMO_ADMIN_SUB, "Demo administrator")


@bp.post("/logout")
def logout() -> Response:
    end_session(current_user.token)
    record_audit("admin_logout", "succeeded", actor_type="admin", actor_id=current_user.sub)
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("admin.login"))
