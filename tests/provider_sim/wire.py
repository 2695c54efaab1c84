"""What goes over the wire between the connector and the simulator: the recorded request, and
the provider-shaped answers (JSON or form-encoded, errors in the profile's shape)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from urllib.parse import unquote, urlencode

from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from .profile import ErrorAnswer, Profile


class QuietHandler(WSGIRequestHandler):
    """No access log: a request line can carry a token (HubSpot's DELETE /refresh-tokens/{token})."""

    def log_request(self, *args) -> None:
        pass


@dataclass(frozen=True)
class Recorded:
    kind: str  # authorize | token | refresh | revoke | userinfo | unknown
    method: str
    path: str
    query: dict
    headers: dict
    form: dict
    json: object
    path_params: dict
    status: int = 0

    @property
    def body(self) -> dict:
        """The body's fields, whatever its format."""
        return self.json if isinstance(self.json, dict) else self.form

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def sent_token(self, style: str) -> str | None:
        """The token a revocation request of ``style`` carries."""
        bearer = self.headers.get("Authorization", "")
        bearer = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        json_body = self.json if isinstance(self.json, dict) else {}
        return {"rfc7009": self.form.get("token"), "json_token": json_body.get("token"), "bearer": bearer,
                "slack_api": bearer or self.form.get("token"), "github_grant": json_body.get("access_token"),
                "delete_token_url": self.path_params.get("token")}[style]

    @property
    def client_auth(self) -> str:
        """Where the client authenticated: basic | post | both | none."""
        basic = self.headers.get("Authorization", "").startswith("Basic ")
        post = "client_secret" in self.body
        return "both" if basic and post else "basic" if basic else "post" if post else "none"


def render(profile: Profile, request: Request, answer: ErrorAnswer | dict) -> Response:
    """A token-endpoint answer as the provider sends it: a success (with its success flag) or an
    error; JSON, or form-encoded (GitHub, unless the request accepts JSON)."""
    if isinstance(answer, ErrorAnswer):
        body, status, form = answer.body, answer.status, answer.form
    else:
        flag = {profile.success_flag: True} if profile.success_flag else {}
        body, status, form = flag | answer, 200, False
    if profile.form_unless_accept_json:
        form = "application/json" not in request.headers.get("Accept", "")
    if form:
        return Response(urlencode({k: v for k, v in body.items() if v is not None}), status=status,
                        mimetype="application/x-www-form-urlencoded")
    return Response(json.dumps(body), status=status, mimetype="application/json",
                    headers={"Cache-Control": "no-store"})


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """The (client_id, secret) of an Authorization: Basic header (RFC 6749 2.3.1 form-encoding)."""
    try:
        raw = base64.b64decode(request.headers.get("Authorization", "")[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = raw.partition(":")
    return unquote(user), unquote(password)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def unsigned_id_token(claims: dict) -> str:
    """An ID token the connector reads but does not verify: it came from the token endpoint
    (OIDC Core 3.1.3.7)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'kid': 'sim'})}.{part(claims)}.c2ln"
