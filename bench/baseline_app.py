"""The baselines' bare app, run on the same gunicorn configuration as the service.

``POST /verify`` verifies the bearer JWT with the service's own verifier (``app.identity``, JWKS by
discovery from the same issuer) and answers JSON; ``POST`` or ``GET /redirect`` answers a 303 and nothing else.
Configured from the same environment variables (AUTH0_ISSUER, AUTH0_AUDIENCE)."""
from __future__ import annotations

import os

from flask import Flask, jsonify, redirect, request

from app.errors import InvalidToken
from app.identity import AccessTokenVerifier, JwksCache


def create() -> Flask:
    bare = Flask(__name__)
    jwks = JwksCache(os.environ["AUTH0_ISSUER"], os.environ.get("AUTH0_JWKS_URL") or None, cooldown=60.0,
                     timeout=(1.0, 5.0))
    verifier = AccessTokenVerifier(jwks, os.environ["AUTH0_AUDIENCE"])

    @bare.get("/healthz")
    def healthz():
        return {"status": "ok"}

    @bare.post("/verify")
    def verify():
        _, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            principal = verifier.verify(token.strip())
        except InvalidToken:
            return jsonify(error="invalid_token"), 401
        return {"sub": principal.sub, "machine": principal.is_machine}

    @bare.route("/redirect", methods=["GET", "POST"])
    def bare_redirect():
        return redirect("http://127.0.0.1:9/authorize", 303)

    return bare


app = create()
