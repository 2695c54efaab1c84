"""The simulator: one profile served on a loopback port by a threaded werkzeug server.

It is as strict as its profile: the client authentication, body format, headers and PKCE the
profile demands, and nothing else, are accepted; codes are single-use and bound to their
redirect URI and PKCE challenge; refresh tokens behave as the profile's rotation says; a grant
killed by ``kill_grants`` (the user revoked the app) answers the profile's dead-grant error.
Every request is recorded (``records``) so tests assert on what the connector sent.
Bounded: at most ``MAX_CONCURRENT`` requests at once (others get 503), bodies up to 64 KiB,
the last ``MAX_RECORDS`` requests kept.
"""
from __future__ import annotations

import collections
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlencode

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from .profile import Profile, path_pattern
from .wire import QuietHandler, Recorded, basic_credentials, render, s256, unsigned_id_token

MAX_CONCURRENT = 16
MAX_RECORDS = 500
MAX_BODY = 64 * 1024


@dataclass
class Grant:
    scopes: list[str]
    alive: bool = True
    access: list[str] = field(default_factory=list)  # issued, latest last
    refresh: dict[str, bool] = field(default_factory=dict)  # token -> still valid
    refreshes: int = 0


@dataclass
class PendingCode:
    redirect_uri: str
    challenge: str | None
    method: str | None
    scopes: list[str]
    nonce: str | None
    used: bool = False


class Simulator:
    def __init__(self, profile: Profile, client_id: str, client_secret: str):
        self.profile, self.client_id, self.client_secret = profile, client_id, client_secret
        self.records: collections.deque[Recorded] = collections.deque(maxlen=MAX_RECORDS)
        self.grants: list[Grant] = []
        self._codes: dict[str, PendingCode] = {}
        self.foreign_iss = False  # tests: send another authorization server's iss (a mix-up)
        self.refuse_revocations = False  # tests: revocation answers the profile's refusal
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_CONCURRENT)
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # A short poll interval: shutdown() waits for serve_forever to notice, up to one interval.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        routes = [("authorize", profile.authorize_url), ("token", profile.token_url)]
        if profile.refresh_url:
            routes.append(("refresh", profile.refresh_url))
        if profile.revocation:
            routes.append(("revoke", profile.revocation.url))
        routes += [("userinfo", url) for url, _ in profile.userinfo] + list(profile.aliases)
        self._routes = [(kind, path_pattern(url)) for kind, url in routes]

    def __enter__(self) -> Simulator:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- for tests ---------------------------------------------------------------------------
    def of(self, kind: str) -> list[Recorded]:
        return [r for r in self.records if r.kind == kind]

    def kill_grants(self) -> None:
        """The user revoked the app at the provider: every token of every grant is dead."""
        with self._lock:
            for grant in self.grants:
                grant.alive = False

    def grant_alive(self) -> bool:
        with self._lock:
            return any(g.alive for g in self.grants)

    def latest_access(self) -> str:
        with self._lock:
            return self.grants[-1].access[-1]

    def latest_refresh(self) -> str | None:
        """The refresh token most recently issued (the one a client should hold now)."""
        with self._lock:
            issued = list(self.grants[-1].refresh) if self.grants else []
            return issued[-1] if issued else None

    # -- WSGI --------------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        if not self._slots.acquire(blocking=False):
            return Response("busy", status=503)(environ, start_response)
        try:
            request = Request(environ)
            request.max_content_length = MAX_BODY
            return self._dispatch(request)(environ, start_response)
        finally:
            self._slots.release()

    def _dispatch(self, request: Request) -> Response:
        kind, params = "unknown", {}
        for index, (name, pattern) in enumerate(self._routes):
            match = pattern.match(request.path)
            if match:
                kind, params = name, {k: unquote(v) for k, v in match.groupdict().items()}
                params["_route"] = index
                break
        body = request.get_json(silent=True) if request.mimetype == "application/json" else None
        form = dict(request.form) if request.mimetype == "application/x-www-form-urlencoded" else {}
        handler = {"authorize": self._authorize, "token": self._token, "refresh": self._token,
                   "revoke": self._revoke, "userinfo": self._userinfo}.get(kind)
        record = Recorded(kind, request.method, request.path, dict(request.args), dict(request.headers),
                          form, body, params)
        response = handler(request, record) if handler else Response("not found", status=404)
        if kind in ("token", "refresh") and record.body.get("grant_type") == "refresh_token":
            kind = "refresh"
        elif kind == "refresh":
            kind = "token"
        with self._lock:
            self.records.append(Recorded(kind, record.method, record.path, record.query, record.headers,
                                         record.form, record.json, record.path_params, response.status_code))
        return response

    # -- authorize ---------------------------------------------------------------------------
    def _authorize(self, request: Request, record: Recorded) -> Response:
        p, q = self.profile, record.query
        if q.get("client_id") != self.client_id or not q.get("redirect_uri") or q.get("response_type") != "code":
            return Response("bad authorization request", status=400)
        challenge, method = q.get("code_challenge"), q.get("code_challenge_method", "plain")
        redirect = q["redirect_uri"]
        answer = {"state": q.get("state", "")}
        if p.pkce == "required" and not challenge:
            answer.update(error="invalid_request", error_description="code_challenge required")
        elif challenge and method not in ("S256", "plain"):
            answer.update(error="invalid_request", error_description="unsupported code_challenge_method")
        else:
            code = secrets.token_urlsafe(16)
            raw = q.get(p.scope_param, "")
            scopes = [s for s in raw.split(p.scope_separator) if s] or [s for s in p.default_scope.split() if s]
            with self._lock:
                self._codes[code] = PendingCode(redirect, challenge, method if challenge else None, scopes,
                                                q.get("nonce"))
            answer["code"] = code
            answer.update(dict(p.callback_extras))
        if p.sends_iss:
            answer["iss"] = self.url + "/attacker.example" if self.foreign_iss else self._issuer()
        return Response("", status=302, headers={"Location": f"{redirect}?{urlencode(answer)}"})

    def _issuer(self) -> str:
        return self.url + "/" + (self.profile.issuer or "").removeprefix("https://")

    # -- token and refresh -------------------------------------------------------------------
    def _client_ok(self, request: Request, record: Recorded, demanded: str) -> bool:
        where = record.client_auth
        if where == "basic":
            ok = basic_credentials(request) == (self.client_id, self.client_secret)
        elif where == "post":
            body = record.body
            ok = body.get("client_id") == self.client_id and body.get("client_secret") == self.client_secret
        else:
            return False
        return ok and (demanded == "either" or demanded == where)

    def _token(self, request: Request, record: Recorded) -> Response:
        p = self.profile
        if request.method != "POST":
            return Response("method not allowed", status=405)
        if p.body_format == "json" and not isinstance(record.json, dict):
            return render(self.profile, request, p.error("invalid_request", "the body must be JSON"))
        if p.body_format == "json" and record.content_type != "application/json":
            return render(self.profile, request, p.error("invalid_request", "the body must be JSON"))
        if p.body_format == "either" and not (isinstance(record.json, dict) or record.form):
            return render(self.profile, request, p.error("invalid_request", "the body must be JSON or a form"))
        if p.body_format == "form" and record.content_type != "application/x-www-form-urlencoded":
            return render(self.profile, request, p.error("invalid_request", "the body must be form-encoded"))
        for name, value in p.required_headers:
            if request.headers.get(name) is None or (value and request.headers.get(name) != value):
                return render(self.profile, request, p.error("invalid_request", f"header {name} required"))
        if not self._client_ok(request, record, p.client_auth):
            return render(self.profile, request, p.error("invalid_client", status=401))
        grant_type = record.body.get("grant_type")
        at_refresh_url = record.kind == "refresh" or (p.refresh_url is None and grant_type == "refresh_token")
        if grant_type == "refresh_token" and at_refresh_url:
            return self._refresh(request, record)
        if grant_type == "authorization_code" and record.kind == "token":
            return self._exchange(request, record)
        return render(self.profile, request, p.error("unsupported_grant_type"))

    def _exchange(self, request: Request, record: Recorded) -> Response:
        p, body = self.profile, record.body
        with self._lock:
            pending = self._codes.get(body.get("code", ""))
            fresh = pending is not None and not pending.used
            if fresh:
                pending.used = True
        if not fresh or body.get("redirect_uri") != pending.redirect_uri:
            return render(self.profile, request, p.error("invalid_grant", "bad code or redirect_uri"))
        verifier = body.get("code_verifier")
        if verifier and p.pkce == "refused":
            return render(self.profile, request, p.error("pkce_not_allowed"))
        if pending.challenge:
            expected = verifier if pending.method == "plain" else s256(verifier or "")
            if not verifier or expected != pending.challenge:
                return render(self.profile, request, p.error("invalid_grant", "code_verifier does not match"))
        elif verifier:
            return render(self.profile, request, p.error("invalid_grant", "code_verifier without a challenge"))
        grant = Grant(pending.scopes)
        tokens = self._issue(grant, refresh=p.issues_refresh_token)
        with self._lock:
            self.grants.append(grant)
        if p.id_token_for_openid and "openid" in pending.scopes:
            claims = {"iss": self._issuer(), "aud": self.client_id, "sub": p.account_id or "sub-1"}
            tokens["id_token"] = unsigned_id_token(claims | ({"nonce": pending.nonce} if pending.nonce else {}))
        return render(self.profile, request, self._shape(tokens, grant, p.token_path, exchange=True))

    def _refresh(self, request: Request, record: Recorded) -> Response:
        p, body = self.profile, record.body
        if p.refresh_needs_redirect_uri and not body.get("redirect_uri"):
            return render(self.profile, request, p.error("invalid_request", "redirect_uri required"))
        old = body.get("refresh_token", "")
        with self._lock:
            grant = next((g for g in self.grants if g.refresh.get(old)), None)
            if grant is None or not grant.alive:
                return render(self.profile, request, p.dead_grant)
            grant.refreshes += 1
            rotate = p.rotation in ("rotating", "new_old_valid") or (
                p.rotation == "sometimes" and grant.refreshes % 2 == 0)
            if p.rotation == "rotating":
                grant.refresh[old] = False
        tokens = self._issue(grant, refresh=rotate)
        if p.rotation == "same":
            tokens["refresh_token"] = old
        if p.rotation == "access_only":
            tokens = {"access_token": tokens["access_token"], "expires_in": p.access_ttl}
        return render(self.profile, request, self._shape(tokens, grant, p.refresh_token_path, exchange=False))

    def _issue(self, grant: Grant, *, refresh: bool) -> dict:
        p = self.profile
        access = f"{p.name}-at-{secrets.token_urlsafe(12)}"
        tokens: dict = {"access_token": access, "token_type": p.token_type}
        if p.expires:
            tokens["expires_in"] = p.access_ttl
        if p.sends_expires_at and p.expires:
            tokens["expires_at"] = int(time.time()) + p.access_ttl
        with self._lock:
            grant.access.append(access)
            if refresh:
                token = f"{p.name}-rt-{secrets.token_urlsafe(12)}"
                grant.refresh[token] = True
                tokens["refresh_token"] = token
        if refresh and p.refresh_token_expires_in:
            tokens[p.refresh_token_expires_in_key] = p.refresh_token_expires_in
        if p.scope_style != "absent":
            tokens[p.scope_key] = p.format_scope(grant.scopes)
        return tokens

    def _shape(self, tokens: dict, grant: Grant, path: str, *, exchange: bool) -> dict:
        """Put the user's tokens where the profile says (Slack: under authed_user) and add the
        provider's extra fields to a code exchange's answer."""
        p = self.profile
        extras = dict(p.token_extras) if exchange else {}
        if not path:
            return extras | tokens
        outer = extras | {"access_token": f"{p.name}-bot-{secrets.token_urlsafe(8)}", "token_type": "bot"}
        node = outer
        for part in path.split(".")[:-1]:
            node = node.setdefault(part, {})
        last = path.split(".")[-1]
        node[last] = (node.get(last) or {}) | tokens
        return outer

    # -- userinfo and revocation -------------------------------------------------------------
    def _alive_access(self, token: str) -> Grant | None:
        with self._lock:
            return next((g for g in self.grants if g.alive and token in g.access), None)

    def _userinfo(self, request: Request, record: Recorded) -> Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if self._alive_access(token) is None:
            return Response(json.dumps({"message": "bad credentials"}), status=401, mimetype="application/json")
        route = self._routes[record.path_params["_route"]][1]
        body = next(b for url, b in self.profile.userinfo if path_pattern(url).pattern == route.pattern)
        return Response(json.dumps(body), mimetype="application/json")

    def _revoke(self, request: Request, record: Recorded) -> Response:
        rule = self.profile.revocation
        if request.method != rule.method:
            return Response("method not allowed", status=405)
        if self.refuse_revocations and rule.refusal is not None:
            return Response(json.dumps(rule.refusal.body), status=rule.refusal.status, mimetype="application/json")
        token = record.sent_token(rule.style)
        if rule.style == "github_grant" and record.path_params.get("client_id") != self.client_id:
            return Response("not found", status=404)
        if not token:
            return Response(json.dumps({"error": "invalid_request"}), status=400, mimetype="application/json")
        if rule.style in ("rfc7009", "json_token", "github_grant") and not self._revocation_auth(request, record):
            return Response(json.dumps({"error": "invalid_client"}), status=401, mimetype="application/json")
        with self._lock:
            grant = next((g for g in self.grants if token in g.refresh or token in g.access), None)
            kind = "refresh" if grant and token in grant.refresh else "access"
            if grant is not None and rule.token in (kind, "either"):
                grant.alive = False
            elif grant is not None:
                return Response(json.dumps({"error": "unsupported_token_type"}), status=400,
                                mimetype="application/json")
        body = json.dumps(rule.ok_body) if rule.ok_body is not None else ""
        return Response(body, status=rule.ok_status, mimetype="application/json" if body else None)

    def _revocation_auth(self, request: Request, record: Recorded) -> bool:
        demanded = self.profile.revocation.auth
        if demanded == "any":
            return True
        if demanded == "none":
            return record.client_auth == "none"
        if demanded == "client_id_post":
            return record.body.get("client_id") == self.client_id and record.client_auth == "none"
        return self._client_ok(request, record, demanded)
