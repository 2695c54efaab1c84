"""The sandbox provider's records (Authlib model mixins) and their store.

Grants live in memory and in one owner-only JSON file in the demo state directory, so a
restarted demo keeps its connections working. Authorization codes are memory-only (10 min).
"""
from __future__ import annotations

import hmac
import json
import os
import threading
import time
from dataclasses import asdict, dataclass

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin, scope_to_list

STATE_FILE = "demo-sandbox.json"
CODE_TTL = 600


@dataclass(frozen=True)
class SandboxUser:
    name: str

    def get_user_id(self) -> str:
        return self.name


@dataclass(frozen=True)
class SandboxClient(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_allowed_scope(self, scope: str) -> str:
        allowed = set(scope_to_list(self.scope))
        return " ".join(s for s in scope_to_list(scope) or [] if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.redirect_uri  # exact match, as RFC 9700 asks

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(client_secret.encode(), self.client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class SandboxCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class SandboxToken(TokenMixin):
    access_token: str
    refresh_token: str | None
    client_id: str
    scope: str
    user: str
    grant_id: str
    issued_at: float
    expires_in: int
    revoked: bool = False  # the access token (and the grant, when the whole grant is revoked)
    refresh_used: bool = False  # rotated: presenting it again revokes the grant

    def check_client(self, client: ClientMixin) -> bool:
        return client.get_client_id() == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> SandboxUser:
        return SandboxUser(self.user)


class SandboxStore:
    def __init__(self, state_dir: str):
        self._path = os.path.join(state_dir, STATE_FILE)
        self._lock = threading.Lock()
        self._codes: dict[str, SandboxCode] = {}
        self._tokens: list[SandboxToken] = []
        if os.path.exists(self._path):
            with open(self._path, encoding="utf-8") as handle:
                self._tokens = [SandboxToken(**row) for row in json.load(handle)]

    # Authorization codes
    def save_code(self, code: SandboxCode) -> None:
        with self._lock:
            now = time.time()
            self._codes = {k: v for k, v in self._codes.items() if v.expires_at > now}
            self._codes[code.code] = code

    def find_code(self, code: str, client_id: str) -> SandboxCode | None:
        with self._lock:
            found = self._codes.get(code)
        if found and found.client_id == client_id and found.expires_at > time.time():
            return found
        return None

    def delete_code(self, code: str) -> None:
        with self._lock:
            self._codes.pop(code, None)

    # Tokens
    def add_token(self, token: SandboxToken) -> None:
        with self._lock:
            self._tokens.append(token)
            self._persist()

    def find_access(self, access_token: str) -> SandboxToken | None:
        with self._lock:
            return next((t for t in self._tokens if hmac.compare_digest(t.access_token, access_token)), None)

    def find(self, value: str, hint: str | None) -> SandboxToken | None:
        with self._lock:
            for token in self._tokens:
                if hint != "refresh_token" and hmac.compare_digest(token.access_token, value):
                    return token
                if hint != "access_token" and token.refresh_token and hmac.compare_digest(token.refresh_token, value):
                    return token
        return None

    def claim_refresh(self, refresh_token: str) -> SandboxToken | None:
        """The token holding ``refresh_token``, marked used at once (so two concurrent uses
        cannot both succeed). A refresh token used before revokes its whole grant."""
        with self._lock:
            token = next((t for t in self._tokens
                          if t.refresh_token and hmac.compare_digest(t.refresh_token, refresh_token)), None)
            if token is None or token.revoked and not token.refresh_used:
                return None
            if token.refresh_used:
                self._revoke_grant(token.grant_id)
                self._persist()
                return None
            token.refresh_used = True
            self._persist()
            return token

    def retire(self, token: SandboxToken) -> None:
        with self._lock:
            token.revoked = True
            self._persist()

    def revoke_grant(self, grant_id: str) -> None:
        with self._lock:
            self._revoke_grant(grant_id)
            self._persist()

    def _revoke_grant(self, grant_id: str) -> None:
        for token in self._tokens:
            if token.grant_id == grant_id:
                token.revoked = token.refresh_used = True

    def _persist(self) -> None:
        now = time.time()
        # Forget what can never be used again: revoked, rotated and expired.
        self._tokens = [t for t in self._tokens
                        if not (t.revoked and t.refresh_used and t.issued_at + t.expires_in < now - 86400)]
        tmp = self._path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump([asdict(t) for t in self._tokens], handle)
        os.replace(tmp, self._path)
