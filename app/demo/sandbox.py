"""The sandbox provider: a small, strict OAuth 2.0 authorization server built on Authlib.

Like the providers that rotate refresh tokens (Microsoft, Atlassian, Notion), it issues a new
refresh token on every refresh and revokes the whole grant when an old one is presented again.
It requires PKCE S256, an exact redirect URI and client_secret_basic, revokes by RFC 7009, and
serves one protected resource, ``/demo/sandbox/api/me``, for the proxy.
"""
from __future__ import annotations

import secrets
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer, ResourceProtector, current_token
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from flask import Blueprint, Flask, Response, current_app, render_template, request

from ..extensions import csrf
from . import pages
from .sandbox_store import CODE_TTL, SandboxClient, SandboxCode, SandboxStore, SandboxToken, SandboxUser

CLIENT_ID = "connector-demo"
CLIENT_SECRET = "sandbox-secret-for-the-demo-only"  # public: the sandbox exists only in demo mode
SCOPES = ("profile", "files.read")
ACCESS_TOKEN_TTL = 300  # short, so the demo shows refreshes

bp = Blueprint("demo_sandbox", __name__, url_prefix="/demo/sandbox")
bp.after_request(pages.secure_headers)


def entry(base_url: str) -> dict:
    """The sandbox's providers-file entry: the same shape an operator writes for a real provider."""
    root = f"{base_url}/demo/sandbox"
    return {
        "display_name": "Sandbox (demo)",
        "authorize_url": f"{root}/authorize",
        "token_url": f"{root}/token",
        "revocation_url": f"{root}/revoke",
        "revocation_style": "rfc7009",
        "api_base_url": f"{root}/api/",
        "scopes": list(SCOPES),
        "client_auth": "client_secret_basic",
        "pkce": True,
        "account_id": {"source": "userinfo", "url": f"{root}/api/me", "field": "id"},
    }


class SandboxServer(AuthorizationServer):
    def __init__(self, store: SandboxStore, client: SandboxClient):
        super().__init__(query_client=self._query_client, save_token=self._save_token)
        self.store = store
        self.client = client
        self.load_config({"OAUTH2_REFRESH_TOKEN_GENERATOR": True,
                          "OAUTH2_TOKEN_EXPIRES_IN": {"authorization_code": ACCESS_TOKEN_TTL,
                                                      "refresh_token": ACCESS_TOKEN_TTL}})
        self.register_grant(CodeGrant, [CodeChallenge(required=True)])
        self.register_grant(RotatingRefreshGrant)
        self.register_endpoint(Revocation)

    def _query_client(self, client_id: str) -> SandboxClient | None:
        return self.client if client_id == self.client.client_id else None

    def _save_token(self, token: dict, oauth_request) -> None:
        previous = oauth_request.refresh_token  # set on a refresh: the new token continues its grant
        self.store.add_token(SandboxToken(
            access_token=token["access_token"], refresh_token=token.get("refresh_token"),
            client_id=oauth_request.client.get_client_id(), scope=token.get("scope", ""),
            user=oauth_request.user.get_user_id(), grant_id=previous.grant_id if previous else secrets.token_hex(8),
            issued_at=time.time(), expires_in=int(token["expires_in"])))


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        data = self.request.payload.data
        if not data.get("code_challenge") or data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("PKCE is required: code_challenge with code_challenge_method=S256")
        return redirect_uri

    def save_authorization_code(self, code: str, oauth_request) -> None:
        data = oauth_request.payload.data
        self.server.store.save_code(SandboxCode(
            code=code, client_id=oauth_request.client.get_client_id(), redirect_uri=oauth_request.payload.redirect_uri,
            scope=oauth_request.payload.scope or "", user=oauth_request.user.get_user_id(),
            code_challenge=data.get("code_challenge"), code_challenge_method="S256", expires_at=time.time() + CODE_TTL))

    def query_authorization_code(self, code: str, client: SandboxClient) -> SandboxCode | None:
        return self.server.store.find_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: SandboxCode) -> None:
        self.server.store.delete_code(authorization_code.code)

    def authenticate_user(self, authorization_code: SandboxCode) -> SandboxUser:
        return SandboxUser(authorization_code.user)


class RotatingRefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> SandboxToken | None:
        return self.server.store.claim_refresh(refresh_token)

    def authenticate_user(self, refresh_token: SandboxToken) -> SandboxUser:
        return refresh_token.get_user()

    def revoke_old_credential(self, refresh_token: SandboxToken) -> None:
        self.server.store.retire(refresh_token)


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> SandboxToken | None:
        return self.server.store.find(token_string, token_type_hint)

    def revoke_token(self, token: SandboxToken, oauth_request) -> None:
        self.server.store.revoke_grant(token.grant_id)  # revoking either token ends the grant


class SandboxTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string: str) -> SandboxToken | None:
        return server().store.find_access(token_string)


require_token = ResourceProtector()
require_token.register_token_validator(SandboxTokenValidator())


def server() -> SandboxServer:
    return current_app.extensions["demo_sandbox"]


def init_app(app: Flask, state_dir: str) -> None:
    # The connector gives each provider its own redirect URI: /connect/callback/<name>.
    client = SandboxClient(CLIENT_ID, CLIENT_SECRET, f"{app.config['PUBLIC_BASE_URL']}/connect/callback/sandbox",
                           " ".join(SCOPES))
    app.extensions["demo_sandbox"] = SandboxServer(SandboxStore(state_dir), client)
    app.register_blueprint(bp)


@bp.errorhandler(OAuth2Error)
def oauth_error(error: OAuth2Error) -> Response:
    # Before the client and redirect URI are known to be good, never redirect: say so on a page.
    return Response(render_template("demo/message.html", title="Sandbox: invalid authorization request",
                                    message=f"{error.error}: {error.description or ''}".strip(": ")), status=400)


@bp.route("/authorize", methods=["GET", "POST"])
def authorize() -> Response | str:
    grant = server().get_consent_grant(end_user=None)
    if request.method == "GET":
        return render_template("demo/consent.html", scopes=grant.request.payload.scope.split(),
                               client_name="OAuth connector (demo)")
    csrf.protect()
    account = (request.form.get("account") or "").strip()[:40] or "sandbox-user"
    user = SandboxUser(account) if request.form.get("decision") == "allow" else None
    return server().create_authorization_response(grant=grant, grant_user=user)


@bp.post("/token")
def token() -> Response:
    return server().create_token_response()


@bp.post("/revoke")
def revoke() -> Response:
    return server().create_endpoint_response(Revocation.ENDPOINT_NAME)


@bp.get("/api/me")
@require_token("profile")
def me() -> dict:
    return {"id": current_token.user, "name": current_token.user, "plan": "sandbox"}


@bp.get("/api/files")
@require_token("files.read")
def files() -> dict:
    return {"files": [{"name": "welcome.txt", "size": 42}, {"name": "report.pdf", "size": 1024}],
            "owner": current_token.user}
