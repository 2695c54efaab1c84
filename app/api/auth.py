"""Bearer-token guards for API views: users on user endpoints, machines on M2M endpoints."""
from __future__ import annotations

from flask import g, request

from ..errors import Forbidden, InsufficientScope, InvalidToken
from ..identity import Principal
from ..observability.logs import set_log_context
from ..runtime import runtime


def bearer_principal() -> Principal:
    """The verified caller, once per request (the access check before the view already verified it)."""
    if "bearer_principal" in g:
        return g.bearer_principal
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("send the Auth0 access token as 'Authorization: Bearer <token>'")
    g.bearer_principal = runtime().verifier.verify(token.strip())
    return g.bearer_principal


def require_user() -> Principal:
    principal = bearer_principal()
    if principal.is_machine:
        raise Forbidden("this endpoint is for users; a machine (client-credentials) token is not accepted")
    set_log_context(user_id=principal.sub)  # this request's later log lines name the user
    return principal


def require_machine(permission: str) -> Principal:
    principal = bearer_principal()
    if not principal.is_machine:
        raise Forbidden("this endpoint is for machine-to-machine clients; a user token is not accepted")
    if permission not in principal.permissions:
        raise InsufficientScope(f"the token lacks the {permission!r} permission")
    return principal
