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

from ..errors import Forbidden, InvalidRequest, InvalidToken, NotFound
from ..extensions import db
from ..identity import is_clean_text, parse_compact
from ..models import record_audit
from .blueprint import bp
from .sessions import DEMO_ADMIN_SUB, end_session, start_session
from .sign_in_state import SignInStateStore
from .throttle import FAILED, STARTED, SUCCEEDED, LoginThrottle, remember_device, throttle_key

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
    return throttle_key()


def _begin(sub: str, name: str | None) -> Response:
    session.clear()  # no fixation: the signed-in session starts from nothing
    lifetime = timedelta(seconds=current_app.config["ADMIN_SESSION_LIFETIME"])
    login_user(start_session(sub, name, lifetime))
    session.permanent = True
    record_audit("admin_login", "succeeded", actor_type="admin", actor_id=sub)
    _throttle().record(_client(), SUCCEEDED)
    response = redirect(url_for("admin.connections"))
    remember_device(response)
    return response


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


def _claims_options() -> dict:
    # Explicit, so Authlib checks these whatever the discovery document says (a fresh dict each
    # time: Authlib pops entries out of it).
    return {"iss": {"essential": True, "value": current_app.config["AUTH0_ISSUER"]},
            "aud": {"essential": True, "value": current_app.config["ADMIN_CLIENT_ID"]},
            "sub": {"essential": True}, "exp": {"essential": True}}


def check_audience(claims: Mapping, client_id: str) -> None:
    """OIDC Core §3.1.3.7 steps 3-5: ``aud`` contains our client id and no audience we do not
    trust (we trust none other); ``azp``, when present, is our client id."""
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if client_id not in audiences:
        raise InvalidToken("the ID token is not for this console (aud)")
    if any(value != client_id for value in audiences):
        raise InvalidToken("the ID token is also for other, untrusted audiences (aud)")
    if "azp" in claims and claims["azp"] != client_id:
        raise InvalidToken("the ID token was issued to another party (azp)")


def _started_here(tenant, state: str | None) -> bool:
    return bool(state) and len(state) <= 256 and tenant.framework.get_state_data(session, state) is not None


def _sign_in_state(tenant, state: str | None) -> dict:
    """The pending sign-in ``state`` names, if this browser started it; consumed only then.

    Authlib's own callback deletes the stored state for whoever presents it, so a stranger who
    learnt an admin's ``state`` could cancel that admin's sign-in (issue 11.12)."""
    if not state or len(state) > 256:
        raise InvalidRequest("sign-in failed: the state parameter is missing or malformed")
    data = tenant.framework.get_state_data(session, state)  # None unless this browser's cookie names it
    if not isinstance(data, dict) or not isinstance(data.get("nonce"), str):
        raise InvalidRequest("sign-in failed: this sign-in was not started in this browser, or it expired")
    tenant.framework.clear_state_data(session, state)
    return data


def _exchange(tenant, state_data: dict) -> dict:
    """Code for tokens at the tenant, then the ID token's claims, checked; InvalidToken or
    InvalidRequest for every way the answer can be wrong."""
    params = {"code": request.args.get("code"), "state": request.args.get("state")}
    for name in ("code_verifier", "redirect_uri"):
        if state_data.get(name):
            params[name] = state_data[name]
    if not params["code"] or len(params["code"]) > 2048:
        raise InvalidRequest("sign-in failed: the code parameter is missing or malformed")
    token = tenant.fetch_access_token(**params)
    id_token = token.get("id_token") if isinstance(token, dict) else None
    if not isinstance(id_token, str):
        raise InvalidToken("no ID token in the response")
    parse_compact(id_token, "ID token")  # our shape rules first: the JOSE library never sees a hostile structure
    try:
        claims = tenant.parse_id_token(token, nonce=state_data["nonce"], claims_options=_claims_options())
    except (JoseError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidToken(f"the ID token is invalid ({type(exc).__name__})") from None
    if claims is None:
        raise InvalidToken("no ID token in the response")
    check_audience(claims, current_app.config["ADMIN_CLIENT_ID"])
    if not is_clean_text(claims.get("sub")):
        raise InvalidToken("the ID token has no usable subject")
    return claims


@bp.get("/callback")
def callback() -> Response:
    if not current_app.config["ADMIN_CLIENT_ID"]:
        raise NotFound("admin sign-in through Auth0 is not configured (ADMIN_CLIENT_ID)")
    tenant = _tenant()
    if not _started_here(tenant, request.args.get("state")):
        # A browser back from a sign-in it started (already counted then) is not held up by
        # failures that others caused since; everything else is.
        _throttle().check(_client())
    error = request.args.get("error")
    if error:
        _fail("oauth_error")
        raise InvalidRequest(f"sign-in failed: {error[:64]}")
    try:
        claims = _exchange(tenant, _sign_in_state(tenant, request.args.get("state")))
    except InvalidToken as exc:
        _fail("invalid_id_token")
        raise InvalidRequest(f"sign-in failed: {exc.description}") from None
    except InvalidRequest:
        _fail("invalid_state")
        raise
    except OAuthError as exc:
        _fail("oauth_error")
        raise InvalidRequest(f"sign-in failed: {str(exc.error or 'invalid response')[:64]}") from None
    except (ValueError, RecursionError):  # the token endpoint's answer was not JSON (requests' JSONDecodeError too)
        _fail("invalid_token_response")
        raise InvalidRequest("sign-in failed: the identity provider's answer is not valid") from None
    except requests.RequestException:
        _fail("idp_unavailable")
        raise InvalidRequest("sign-in failed: the identity provider could not be reached") from None
    if not is_admin(claims, current_app.config):
        _fail("not_admin", claims["sub"])
        session.clear()
        raise Forbidden(f"{claims['sub']} is not an administrator of this console")
    name = next((v for v in (claims.get("name"), claims.get("email")) if is_clean_text(v)), None)
    return _begin(claims["sub"], name)


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
