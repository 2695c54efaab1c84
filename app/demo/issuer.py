"""The demo identity issuer: stands in for an Auth0 tenant so the demo needs no account.

It publishes discovery and a JWKS like a real tenant, so the service verifies its tokens
through exactly the same path (AUTH0_ISSUER, discovery, RS256). Users pick a demo identity on
a sign-in page and the SPA receives an RS256 access token for the configured audience; a demo
job client gets a machine token by client credentials. Nothing here is safe outside a demo.
"""
from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlencode

from flask import Blueprint, Flask, Response, current_app, jsonify, redirect, render_template, request
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from ..errors import InvalidRequest
from ..extensions import csrf
from ..runtime import runtime
from . import keys, pages

SPA_CLIENT_ID = "demo-spa"
JOB_CLIENT_ID = "demo-job"
JOB_CLIENT_SECRET = "demo-job-secret"  # public: the demo issuer exists only in demo mode
JOB_PERMISSIONS = ("read:connections", "read:tokens", "delete:connections")
USERS = {"alice": "Alice Example", "bob": "Bob Example"}
TOKEN_TTL = 3600

bp = Blueprint("demo_issuer", __name__, url_prefix="/demo/issuer")
bp.after_request(pages.secure_headers)


def init_app(app: Flask, state_dir: str) -> None:
    app.extensions["demo_issuer_key"] = keys.load_or_create(state_dir)
    app.register_blueprint(bp)


def _key() -> RSAKey:
    return current_app.extensions["demo_issuer_key"]


def _issue(claims: dict) -> str:
    now = int(time.time())
    claims = {"iss": current_app.config["AUTH0_ISSUER"], "aud": [current_app.config["AUTH0_AUDIENCE"]],
              "iat": now, "exp": now + TOKEN_TTL, **claims}
    return jwt.encode({"alg": "RS256", "kid": _key().kid, "typ": "at+jwt"}, claims, _key())


@bp.get("/.well-known/openid-configuration")
def discovery() -> Response:
    issuer = current_app.config["AUTH0_ISSUER"]
    return jsonify(issuer=issuer, jwks_uri=f"{issuer}.well-known/jwks.json",
                   authorization_endpoint=f"{issuer}authorize", token_endpoint=f"{issuer}oauth/token",
                   response_types_supported=["token"], grant_types_supported=["implicit", "client_credentials"],
                   token_endpoint_auth_methods_supported=["client_secret_basic"],
                   id_token_signing_alg_values_supported=["RS256"])


@bp.get("/.well-known/jwks.json")
def jwks() -> Response:
    return jsonify(KeySet([_key()]).as_dict(private=False))


def _sign_in_request() -> tuple[str, str]:
    args = request.values
    if args.get("client_id") != SPA_CLIENT_ID or args.get("response_type") != "token":
        raise InvalidRequest(f"client_id must be {SPA_CLIENT_ID} and response_type must be token")
    state = args.get("state") or ""
    if not 16 <= len(state) <= 128:
        raise InvalidRequest("state (16 to 128 characters) is required")
    return runtime().return_urls.check(args.get("redirect_uri")), state


@bp.get("/authorize")
def sign_in_page() -> str:
    _sign_in_request()
    return render_template("demo/sign_in.html", users=USERS)


@bp.post("/authorize")
def sign_in() -> Response:
    csrf.protect()
    redirect_uri, state = _sign_in_request()
    user = request.form.get("user")
    if user not in USERS:
        raise InvalidRequest("pick one of the demo users")
    token = _issue({"sub": f"demo|{user}", "azp": SPA_CLIENT_ID, "scope": "openid profile", "name": USERS[user]})
    # Implicit-style response in the fragment: it never reaches a server log or a Referer.
    fragment = urlencode({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL, "state": state})
    return redirect(f"{redirect_uri}#{fragment}", 303)


@bp.post("/oauth/token")
def machine_token() -> Response:
    auth = request.authorization
    valid = (auth is not None and auth.type == "basic" and auth.username == JOB_CLIENT_ID
             and hmac.compare_digest((auth.password or "").encode(), JOB_CLIENT_SECRET.encode()))
    if not valid:
        return jsonify(error="invalid_client"), 401
    if request.form.get("grant_type") != "client_credentials":
        return jsonify(error="unsupported_grant_type"), 400
    token = _issue({"sub": f"{JOB_CLIENT_ID}@clients", "azp": JOB_CLIENT_ID, "gty": "client-credentials",
                    "scope": " ".join(JOB_PERMISSIONS), "jti": secrets.token_hex(8)})
    return jsonify(access_token=token, token_type="Bearer", expires_in=TOKEN_TTL, scope=" ".join(JOB_PERMISSIONS))
